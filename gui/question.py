"""``ask``: a small modal question with buttons that say what they do ("Keep them and quit",
not "Yes").  Tk's ``messagebox`` only offers yes/no/cancel wording, and a person deciding
about unsent messages should not have to map "No" to "throw them away".

The open question is kept on ``Question.current`` while it waits, so a test can press one of
its real buttons (``Question.current.buttons[label].invoke()``).
"""

from __future__ import annotations

import logging
import tkinter as tk
from collections.abc import Callable
from tkinter import ttk
from typing import ClassVar

log = logging.getLogger(__name__)

WRAP_PIXELS = 420


class Question(tk.Toplevel):
    """One question; ``answer`` is the chosen button's label, or None if closed or Escape."""

    current: ClassVar[Question | None] = None

    def __init__(
        self, parent: tk.Misc, title: str, text: str, choices: list[str], default: str
    ) -> None:
        # A thin frame of its own: without window decorations it still stands out.
        super().__init__(parent, borderwidth=1, relief="solid")
        self.withdraw()  # shown by ``wait`` once it has its place
        self.title(title)
        self.resizable(False, False)
        self.answer: str | None = None
        top = parent.winfo_toplevel()
        if top.winfo_viewable():
            self.transient(top)
        body = ttk.Frame(self, padding=16)
        body.pack(fill="both", expand=True)
        self.label = ttk.Label(body, text=text, wraplength=WRAP_PIXELS, justify="left")
        self.label.pack(side="top", anchor="w", pady=(0, 14))
        row = ttk.Frame(body)
        row.pack(side="top", anchor="e")
        self.buttons: dict[str, ttk.Button] = {}
        for label in choices:
            button = ttk.Button(
                row,
                text=label,
                style="Accent.TButton" if label == default else "TButton",
                command=self._chooser(label),
            )
            button.pack(side="left", padx=(8, 0))
            self.buttons[label] = button
        self.buttons[default].focus_set()
        self.bind("<Return>", lambda _e: self._choose(default))
        self.bind("<Escape>", lambda _e: self._choose(None))
        self.protocol("WM_DELETE_WINDOW", lambda: self._choose(None))

    def _place_over_parent(self) -> None:
        """Centred over the window it asks about (not wherever the window manager, or
        none, would put a new window: the top-left corner of the screen)."""
        self.update_idletasks()
        top = self.master.winfo_toplevel()
        width, height = self.winfo_reqwidth(), self.winfo_reqheight()
        x = top.winfo_rootx() + max(0, (top.winfo_width() - width) // 2)
        y = top.winfo_rooty() + max(0, (top.winfo_height() - height) // 3)
        self.geometry(f"+{x}+{y}")
        self.deiconify()
        self.update_idletasks()

    def _chooser(self, answer: str) -> Callable[[], None]:
        return lambda: self._choose(answer)

    def _choose(self, answer: str | None) -> None:
        self.answer = answer
        self.destroy()

    def wait(self) -> str | None:
        """Show the question and wait (the Tk loop keeps running) until it is answered."""
        Question.current = self
        try:
            self._place_over_parent()
            try:
                self.grab_set()
            except tk.TclError:  # not viewable yet under some window managers
                log.debug("question without a grab")
            self.wait_window()
        finally:
            Question.current = None
        return self.answer


def ask(parent: tk.Misc, title: str, text: str, choices: list[str], default: str) -> str | None:
    """Ask and return the chosen label (None when the question was closed)."""
    return Question(parent, title, text, choices, default).wait()
