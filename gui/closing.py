"""The questions before a window closes, when closing would lose something.

Two things are lost without asking today's question: a hosted chat others are in (closing
the window stops its server and disconnects them) and messages typed but not sent yet (kept
in the outbox for the next connection to the same server and name if the person says so,
gui/outbox.py).  Each question names what it is about and its buttons say what they do
(gui/question.py).  Kept apart from ``ChatApp`` so the wording and the outcome of each answer
read in one place.
"""

from __future__ import annotations

import tkinter as tk
from pathlib import Path

from gui import outbox
from gui.question import ask
from gui.session import Session

KEEP, DISCARD, CLOSE_CHAT, CANCEL = "Keep and quit", "Discard and quit", "Close the chat", "Cancel"


def may_close(
    window: tk.Misc, hosted_others: list[str], session: Session, config_dir: Path
) -> bool:
    """True when the window may close; keeps unsent messages if the person says so.
    ``hosted_others``: who else is in the chat this window hosts."""
    if hosted_others and not _end_hosted_chat(window, hosted_others):
        return False
    return _settle_unsent(window, session, config_dir)


def _end_hosted_chat(window: tk.Misc, others: list[str]) -> bool:
    people = len(others) + 1
    shown = ", ".join(others[:5]) + (" and others" if len(others) > 5 else "")
    text = (
        f"{people} people are in this chat; closing ends it. "
        f"{shown} will be disconnected, and the chat is gone until someone hosts it again."
    )
    return ask(window, "Close the chat?", text, [CLOSE_CHAT, CANCEL], CANCEL) == CLOSE_CHAT


def _settle_unsent(window: tk.Misc, session: Session, config_dir: Path) -> bool:
    waiting = session.pending.values()
    if not waiting:
        return True
    count = len(waiting)
    many = count > 1
    them = "them" if many else "it"
    text = (
        f"{count} message{'s' if many else ''} you typed {'are' if many else 'is'} not sent "
        f"yet. Keep {them} and send {them} the next time you connect to "
        f"{session.host}:{session.port} as {session.name}? If you discard {them}, "
        f"{'they are' if many else 'it is'} lost."
    )
    choice = ask(window, "Unsent messages", text, [KEEP, DISCARD, CANCEL], KEEP)
    if choice == KEEP:
        outbox.keep(
            config_dir,
            session.host,
            session.port,
            session.name,
            [(p.nonce, p.text, p.conversation.label) for p in waiting],
        )
    return choice in (KEEP, DISCARD)
