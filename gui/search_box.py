"""``SearchBox`` (Ctrl+F): a bar above the conversation where one types words and gets the
messages that hold them, listed with room, sender and time; picking one (double-click or
Enter) shows it in its conversation.  Escape closes it."""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable
from tkinter import ttk

from common.message import Message
from gui.chat_view import ChatView
from gui.display import local_clock, tk_safe
from gui.net.conversation_requests import conversation_of

RESULT_ROWS = 5
SHORT_WINDOW = 560  # pixels: below this height the results show 2 rows at a time


class SearchBox(ttk.Frame):
    def __init__(
        self,
        view: ChatView,
        on_search: Callable[[str], None],
        on_pick: Callable[[Message], None],
    ) -> None:
        super().__init__(view, padding=(8, 6, 8, 4))
        self.view = view
        self.on_search = on_search
        self.on_pick = on_pick
        top = ttk.Frame(self)
        ttk.Label(top, text="Search:").pack(side="left")
        self.entry = ttk.Entry(top)
        self.entry.pack(side="left", fill="x", expand=True, padx=(6, 6))
        self.status = ttk.Label(top, text="")
        self.status.pack(side="left")
        ttk.Button(top, text="Close", command=self.close, takefocus=False).pack(
            side="left", padx=(6, 0)
        )
        top.pack(side="top", fill="x")
        columns = ("where", "sender", "time", "text")
        self.results = ttk.Treeview(
            self, columns=columns, show="headings", height=RESULT_ROWS, selectmode="browse"
        )
        for column, title, width in (
            ("where", "Room", 90),
            ("sender", "Sender", 90),
            ("time", "Time", 140),
            ("text", "Message", 420),
        ):
            self.results.heading(column, text=title, anchor="w")
            self.results.column(column, width=width, stretch=column == "text", anchor="w")
        self.results.pack(side="top", fill="x", pady=(6, 0))
        self.found: dict[str, Message] = {}
        self.entry.bind("<Return>", self._search)
        self.entry.bind("<Escape>", lambda _e: self.close())
        self.entry.bind("<Down>", self._into_results)
        self.results.bind("<Double-Button-1>", self._pick)
        self.results.bind("<Return>", self._pick)
        self.results.bind("<Escape>", lambda _e: self.close())

    @property
    def is_open(self) -> bool:
        return bool(self.winfo_manager())

    def open(self) -> None:
        # A short window keeps room for the conversation: fewer result rows.
        tall = self.winfo_toplevel().winfo_height() >= SHORT_WINDOW
        self.results.configure(height=RESULT_ROWS if tall else 2)
        if not self.is_open:
            # Just above the panes: the input row and status line keep their room.
            self.pack(side="top", fill="x", before=self.view.panes)
        self.entry.focus_set()
        self.entry.select_range(0, "end")

    def close(self) -> None:
        self.pack_forget()

    def search_for(self, words: str) -> None:
        """As if typed and Enter pressed (tests, and a future menu)."""
        self.entry.delete(0, "end")
        self.entry.insert(0, words)
        self._search(None)

    def show_results(self, messages: list[Message], me: str) -> None:
        """The server's answer: newest first, so the likeliest hit is at the top."""
        self.results.delete(*self.results.get_children())
        self.found.clear()
        for message in reversed(messages):
            where = conversation_of(message, me).label
            when = message.timestamp.astimezone()
            item = self.results.insert(
                "",
                "end",
                values=(
                    tk_safe(where),
                    tk_safe(message.user),
                    f"{when:%d %b} {local_clock(message.timestamp)}",
                    tk_safe(message.text.replace("\n", " ⏎ "))[:300],
                ),
            )
            self.found[item] = message
        count = len(messages)
        self.status.configure(text=f"{count} found" if count != 1 else "1 found")

    def rows(self) -> list[tuple[str, ...]]:
        """The result rows as shown (tests read this)."""
        return [tuple(self.results.item(i, "values")) for i in self.results.get_children()]

    def pick(self, index: int) -> None:
        items = self.results.get_children()
        if 0 <= index < len(items):
            self.on_pick(self.found[items[index]])

    def _search(self, _event: tk.Event[tk.Misc] | None) -> str:
        words = self.entry.get().strip()
        if words:
            self.status.configure(text="searching…")
            self.on_search(words)
        return "break"

    def _into_results(self, _event: tk.Event[tk.Misc]) -> str:
        items = self.results.get_children()
        if items:
            self.results.focus_set()
            self.results.selection_set(items[0])
            self.results.focus(items[0])
        return "break"

    def _pick(self, _event: tk.Event[tk.Misc]) -> str:
        for item in self.results.selection():
            message = self.found.get(item)
            if message is not None:
                self.on_pick(message)
        return "break"
