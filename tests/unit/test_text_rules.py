"""Free-text forms: RFC 1123 host names and bounded single-line text (issue 8 §4)."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import InvalidInput
from domain.text_rules import check_line, is_host_name, is_single_line

LABEL = st.from_regex(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?", fullmatch=True)


@given(st.lists(LABEL, min_size=1, max_size=4))
def test_dot_joined_ldh_labels_within_253_are_host_names(labels: list[str]) -> None:
    name = ".".join(labels)
    assert is_host_name(name) == (len(name) <= 253)
    assert is_host_name(name + ".") == (len(name) <= 253)


@pytest.mark.parametrize(
    "name",
    [
        "",
        ".",
        "a..b",
        ".a",
        "a..",
        "-a",
        "a-",
        "a_b",
        "a b",
        "a" * 64,
        "é.example",
        "a.b\n",
        "a\x00",
        "xn--bcher-kva..example",
        ("a" * 63 + ".") * 4 + "a",
    ],
)
def test_not_host_names(name: str) -> None:
    assert not is_host_name(name)


def test_trailing_dot_is_allowed_once() -> None:
    assert is_host_name("a.") and not is_host_name("a..")


@pytest.mark.parametrize("text", ["a\nb", "a\rb", "a\tb", "a\x00", "a\u2028b", "\ud800", "\x7f"])
def test_control_characters_and_separators_are_not_one_line(text: str) -> None:
    with pytest.raises(InvalidInput):
        check_line(text, "field", 100)


def test_multiline_allows_line_breaks_and_tabs_only() -> None:
    assert check_line("a\r\nb\tc", "field", 10, multiline=True) == "a\r\nb\tc"
    with pytest.raises(InvalidInput):
        check_line("a\nb\x00", "field", 10, multiline=True)
    with pytest.raises(InvalidInput, match="longer than 3"):
        check_line("abcd", "field", 3)
    assert check_line("Zoë 東京 🚀", "field", 10) == "Zoë 東京 🚀"


@given(st.text())
def test_is_single_line_is_exactly_the_absence_of_forbidden_categories(text: str) -> None:
    forbidden = {"Cc", "Cs", "Zl", "Zp"}
    assert is_single_line(text) == all(unicodedata.category(c) not in forbidden for c in text)
