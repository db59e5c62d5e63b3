"""Turning untrusted text from the network into something safe to show (terminal or Tk).

A message may hold escape sequences that would recolour or clear a terminal, other control
characters, or characters outside the Basic Multilingual Plane that Tk 8.6 cannot always draw.
It may also hold invisible characters that change how a line reads: bidi overrides make it
read backwards, zero-width ones hide inside names and links; the terminal shows those as
``<U+202E>`` escapes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime

# C0 and C1 controls and DEL, except newline and tab which are shown as such.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# Bidi embeddings, overrides and isolates; zero-width characters and marks, word joiner, BOM;
# and the Unicode line and paragraph separators (a terminal would not break there, but they
# are invisible all the same).
_INVISIBLE = re.compile(r"[\u200b-\u200f\u2028\u2029\u202a-\u202e\u2060\u2066-\u2069\ufeff]")


def printable(text: str) -> str:
    """Control characters as visible escapes (ESC shows as ``\\x1b``), the rest unchanged."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def terminal_safe(text: str) -> str:
    """``printable`` text with bidi controls and zero-width characters shown as ``<U+XXXX>``."""
    return _INVISIBLE.sub(lambda m: f"<U+{ord(m.group()):04X}>", printable(text))


def one_line(text: str) -> str:
    """``terminal_safe`` for a field that must stay on its line (a name, a room): newline
    and tab show as ``\\n`` and ``\\t`` too."""
    return terminal_safe(text).replace("\n", "\\n").replace("\t", "\\t")


def indented(first: str, text: str, indent: int) -> list[str]:
    """``first`` followed by the first line of ``text``; each further line of ``text``
    indented by ``indent`` spaces, so no line of a message can pass for a line of its own
    (a message holding "\\n* mallory left the chat" stays visibly inside the message)."""
    lines = text.split("\n")
    pad = " " * indent
    return [first + lines[0], *(pad + line for line in lines[1:])]


def local_clock(moment: datetime) -> str:
    """``HH:MM:SS`` in the local time zone."""
    return moment.astimezone().strftime("%H:%M:%S")


# Lone surrogates (valid in a JSON string, not in Unicode: Tcl refuses them with an exception)
# and bidirectional overrides (they can make a line read backwards, hiding what it says).
_UNSAFE_FOR_TK = re.compile(r"[\ud800-\udfff\u202a-\u202e\u2066-\u2069]")
_NON_BMP = re.compile(r"[\U00010000-\U0010ffff]")


def tk_safe(text: str, non_bmp: bool = True) -> str:
    """``printable`` text that any Tk 8.6 can insert: lone surrogates become U+FFFD, bidi
    overrides visible escapes, and (``non_bmp=False``, for Tk before 8.6.10, which crashes or
    raises on them) characters outside the BMP become U+FFFD."""
    text = printable(text)
    if _UNSAFE_FOR_TK.search(text):
        text = _UNSAFE_FOR_TK.sub(_replace_unsafe, text)
    if not non_bmp and _NON_BMP.search(text):
        text = _NON_BMP.sub("\ufffd", text)
    return text


def elided(name: str, fits: Callable[[str], bool]) -> str:
    """``name`` if ``fits`` it, else its longest start that fits with "…" after it (at least
    one character).  ``fits`` is asked of the shown form, so a caller adds what goes around the
    name (a count, a mark, "(you)") and measures in its own font."""
    if len(name) <= 1 or fits(name):
        return name
    for end in range(len(name) - 1, 1, -1):
        if fits(name[:end] + "…"):
            return name[:end] + "…"
    return name[:1] + "…"


def _replace_unsafe(match: re.Match[str]) -> str:
    char = match.group()
    return "\ufffd" if "\ud800" <= char <= "\udfff" else f"\\u{ord(char):04x}"
