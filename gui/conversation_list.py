"""``ConversationList``: the column beside the message pane listing the conversations -
rooms, then people - each with its unread count and a mark when it asks for the user (a
mention or a direct message).  Clicking one (or Up/Down) opens it."""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable
from tkinter import font as tkfont
from tkinter import ttk

from gui import theme
from gui.conversations import ConversationModel, ConversationState
from gui.display import elided, tk_safe
from gui.net.conversation_requests import Conversation

MENTION_MARK = "●"
# The column widens to its widest row (a long name with its count and mark) up to MAX_WIDTH
# pixels or 30 % of the window; a name that still does not fit is shortened with "…".
MIN_WIDTH = 112
MAX_WIDTH = 280
ROW_INDENT = 40  # the tree's indicator space (26 px) before the text, and a margin after it


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
        self.tree.column("#0", width=MIN_WIDTH, stretch=True)
        self.tree.pack(side="top", fill="both", expand=True)
        self.bold_font = tkfont.Font(font=text_font)
        self.bold_font.configure(weight="bold")
        self.text_font = text_font
        self.rows: dict[str, Conversation] = {}  # tree item id -> conversation
        self._refreshing = False
        self._current_item = ""
        self._widened_to = 0  # the widest the list was made to fit a row (pixels)
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
    def row_text(
        conversation: Conversation, unread: int, mention: bool, name: str | None = None
    ) -> str:
        """``# dev  3 ●``: the name (or ``name``, a shortened one), the unread count, and the
        mark."""
        sign = "@" if conversation.direct else "#"
        text = f"{sign} {tk_safe(conversation.name) if name is None else name}"
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
            entries = []
            for conversation in [*rooms, *people]:
                state = model.state(conversation)
                text = self.row_text(conversation, state.unread, state.mention)
                entries.append((conversation, state, text, self.bold_font.measure(text)))
            budget = self._fit(max((width for *_, width in entries), default=0))
            for conversation, state, text, width in entries:
                if conversation is (people[0] if people else None):
                    self.tree.insert("", "end", text="People", tags=("heading",))
                kind = "mention" if state.mention else "unread" if state.unread else "plain"
                shown = text if width <= budget else self._shortened(conversation, state, budget)
                item = self.tree.insert("", "end", text=shown, tags=(kind,))
                self.rows[item] = conversation
                if conversation == model.current:
                    self._current_item = item
                    self.tree.selection_set(item)
                    self.tree.see(item)
        finally:
            self._refreshing = False

    def _fit(self, widest: int) -> int:
        """Widen the list (never narrow it) towards the widest row, at most to 30 % of the
        window (the messages keep the room); return the width a row's text has.  "@ bob  1 ●"
        once lost its mark behind the list's edge."""
        panes = self.master
        column = int(self.tree.column("#0", "width"))
        wanted = min(MAX_WIDTH, widest + ROW_INDENT)
        if not panes.winfo_ismapped():  # not laid out yet: the column asks for the width
            if wanted > column:
                self.tree.column("#0", width=wanted)
            return max(wanted, column) - ROW_INDENT
        wanted = min(wanted, panes.winfo_width() * 3 // 10)
        shown = self.tree.winfo_width()
        # Laid out, the column stretches to the tree and the pane keeps the width it was
        # given: move the sash.  Only past the widest width asked for before, so that a
        # person who narrows the list is not overruled at every redraw (names then shorten).
        if wanted > shown and wanted > self._widened_to and isinstance(panes, ttk.Panedwindow):
            self._widened_to = wanted
            grown = self.winfo_width() + wanted - shown
            panes.tk.call(panes, "sashpos", 0, grown)  # (``sashpos`` is untyped in typeshed)
            self.update_idletasks()
            shown = self.tree.winfo_width()
        return (shown if shown > 1 else column) - ROW_INDENT

    def _shortened(self, conversation: Conversation, state: ConversationState, budget: int) -> str:
        """The row with its name shortened with "…" to fit ``budget`` pixels: the count and
        the mark always show (the whole name is in the switcher, Ctrl+K)."""

        def fits(name: str) -> bool:
            text = self.row_text(conversation, state.unread, state.mention, name)
            return self.bold_font.measure(text) <= budget

        name = elided(tk_safe(conversation.name), fits)
        return self.row_text(conversation, state.unread, state.mention, name)

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
