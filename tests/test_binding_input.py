"""Cleaning and checking pasted credentials happens before any request and never echoes them."""

import pytest

from lib.account_fields import clean_scopes, label_problem
from lib.console.binding_input import clean_credentials

KEY = "5c2db93503aa674c74a31734"
SECRET = "f03a5284-5c39-4aaa-9b20-dea10bdcf8e3"


def _all_text(result) -> str:
    return " ".join([*result.errors.values(), *result.notices, repr(result)])


def test_clean_paste_passes_unchanged():
    result = clean_credentials(KEY, SECRET, "my passphrase")
    assert result.ok and not result.notices
    assert result.api_key == KEY
    assert result.api_secret.reveal() == SECRET
    assert result.passphrase.reveal() == "my passphrase"


def test_spaces_newlines_tabs_and_zero_width_are_removed_with_a_notice():
    result = clean_credentials(f" {KEY[:10]}\u200b{KEY[10:]}\n", f"\t{SECRET} \r\n", " pass\ufeff ")
    assert result.ok
    assert result.api_key == KEY
    assert result.api_secret.reveal() == SECRET
    assert result.passphrase.reveal() == "pass"
    assert result.notices and "API Key, Secret, Passphrase" in result.notices[0]


def test_secret_pasted_in_key_field_is_caught():
    result = clean_credentials(SECRET, SECRET, "p")
    assert "looks like your Secret" in result.errors["api_key"]


def test_key_pasted_in_secret_field_is_caught():
    result = clean_credentials(KEY, KEY, "p")
    assert "looks like your API Key" in result.errors["api_secret"]


PHRASE = "my-passphrase"


@pytest.mark.parametrize(
    ("key", "secret", "phrase", "named"),
    [
        pytest.param(
            SECRET,
            KEY,
            PHRASE,
            {"api_key": "looks like your Secret", "api_secret": "looks like your API Key"},
            id="key-secret",
        ),
        pytest.param(
            KEY,
            PHRASE,
            SECRET,
            {"api_secret": "looks like your Passphrase", "passphrase": "looks like your Secret"},
            id="secret-passphrase",
        ),
        pytest.param(
            PHRASE,
            SECRET,
            KEY,
            {"api_key": "looks like your Passphrase", "passphrase": "looks like your API Key"},
            id="key-passphrase",
        ),
        pytest.param(
            SECRET,
            PHRASE,
            KEY,
            {
                "api_key": "looks like your Secret",
                "api_secret": "the Secret seems to be in the API Key field",
                "passphrase": "looks like your API Key",
            },
            id="all-three-rotated",
        ),
        pytest.param(
            KEY, SECRET, KEY, {"passphrase": "The Passphrase is the API Key again"}, id="key-twice"
        ),
    ],
)
def test_every_swap_of_two_fields_is_named_in_each_field(key, secret, phrase, named):
    result = clean_credentials(key, secret, phrase)
    assert set(result.errors) == set(named)
    for field_name, text in named.items():
        assert text in result.errors[field_name]
    assert not any(v in _all_text(result) for v in (KEY, SECRET, PHRASE))


@pytest.mark.parametrize("phrase", [KEY, SECRET], ids=["key-shaped", "uuid-shaped"])
def test_a_passphrase_shaped_like_a_key_is_fine_when_the_key_fields_hold_their_own(phrase):
    other_key, other_secret = "0123456789abcdef01234567", "00000000-0000-4000-8000-000000000000"
    assert clean_credentials(other_key, other_secret, phrase).ok


@pytest.mark.parametrize(
    ("key", "expected"),
    [("", "empty"), (KEY[:-1], "23 characters"), ("z" * 24, "non-hexadecimal")],
)
def test_bad_key_shapes_say_what_to_fix(key, expected):
    assert expected in clean_credentials(key, SECRET, "p").errors["api_key"]


def test_empty_passphrase_is_refused():
    assert "API Passphrase" in clean_credentials(KEY, SECRET, "  ").errors["passphrase"]


def test_control_characters_are_refused_by_position():
    result = clean_credentials(KEY, SECRET, "pa\x07ss")
    assert "position 3" in result.errors["passphrase"]


def test_no_message_echoes_a_secret_value():
    canary = "CANARY-7d1e"
    result = clean_credentials(canary, canary + "-x", canary + "\x00")
    assert not result.ok
    assert canary not in _all_text(result)


def test_scopes_are_normalised_and_checked():
    assert clean_scopes("Futures, spot") == ("spot", "futures")
    with pytest.raises(ValueError, match="unknown scope"):
        clean_scopes(["spot", "options"])
    with pytest.raises(ValueError, match="at least one"):
        clean_scopes([])


@pytest.mark.parametrize("label", ["mm-bot-01", "Desk A (spot)", "ops@eu:2", "Händler_7"])
def test_ordinary_labels_are_accepted(label):
    assert label_problem(label) is None


@pytest.mark.parametrize(
    ("label", "named"),
    [("**bold**", "*"), ("[x](http://e)", "[ ]"), ("$x$", "$"), ("a\x00b", "'\\x00'")],
)
def test_labels_that_would_format_on_a_page_are_refused_naming_the_characters(label, named):
    problem = label_problem(label)
    assert problem and problem.endswith(f"remove: {named}")


def test_empty_and_overlong_labels_are_refused():
    assert "Give the account a label" in label_problem("")
    assert "at most 200" in label_problem("x" * 201)
