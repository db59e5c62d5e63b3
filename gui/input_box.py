"""``InputBox``: where the user types.  Enter sends, Shift+Enter breaks the line, Up/Down walk
the sent history, Tab completes a user name (again to cycle through the matches).

Its height follows its text: one line when empty, growing with each (wrapped) line up to
``MAX_LINES``, then the text scrolls inside it; after sending it is one line again."""

from __future__ import annotations

import re
import tkinter as tk
from collections.abc import Callable
from tkinter import font as tkfont

from gui import theme

_WORD_BEFORE = re.compile(r"[A-Za-z0-9]*$")
HISTORY_LIMIT = 500
MIN_LINES = 1
MAX_LINES = 5


class InputBox(tk.Text):
    """A few-lines ``Text``; ``on_submit(text)`` returns True when the text was taken."""

    def __init__(
        self,
        master: tk.Misc,
        text_font: tkfont.Font,
        on_submit: Callable[[str], bool],
        names: Callable[[], list[str]],
    ) -> None:
        super().__init__(
            master,
            height=MIN_LINES,
            width=20,  # the row gives it its width; a wide request would squeeze Send out
            wrap="word",
            font=text_font,
            undo=True,
            borderwidth=0,
            highlightthickness=1,
            padx=8,
            pady=6,
        )
        self.on_submit = on_submit
        self.names = names
        self.history: list[str] = []
        self._walk: int | None = None  # index into history while walking it
        self._draft = ""
        self._completion: tuple[str, list[str], int, str] | None = None
        self.bind("<Return>", self._submit)
        self.bind("<KP_Enter>", self._submit)
        self.bind("<Shift-Return>", self._newline)
        self.bind("<Up>", self._older)
        self.bind("<Down>", self._newer)
        self.bind("<Tab>", self._complete)
        self.bind("<Key>", self._other_key, add=True)
        self.bind("<<ThemeChanged>>", lambda _e: self.apply_palette(), add=True)
        self.bind("<<Modified>>", self._modified, add=True)
        self.bind("<Configure>", lambda _e: self.fit_height(), add=True)
        self.apply_palette()

    def apply_palette(self) -> None:
        p = theme.palette(self)
        self.configure(
            background=p.background,
            foreground=p.foreground,
            insertbackground=p.foreground,
            selectbackground=p.select_bg,
            selectforeground=p.foreground,
            highlightcolor=p.link,
            highlightbackground=p.muted,
        )

    def fit_height(self) -> None:
        """As many lines as the text shows wrapped, within ``MIN_LINES``..``MAX_LINES``."""
        # Not laid out yet, wrapping is unknown: count the typed lines instead.
        unit = "-displaylines" if self.winfo_width() > 1 else "-lines"
        lines = int(self.tk.call(str(self), "count", "-update", unit, "1.0", "end"))
        wanted = max(MIN_LINES, min(MAX_LINES, lines))
        if int(str(self.cget("height"))) != wanted:
            self.configure(height=wanted)
            self.see("insert")

    def _modified(self, _event: tk.Event[tk.Text]) -> None:
        # <<Modified>> fires only when the flag turns on, so turn it off for the next edit.
        self.edit_modified(False)
        self.fit_height()

    @property
    def value(self) -> str:
        return str(self.get("1.0", "end-1c"))

    def set_value(self, text: str) -> None:
        self.delete("1.0", "end")
        self.insert("1.0", text)
        self.mark_set("insert", "end-1c")
        self.see("insert")

    # ------------------------------------------------------------- bindings
    def _submit(self, _event: tk.Event[tk.Text]) -> str:
        text = self.value
        if text.strip() and self.on_submit(text):
            if not self.history or self.history[-1] != text:
                self.history.append(text)
                del self.history[:-HISTORY_LIMIT]
            self._walk = None
            self.delete("1.0", "end")
        return "break"

    def _newline(self, _event: tk.Event[tk.Text]) -> str:
        self.insert("insert", "\n")
        self.see("insert")
        return "break"

    def _older(self, _event: tk.Event[tk.Text]) -> str | None:
        if self.index("insert").split(".")[0] != "1" or not self.history:
            return None  # move within a multi-line draft as usual
        if self._walk is None:
            self._draft = self.value
            self._walk = len(self.history)
        if self._walk > 0:
            self._walk -= 1
            self.set_value(self.history[self._walk])
        return "break"

    def _newer(self, _event: tk.Event[tk.Text]) -> str | None:
        if self._walk is None or self.compare("insert linestart", "!=", "end-1c linestart"):
            return None
        self._walk += 1
        if self._walk >= len(self.history):
            self._walk = None
            self.set_value(self._draft)
        else:
            self.set_value(self.history[self._walk])
        return "break"

    def _complete(self, _event: tk.Event[tk.Text]) -> str:
        before = str(self.get("insert linestart", "insert"))
        state = self._completion
        if state is not None and before.endswith(state[3]):
            prefix, matches, index, inserted = state
            index = (index + 1) % len(matches)
        else:
            prefix = _WORD_BEFORE.search(before).group()  # type: ignore[union-attr]
            matches = [n for n in self.names() if n.lower().startswith(prefix.lower())]
            if not prefix and before.strip():
                matches = []
            if not matches:
                self.bell()
                return "break"
            index, inserted = 0, prefix
        at_start = len(before) - len(inserted) == 0 and self.index("insert").startswith("1.")
        completed = matches[index] + (": " if at_start else " ")
        self.delete(f"insert-{len(inserted)}c", "insert")
        self.insert("insert", completed)
        self._completion = (prefix, matches, index, completed)
        return "break"

    def _other_key(self, event: tk.Event[tk.Text]) -> None:
        if event.keysym not in ("Tab", "Shift_L", "Shift_R"):
            self._completion = None
