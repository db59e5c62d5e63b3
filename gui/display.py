"""Turning untrusted text from the network into something safe to show (terminal or Tk).

A message may hold escape sequences that would recolour or clear a terminal, other control
characters, or characters outside the Basic Multilingual Plane that Tk 8.6 cannot always draw.
"""

from __future__ import annotations

import re
from datetime import datetime

# C0 and C1 controls and DEL, except newline and tab which are shown as such.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """Control characters as visible escapes (ESC shows as ``\\x1b``), the rest unchanged."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


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


def _replace_unsafe(match: re.Match[str]) -> str:
    char = match.group()
    return "\ufffd" if "\ud800" <= char <= "\udfff" else f"\\u{ord(char):04x}"
