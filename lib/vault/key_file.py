"""The master key file: a JSON keyring, mode 0600, replaced atomically, refused when exposed."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import secrets
import stat
from datetime import datetime
from pathlib import Path

from lib.config import ensure_private_dir
from lib.vault.errors import KeyFileExposed, KeyFileInvalid, KeyFileMissing
from lib.vault.keyring import KEY_BYTES, KEY_ID, Keyring, KeyState, MasterKey, new_master_key

log = logging.getLogger(__name__)

KEYRING_FORMAT = 1
MAX_KEY_FILE_BYTES = 1 << 20


def read_keyring(path: Path) -> Keyring:
    """Return the keyring in the key file, refusing a file others can read or a malformed one."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise KeyFileMissing(
            f"No master key file at {path}. Restore it from your backup, or set "
            "BINDWATCH_MASTER_KEY_FILE to where it is."
        ) from None
    if not stat.S_ISREG(info.st_mode):
        raise KeyFileInvalid(
            f"{path} is not a regular file. Point BINDWATCH_MASTER_KEY_FILE at the key file."
        )
    if info.st_mode & 0o077:
        raise KeyFileExposed(
            f"Master key file {path} is accessible by group or others "
            f"(mode {stat.S_IMODE(info.st_mode):04o}). Restrict it with: chmod 600 {path}"
        )
    if info.st_size > MAX_KEY_FILE_BYTES:
        raise KeyFileInvalid(
            f"{path} is too large to be a bindwatch key file. Restore it from backup."
        )
    try:
        raw = path.read_bytes()
    except PermissionError:
        raise KeyFileInvalid(
            f"Cannot read master key file {path}: permission denied. Run bindwatch as the user "
            "that owns the file."
        ) from None
    except OSError as exc:
        raise KeyFileInvalid(f"Cannot read master key file {path}: {exc.strerror}.") from None
    return _parse_keyring(raw, path)


def _parse_keyring(raw: bytes, path: Path) -> Keyring:
    """Return the keyring in a key file's bytes; the errors never quote the content."""
    restore = "Restore the key file from your backup; do not edit it by hand."
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise KeyFileInvalid(
            f"{path} is not a bindwatch key file (not a JSON keyring). {restore}"
        ) from None
    if not isinstance(doc, dict) or doc.get("bindwatch_keyring") != KEYRING_FORMAT:
        raise KeyFileInvalid(
            f"{path} is not a bindwatch key file (format marker missing). {restore}"
        )
    entries = doc.get("keys")
    if not isinstance(entries, list) or not entries:
        raise KeyFileInvalid(f"{path} holds no master key. {restore}")
    keys = []
    for n, entry in enumerate(entries, 1):
        try:
            key_id = entry["id"]
            state = KeyState(entry["state"])
            created_at = datetime.fromisoformat(entry["created_at"])
            material = base64.b64decode(entry["key"], validate=True)
        except (TypeError, KeyError, ValueError, binascii.Error):
            raise KeyFileInvalid(f"Key entry {n} in {path} is malformed. {restore}") from None
        if not isinstance(key_id, str) or not KEY_ID.match(key_id):
            raise KeyFileInvalid(f"Key entry {n} in {path} has an invalid key id. {restore}")
        if len(material) != KEY_BYTES:
            raise KeyFileInvalid(
                f"Master key {key_id} in {path} is {len(material)} bytes; a bindwatch master key "
                f"is {KEY_BYTES} bytes (AES-256). {restore}"
            )
        keys.append(MasterKey(key_id, state, created_at, material))
    if len({k.key_id for k in keys}) != len(keys):
        raise KeyFileInvalid(f"{path} names one key id twice. {restore}")
    if sum(k.state is KeyState.ACTIVE for k in keys) != 1:
        raise KeyFileInvalid(f"{path} must hold exactly one active master key. {restore}")
    return Keyring(tuple(keys))


def write_keyring(path: Path, keyring: Keyring, *, exclusive: bool = False) -> None:
    """Write the key file atomically (temp file, fsync, rename, fsync directory), mode 0600.

    With `exclusive`, fail with FileExistsError instead of replacing an existing file.
    """
    directory = path.parent
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = directory / f".{path.name}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(_keyring_bytes(keyring))
            handle.flush()
            os.fsync(handle.fileno())
        if exclusive:
            os.link(tmp, path)  # atomic and exclusive: a concurrent first run cannot be overwritten
        else:
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def remove_stale_temp_files(path: Path) -> None:
    """Delete temp files a crash left next to the key file: they hold key material."""
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        stale.unlink(missing_ok=True)


def _keyring_bytes(keyring: Keyring) -> bytes:
    """Return the key file content of a keyring."""
    doc = {
        "bindwatch_keyring": KEYRING_FORMAT,
        "keys": [
            {
                "id": k.key_id,
                "state": k.state.value,
                "created_at": k.created_at.isoformat(),
                "key": base64.b64encode(k.material).decode(),
            }
            for k in keyring.keys
        ],
    }
    return (json.dumps(doc, indent=2) + "\n").encode()


def file_signature(path: Path) -> tuple[int, int, int]:
    """Return what changes when the file is replaced or rewritten: inode, mtime and size."""
    info = path.stat()
    return (info.st_ino, info.st_mtime_ns, info.st_size)


def create_key_file(key_file: Path, private_dir: Path | None = None) -> Keyring:
    """Create the key file with one new key (0600, exclusive), or read the one a racer created.

    `private_dir` is a directory of ours (the data directory): when the key file goes there,
    the directory is created, or tightened, to 0700.
    """
    if private_dir is not None and key_file.parent.absolute() == private_dir.absolute():
        ensure_private_dir(key_file.parent)
    key_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    keyring = Keyring((new_master_key(),))
    try:
        write_keyring(key_file, keyring, exclusive=True)
    except FileExistsError:
        return read_keyring(key_file)
    log.warning(
        "created a new master key file at %s: back it up now, apart from the database; "
        "without it the stored credentials cannot be decrypted",
        key_file,
    )
    return keyring
