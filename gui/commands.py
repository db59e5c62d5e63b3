"""Slash commands typed in the input box, parsed without Tk so the rules are easy to see."""

from __future__ import annotations

from dataclasses import dataclass

COMMANDS: dict[str, str] = {
    "/names": "ask the server who is online",
    "/help": "show these commands",
    "/clear": "empty the message pane (nothing is deleted on the server)",
    "/logout": "log out and go back to the connect screen",
    "/quit": "log out and close TkChat",
    # Conversations (TkChat servers; gui/conversation_view.py)
    "/join": "/join ROOM: join a room (or go to one you are in)",
    "/part": "/part [ROOM]: leave a room (the open one by default)",
    "/rooms": "list the rooms on the server",
    "/msg": "/msg NAME text: a direct message (Ctrl+K jumps, Ctrl+F searches)",
}


@dataclass(frozen=True, slots=True)
class Command:
    name: str  # "/names", ..., or the unknown word itself
    known: bool
    args: str = ""  # what follows the command word


def parse(text: str) -> Command | str:
    """A ``Command`` for ``/word``; otherwise the message text to send.

    ``//text`` sends ``/text``, so a message can start with a slash.
    """
    stripped = text.strip()
    if stripped.startswith("//"):
        return text.lstrip()[1:]
    if not stripped.startswith("/"):
        return text
    parts = stripped.split(maxsplit=1)
    word = parts[0].lower()
    return Command(word, word in COMMANDS, parts[1] if len(parts) > 1 else "")


def help_lines() -> list[str]:
    lines = [f"{name:<8} {what}" for name, what in COMMANDS.items()]
    lines.append("//text    send a message that starts with /")
    lines.append("Enter sends, Shift+Enter starts a new line, Up/Down walk your sent messages,")
    lines.append("Tab completes a name, Ctrl+plus/minus change the text size.")
    return lines
