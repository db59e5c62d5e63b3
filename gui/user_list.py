"""``UserList``: who is online, with a count, kept live by the session's join/leave events."""

from __future__ import annotations

import tkinter as tk
from tkinter import font as tkfont
from tkinter import ttk

from gui import theme
from gui.display import elided, tk_safe

SHORT_NAME = 10  # names this short always fit: not measured (a room may have 1,000 names)
FIT_MARGIN = 1  # pixels the listbox keeps on either side of an item


class UserList(ttk.Frame):
    def __init__(self, master: tk.Misc, text_font: tkfont.Font) -> None:
        super().__init__(master, padding=(8, 6, 4, 6))
        self.header = ttk.Label(self, text="Online", style="Heading.TLabel", wraplength=120)
        self.header.pack(side="top", anchor="w", fill="x", pady=(0, 6))
        # A narrow list wraps "Offline (last known)" instead of cutting it off.
        self.header.bind(
            "<Configure>",
            lambda e: self.header.configure(wraplength=max(60, int(e.width))),
            add=True,
        )
        self.listbox = tk.Listbox(
            self,
            font=text_font,
            borderwidth=0,
            highlightthickness=0,
            activestyle="none",
            selectmode="browse",
            width=13,
            exportselection=False,
        )
        self.listbox.pack(side="top", fill="both", expand=True)
        self.font = text_font
        self._width = 0  # the list's width when the names were last fitted to it
        self.listbox.bind("<Configure>", self._resized, add=True)
        self.names: list[str] = []
        self._own = ""
        self._online = True
        self.bind("<<ThemeChanged>>", lambda _e: self.apply_palette(), add=True)
        self.apply_palette()

    def apply_palette(self) -> None:
        p = theme.palette(self)
        self.listbox.configure(
            background=p.background,
            foreground=p.foreground,
            selectbackground=p.select_bg,
            selectforeground=p.foreground,
        )
        self._refresh()

    def set_own_name(self, name: str) -> None:
        self._own = name
        self._refresh()

    def set_online(self, online: bool) -> None:
        """Offline, the last known list stays, greyed: it may no longer be true."""
        if online != self._online:
            self._online = online
            self._refresh()

    def set_users(self, names: list[str]) -> None:
        self.names = list(names)
        self._refresh()

    def _resized(self, event: tk.Event[tk.Listbox]) -> None:
        if int(event.width) != self._width:
            self._refresh()

    def _fitted(self, name: str, suffix: str) -> str:
        """The name (and ``suffix``), shortened with "…" to the list's width: a 32-letter name
        was cut off mid-letter, and "(you)" with it."""
        text = tk_safe(name)
        budget = self._width - 2 * FIT_MARGIN
        if len(text) <= SHORT_NAME or budget <= 0:
            return text + suffix
        return elided(text, lambda shown: self.font.measure(shown + suffix) <= budget) + suffix

    def _refresh(self) -> None:
        p = theme.palette(self)
        self._width = self.listbox.winfo_width() if self.listbox.winfo_ismapped() else 0
        self.listbox.delete(0, "end")
        for index, name in enumerate(self.names):
            own = name.lower() == self._own.lower()
            self.listbox.insert("end", self._fitted(name, "  (you)" if own else ""))
            colour = p.nicks[theme.nick_index(name, p)] if self._online else p.muted
            self.listbox.itemconfigure(index, foreground=p.own if own and self._online else colour)
        self.header.configure(
            text=f"Online — {len(self.names)}" if self._online else "Offline (last known)"
        )
