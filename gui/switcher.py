"""``Switcher`` (Ctrl+K or Ctrl+J): jump to a conversation by typing part of its name.

A bar above the conversation with an entry and the matching conversations (rooms as
``#room``, people as ``@name``, the ones whose name starts with what was typed first);
Enter opens the first (or the one chosen with Up/Down), Escape closes."""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable
from tkinter import ttk

from gui.chat_view import ChatView
from gui.display import tk_safe


def matches(choices: list[str], typed: str) -> list[str]:
    """The choices holding ``typed`` (any case, ``#``/``@`` optional): prefix matches first."""
    needle = typed.strip().lstrip("#@").lower()
    found = [c for c in choices if needle in c[1:].lower()]
    return sorted(found, key=lambda c: (not c[1:].lower().startswith(needle), c.lower()))


class Switcher(ttk.Frame):
    def __init__(
        self,
        view: ChatView,
        choices: Callable[[], list[str]],
        on_choose: Callable[[str], None],
    ) -> None:
        super().__init__(view, padding=(8, 6, 8, 4))
        self.view = view
        self.choices = choices
        self.on_choose = on_choose
        ttk.Label(self, text="Go to:").pack(side="left")
        self.entry = ttk.Entry(self, width=24)
        self.entry.pack(side="left", padx=(6, 6))
        self.shown: list[str] = []
        self.hint = ttk.Label(self, text="")
        self.hint.pack(side="left", fill="x", expand=True)
        self.entry.bind("<KeyRelease>", lambda _e: self.refresh(), add=True)
        self.entry.bind("<Return>", self._choose)
        self.entry.bind("<Escape>", lambda _e: self.close())
        self.entry.bind("<Down>", lambda _e: self._move(1))
        self.entry.bind("<Up>", lambda _e: self._move(-1))
        self._index = 0

    @property
    def is_open(self) -> bool:
        return bool(self.winfo_manager())

    def open(self) -> None:
        if not self.is_open:
            # Just above the panes: the input row and status line keep their room.
            self.pack(side="top", fill="x", before=self.view.panes)
        self.entry.delete(0, "end")
        self.entry.focus_set()
        self.refresh()

    def close(self) -> None:
        self.pack_forget()

    def refresh(self) -> None:
        self.shown = matches(self.choices(), self.entry.get())
        self._index = 0
        self._show_hint()

    def _show_hint(self) -> None:
        parts = [
            f"[{tk_safe(c)}]" if i == self._index else tk_safe(c)
            for i, c in enumerate(self.shown[:12])
        ]
        self.hint.configure(text="  ".join(parts) if parts else "no match")

    def _move(self, step: int) -> str:
        if self.shown:
            self._index = (self._index + step) % len(self.shown)
            self._show_hint()
        return "break"

    def _choose(self, _event: tk.Event[tk.Misc] | None = None) -> str:
        self.refresh_keep()
        if self.shown:
            choice = self.shown[self._index]
            self.close()
            self.on_choose(choice)
        return "break"

    def refresh_keep(self) -> None:
        """Re-match what is typed, keeping the chosen row when it still matches."""
        chosen = self.shown[self._index] if self.shown else None
        self.shown = matches(self.choices(), self.entry.get())
        self._index = self.shown.index(chosen) if chosen in self.shown else 0

    def choose(self, typed: str) -> None:
        """As if ``typed`` were typed and Enter pressed (tests)."""
        self.entry.delete(0, "end")
        self.entry.insert(0, typed)
        self.refresh()
        self._choose()
