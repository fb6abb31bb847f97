"""Clean and check pasted credentials before any request; no message ever echoes a value."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lib.account_fields import control_character_position
from lib.kucoin.auth import Credentials
from lib.kucoin.constants import DEFAULT_KEY_VERSION
from lib.secret import Secret

KEY_SHAPE = re.compile(r"[0-9a-fA-F]{24}")
SECRET_SHAPE = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
# The shape of each value KuCoin gives: a value with another field's shape was pasted there.
SHAPES = {"api_key": KEY_SHAPE, "api_secret": SECRET_SHAPE}
SHAPE_TEXT = {"api_key": "24 hexadecimal characters", "api_secret": "a 36-character UUID"}
EMPTY = {
    "api_key": "API Key is empty: paste the key from KuCoin's API Management.",
    "api_secret": "Secret is empty: paste the Secret shown when the key was created.",
    "passphrase": "Passphrase is empty: enter the API Passphrase typed when the key was created "
    "(not the login or trading password).",
}
# Characters copy-paste drags along: zero-width space/joiners, word joiner, BOM, soft hyphen.
INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff\u00ad"
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


def _plain(value: str | Secret | None) -> str:
    """Return a pasted value's text, unwrapped here, in the call that cleans it."""
    return value.reveal() if isinstance(value, Secret) else value or ""


def _strip_paste_noise(value: str, *, inner_spaces: bool) -> tuple[str, bool]:
    """Return the value without invisible characters and surrounding (or all) whitespace."""
    cleaned = "".join(ch for ch in value if ch not in INVISIBLE)
    cleaned = re.sub(r"\s+", "", cleaned) if inner_spaces else cleaned.strip()
    return cleaned, cleaned != value


def clean_credentials(
    api_key: str, api_secret: str | Secret, passphrase: str | Secret
) -> CleanedCredentials:
    """Return the pasted credentials cleaned, with what to fix per field."""
    key, key_changed = _strip_paste_noise(api_key or "", inner_spaces=True)
    secret, secret_changed = _strip_paste_noise(_plain(api_secret), inner_spaces=True)
    # A passphrase may legitimately hold inner spaces; only its ends and invisibles are noise.
    phrase, phrase_changed = _strip_paste_noise(_plain(passphrase), inner_spaces=False)
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
    result.errors.update(
        _field_errors({"api_key": key, "api_secret": secret, "passphrase": phrase})
    )
    return result


def _field_errors(values: dict[str, str]) -> dict[str, str]:
    """Return what to fix per credential field, naming values pasted into the wrong field."""
    shapes = {name: _shape(value) for name, value in values.items()}
    errors = {}
    for name, value in values.items():
        if not value:
            errors[name] = EMPTY[name]
        elif position := control_character_position(value):
            errors[name] = (
                f"{FIELD_NAMES[name]} has a control character at position {position}: re-type it."
            )
        elif problem := _misplaced(name, values, shapes):
            errors[name] = problem
    return errors


def _shape(value: str) -> str | None:
    """Return the field whose shape the value has ("api_key", "api_secret"), or None."""
    return next((name for name, shape in SHAPES.items() if shape.fullmatch(value)), None)


def _misplaced(name: str, values: dict[str, str], shapes: dict[str, str | None]) -> str | None:
    """Return what is wrong with a field's value given the others, or None when it fits."""
    field, shape = FIELD_NAMES[name], shapes[name]
    if shape == name:
        return None
    # A passphrase may look like a key or a secret, unless that field lacks its own value.
    if shape is not None and (name in SHAPES or shapes[shape] != shape):
        what = f"{FIELD_NAMES[shape]} ({SHAPE_TEXT[shape]})"
        rule = f": the {field} is {SHAPE_TEXT[name]}" if name in SHAPES else ""
        return f"This looks like your {what}, not the {field}{rule}. Put each value in its field."
    if name not in SHAPES:
        same = next((other for other in SHAPES if values[other] == values[name]), None)
        if same is None:
            return None
        return (
            f"The Passphrase is the {FIELD_NAMES[same]} again: enter the API Passphrase typed "
            "when the key was created."
        )
    holder = next((other for other in values if other != name and shapes[other] == name), None)
    if holder == "passphrase":
        return (
            f"This looks like your Passphrase, not the {field}: the Passphrase field holds "
            f"{SHAPE_TEXT[name]}, the shape of the {field}. Swap the two."
        )
    if holder is not None:
        return (
            f"This is not the {field} ({SHAPE_TEXT[name]}): the {field} seems to be in the "
            f"{FIELD_NAMES[holder]} field."
        )
    return _wrong_shape(name, values[name])


def _wrong_shape(name: str, value: str) -> str:
    """Return the message for a key or secret of the wrong length or characters."""
    if name == "api_key":
        return (
            f"API Key is {len(value)} characters{_non_hex_note(value)}; a KuCoin API Key is "
            "24 hexadecimal characters (0-9, a-f). Copy it again from API Management."
        )
    return (
        f"Secret is {len(value)} characters; a KuCoin API Secret is a 36-character UUID "
        "(8-4-4-4-12 hexadecimal characters with dashes). Paste it again."
    )


def _non_hex_note(key: str) -> str:
    """Return a note when the key holds characters that are not hexadecimal."""
    return "" if re.fullmatch(r"[0-9a-fA-F]*", key) else " and holds non-hexadecimal characters"
