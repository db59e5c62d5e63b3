"""``ChatView``: the conversation screen: message pane and user list side by side, the input
below, and a status line that always says what the connection is doing."""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable
from tkinter import font as tkfont
from tkinter import ttk

from gui import theme
from gui.input_box import InputBox
from gui.message_pane import MessagePane
from gui.user_list import UserList


class ChatView(ttk.Frame):
    def __init__(
        self,
        master: tk.Misc,
        text_font: tkfont.Font,
        scrollback: int,
        on_submit: Callable[[str], bool],
    ) -> None:
        super().__init__(master)
        self.panes = ttk.Panedwindow(self, orient="horizontal")
        self.pane = MessagePane(self.panes, text_font, scrollback)
        self.users = UserList(self.panes, text_font)
        self.panes.add(self.pane, weight=5)
        self.panes.add(self.users, weight=1)
        bottom = ttk.Frame(self, padding=(8, 6, 8, 4))
        self.input = InputBox(bottom, text_font, on_submit, lambda: self.users.names)
        self.send_button = ttk.Button(
            bottom, text="Send", style="Accent.TButton", command=self.send_typed, takefocus=False
        )
        self.input.pack(side="left", fill="both", expand=True)
        self.send_button.pack(side="left", fill="y", padx=(8, 0))
        status_bar = ttk.Frame(self, padding=(10, 0, 10, 6))
        self.status_dot = ttk.Label(status_bar, text="●")
        self.status = ttk.Label(status_bar, text="")
        self.status_dot.pack(side="left")
        self.status.pack(side="left", padx=(6, 0), fill="x", expand=True)
        self.panes.pack(side="top", fill="both", expand=True)
        ttk.Separator(self, orient="horizontal").pack(side="top", fill="x")
        status_bar.pack(side="bottom", fill="x")
        bottom.pack(side="bottom", fill="x")
        self._kind = "ok"
        self.bind("<<ThemeChanged>>", lambda _e: self._colour_status(), add=True)

    def send_typed(self) -> None:
        self.input.event_generate("<Return>")
        self.input.focus_set()

    def set_status(self, text: str, kind: str = "ok") -> None:
        """``kind``: "ok" (green dot), "busy" (muted) or "problem" (red)."""
        self.status.configure(text=text)
        self._kind = kind
        self._colour_status()

    def _colour_status(self) -> None:
        p = theme.palette(self)
        colour = {"ok": p.info, "busy": p.muted, "problem": p.error}.get(self._kind, p.muted)
        self.status_dot.configure(foreground=colour)
