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
