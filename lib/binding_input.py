"""Clean and check pasted credentials before any request; no message ever echoes a value."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from lib.kucoin.auth import Credentials
from lib.kucoin.constants import DEFAULT_KEY_VERSION
from lib.secret import Secret

KEY_SHAPE = re.compile(r"[0-9a-fA-F]{24}")
SECRET_SHAPE = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
# Characters copy-paste drags along: zero-width space/joiners, word joiner, BOM, soft hyphen.
INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff\u00ad"
SCOPES = ("spot", "futures", "margin")
LABEL_MAX = 200
# Labels are shown in Markdown on every page: characters that format, link or typeset math
# there (* [ ] ! < > ` # | ~ \ $) are refused rather than escaped at each place.
LABEL_PUNCTUATION = set(" -_.:/@+()&,'\"=%;")


def label_problem(label: str) -> str | None:
    """Return what is wrong with an account label, or None when it is fine."""
    if not label:
        return "Give the account a label, e.g. the trader or bot that uses the key."
    if len(label) > LABEL_MAX:
        return f"A label is at most {LABEL_MAX} characters."
    odd = sorted({ch for ch in label if not ch.isalnum() and ch not in LABEL_PUNCTUATION})
    if odd:
        shown = " ".join(ch if ch.isprintable() else repr(ch) for ch in odd)
        return (
            "A label may hold letters, digits, spaces and - _ . : / @ + ( ) & , ' \" = % ; "
            f"only; remove: {shown}"
        )
    return None


# How each checked field is named to the operator, in the page and on the command line.
FIELD_NAMES = {
    "label": "Label",
    "api_key": "API Key",
    "api_secret": "Secret",
    "passphrase": "Passphrase",
    "scopes": "Scopes",
    "account": "Account",
}


@dataclass
class CleanedCredentials:
    """What was pasted, cleaned; errors per field and notices about what cleaning did."""

    api_key: str = field(repr=False)  # may hold a Secret pasted into the wrong field
    api_secret: Secret = field(repr=False)
    passphrase: Secret = field(repr=False)
    errors: dict[str, str] = field(default_factory=dict)  # field name -> what to fix
    notices: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Return whether the credentials are ready to verify."""
        return not self.errors

    def credentials(self, key_version: str = DEFAULT_KEY_VERSION) -> Credentials:
        """Return Credentials for the probe; only valid when `ok`."""
        if self.errors:
            raise ValueError("credentials have errors: " + "; ".join(self.errors.values()))
        return Credentials(self.api_key, self.api_secret, self.passphrase, key_version)


def _strip_paste_noise(value: str, *, inner_spaces: bool) -> tuple[str, bool]:
    """Return the value without invisible characters and surrounding (or all) whitespace."""
    cleaned = "".join(ch for ch in value if ch not in INVISIBLE)
    cleaned = re.sub(r"\s+", "", cleaned) if inner_spaces else cleaned.strip()
    return cleaned, cleaned != value


def _control_character(value: str) -> int | None:
    """Return the 1-based position of the first control character, or None."""
    for position, ch in enumerate(value, start=1):
        if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
            return position
    return None


def clean_credentials(api_key: str, api_secret: str, passphrase: str) -> CleanedCredentials:
    """Return the pasted credentials cleaned, with what to fix per field."""
    key, key_changed = _strip_paste_noise(api_key or "", inner_spaces=True)
    secret, secret_changed = _strip_paste_noise(api_secret or "", inner_spaces=True)
    # A passphrase may legitimately hold inner spaces; only its ends and invisibles are noise.
    phrase, phrase_changed = _strip_paste_noise(passphrase or "", inner_spaces=False)
    result = CleanedCredentials(key, Secret(secret), Secret(phrase))
    cleaned = [
        name
        for name, changed in (
            ("API Key", key_changed),
            ("Secret", secret_changed),
            ("Passphrase", phrase_changed),
        )
        if changed
    ]
    if cleaned:
        result.notices.append(
            "Removed spaces, line breaks or invisible characters pasted with: "
            f"{', '.join(cleaned)}."
        )
    _check_key(key, result.errors)
    _check_secret(secret, result.errors)
    _check_passphrase(phrase, result.errors)
    return result


def _check_key(key: str, errors: dict[str, str]) -> None:
    if not key:
        errors["api_key"] = "API Key is empty: paste the key from KuCoin's API Management."
    elif position := _control_character(key):
        errors["api_key"] = f"API Key has a control character at position {position}: re-type it."
    elif SECRET_SHAPE.fullmatch(key):
        errors["api_key"] = (
            "This looks like your Secret (a 36-character UUID), not the API Key: "
            "the API Key is 24 hexadecimal characters."
        )
    elif not KEY_SHAPE.fullmatch(key):
        errors["api_key"] = (
            f"API Key is {len(key)} characters{_non_hex_note(key)}; a KuCoin API Key is "
            "24 hexadecimal characters (0-9, a-f). Copy it again from API Management."
        )


def _check_secret(secret: str, errors: dict[str, str]) -> None:
    if not secret:
        errors["api_secret"] = "Secret is empty: paste the Secret shown when the key was created."
    elif position := _control_character(secret):
        errors["api_secret"] = f"Secret has a control character at position {position}: re-type it."
    elif KEY_SHAPE.fullmatch(secret):
        errors["api_secret"] = (
            "This looks like your API Key (24 hexadecimal characters), not the Secret: "
            "the Secret is a 36-character UUID like xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx."
        )
    elif not SECRET_SHAPE.fullmatch(secret):
        errors["api_secret"] = (
            f"Secret is {len(secret)} characters; a KuCoin API Secret is a 36-character UUID "
            "(8-4-4-4-12 hexadecimal characters with dashes). Paste it again."
        )


def _check_passphrase(phrase: str, errors: dict[str, str]) -> None:
    if not phrase:
        errors["passphrase"] = (
            "Passphrase is empty: enter the API Passphrase typed when the key was created "
            "(not the login or trading password)."
        )
    elif position := _control_character(phrase):
        errors["passphrase"] = (
            f"Passphrase has a control character at position {position}: re-type it."
        )


def _non_hex_note(key: str) -> str:
    """Return a note when the key holds characters that are not hexadecimal."""
    return "" if re.fullmatch(r"[0-9a-fA-F]*", key) else " and holds non-hexadecimal characters"


def clean_scopes(scopes: list[str] | tuple[str, ...] | str) -> tuple[str, ...]:
    """Return the needed scopes, lower-case, known and ordered; raise ValueError otherwise."""
    items = scopes.split(",") if isinstance(scopes, str) else list(scopes)
    wanted = {s.strip().lower() for s in items if s and s.strip()}
    unknown = wanted - set(SCOPES)
    if unknown:
        raise ValueError(
            f"unknown scope {', '.join(sorted(unknown))}: choose among {', '.join(SCOPES)}"
        )
    if not wanted:
        raise ValueError(f"choose at least one scope among {', '.join(SCOPES)}")
    return tuple(s for s in SCOPES if s in wanted)
