"""``ConversationList``: the column beside the message pane listing the conversations -
rooms, then people - each with its unread count and a mark when it asks for the user (a
mention or a direct message).  Clicking one (or Up/Down) opens it."""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable
from tkinter import font as tkfont
from tkinter import ttk

from gui import theme
from gui.conversations import ConversationModel
from gui.display import tk_safe
from gui.net.conversation_requests import Conversation

MENTION_MARK = "●"


class ConversationList(ttk.Frame):
    def __init__(
        self,
        master: tk.Misc,
        text_font: tkfont.Font,
        on_open: Callable[[Conversation], None],
    ) -> None:
        super().__init__(master, padding=(4, 6, 4, 6))
        self.on_open = on_open
        self.header = ttk.Label(self, text="Conversations", style="Heading.TLabel")
        self.header.pack(side="top", anchor="w", padx=(4, 0), pady=(0, 6))
        self.tree = ttk.Treeview(self, show="tree", selectmode="browse", height=8)
        self.tree.column("#0", width=112, stretch=True)
        self.tree.pack(side="top", fill="both", expand=True)
        self.bold_font = tkfont.Font(font=text_font)
        self.bold_font.configure(weight="bold")
        self.text_font = text_font
        self.rows: dict[str, Conversation] = {}  # tree item id -> conversation
        self._refreshing = False
        self._current_item = ""
        self.tree.bind("<<TreeviewSelect>>", self._selected, add=True)
        self.bind("<<ThemeChanged>>", lambda _e: self._colour(), add=True)
        self._colour()

    def _colour(self) -> None:
        p = theme.palette(self)
        self.tree.tag_configure("plain", font=self.text_font, foreground=p.foreground)
        self.tree.tag_configure("unread", font=self.bold_font, foreground=p.foreground)
        self.tree.tag_configure("mention", font=self.bold_font, foreground=p.error)
        self.tree.tag_configure("heading", foreground=p.muted)

    @staticmethod
    def row_text(conversation: Conversation, unread: int, mention: bool) -> str:
        """``# dev  3 ●``: the name, the unread count, and the mark."""
        sign = "@" if conversation.direct else "#"
        text = f"{sign} {tk_safe(conversation.name)}"
        if unread:
            text += f"  {unread if unread < 1000 else '999+'}"
        if mention:
            text += f" {MENTION_MARK}"
        return text

    def show(self, model: ConversationModel) -> None:
        """Redraw from the model (a few dozen rows at most: cheaper than diffing)."""
        self._refreshing = True
        try:
            self.tree.delete(*self.tree.get_children())
            self.rows.clear()
            people = model.people() if model.extended else []
            rooms = model.rooms() if model.extended else model.rooms()[:1]
            for conversation in [*rooms, *people]:
                if conversation is (people[0] if people else None):
                    self.tree.insert("", "end", text="People", tags=("heading",))
                state = model.state(conversation)
                kind = "mention" if state.mention else "unread" if state.unread else "plain"
                item = self.tree.insert(
                    "",
                    "end",
                    text=self.row_text(conversation, state.unread, state.mention),
                    tags=(kind,),
                )
                self.rows[item] = conversation
                if conversation == model.current:
                    self._current_item = item
                    self.tree.selection_set(item)
                    self.tree.see(item)
        finally:
            self._refreshing = False

    def texts(self) -> list[str]:
        """The rows as shown (tests read this)."""
        return [str(self.tree.item(i, "text")) for i in self.tree.get_children()]

    def _selected(self, _event: tk.Event[tk.Misc]) -> None:
        if self._refreshing:
            return
        for item in self.tree.selection():
            conversation = self.rows.get(item)
            if conversation is not None:
                self.on_open(conversation)
            elif self._current_item in self.rows:  # the "People" heading: not a conversation
                self.tree.selection_set(self._current_item)
