"""A text too long for one message (a paste, say): offered as several, cut where a reader
would cut it.

The protocol caps a message at ``MAX_MESSAGE_CHARS``; rather than refuse the text or cut it
blindly, the window asks, with the count, and splits at a line break in the second half of
each piece, else at a space, else anywhere.  The splitting rule is plain text (no Tk) so it
is tested alone.
"""

from __future__ import annotations

import tkinter as tk

from common.protocol import MAX_MESSAGE_CHARS
from gui.question import ask


def ask_to_split(window: tk.Misc, text: str) -> list[str] | None:
    """The parts to send, once the person agreed; None when they cancelled (the text then
    stays in the box to shorten)."""
    parts = split_text(text)
    send = f"Send as {len(parts)} messages"
    choice = ask(
        window,
        "Long message",
        f"This text has {len(text):,} characters; one message holds at most "
        f"{MAX_MESSAGE_CHARS:,}. Send it as {len(parts)} messages, split at line breaks "
        "or spaces? (Cancel keeps it in the box to shorten.)",
        [send, "Cancel"],
        send,
    )
    return parts if choice == send else None


def split_text(text: str, limit: int = MAX_MESSAGE_CHARS) -> list[str]:
    """``text`` as messages of at most ``limit`` characters, cut at a line break if there
    is one in the second half of a piece, else at a space, else anywhere."""
    parts: list[str] = []
    while len(text) > limit:
        window = text[:limit]
        cut = window.rfind("\n", limit // 2)
        if cut < 0:
            cut = window.rfind(" ", limit // 2)
        if cut < 0:
            cut = limit
        part, text = text[:cut].rstrip(), text[cut:].lstrip("\n ")
        if part:
            parts.append(part)
    if text.strip():
        parts.append(text.rstrip())
    return parts
