"""``Conversations``: rooms and direct messages in the Tk window (PROTOCOL.md, Rooms, Direct
messages, Older history and search).

It owns one ``MessagePane`` per conversation (kept in a dict, one shown at a time, so each
keeps its own scroll position), the ``ConversationList`` beside them, the Ctrl+K switcher and
the Ctrl+F search box, and the ``ConversationModel`` they show.  ``ChatApp`` calls it at a
few clearly marked points (routing a message to its pane, a command, going online); the
``Session`` hands it first every event it receives (``claim``), and it takes the ones only a
TkChat server sends: join/part answers, room events, ``rooms`` lists, history pages and search
results.  Everything else goes on through the session as before.

Against a classic KTN server (no TkChat key seen) there is only ``general``, and the new
commands say they are not available there.
"""

from __future__ import annotations

import logging
import tkinter as tk
from collections.abc import Callable
from typing import TYPE_CHECKING

from common.message import GENERAL_ROOM, Message
from common.protocol import (
    ErrorCode,
    ErrorResponse,
    Event,
    HistoryResponse,
    InfoResponse,
    room_name,
)
from common.requests import Join, Part, Rooms, Search
from gui.commands import Command
from gui.conversation_list import ConversationList
from gui.conversations import ConversationModel, SavedConversations
from gui.message_pane import MessagePane
from gui.net import conversation_requests as requests
from gui.net.conversation_requests import GENERAL, Conversation, conversation_of
from gui.net.events import ClientEvent
from gui.search_box import SearchBox
from gui.switcher import Switcher

if TYPE_CHECKING:
    from gui.app import ChatApp

log = logging.getLogger(__name__)

NOT_HERE = "{command}: not available on this server (a classic KTN server, with one room)"


class Conversations:
    """See the module docstring.  Tk thread only."""

    def __init__(self, app: ChatApp) -> None:
        self.app = app
        self.model = ConversationModel()
        self.saved = SavedConversations(app.config_dir)
        self.server = ""
        view = app.chat_view
        self.stack = tk.Frame(view.panes)
        self.stack.rowconfigure(0, weight=1)
        self.stack.columnconfigure(0, weight=1)
        first: MessagePane = view.pane
        view.panes.forget(first)
        view.panes.insert(0, self.stack, weight=5)
        first.grid(in_=self.stack, row=0, column=0, sticky="nsew")
        # Made before the stack, the pane is below it in stacking order: raise it, or the
        # stack's empty frame covers it.
        first.lift(self.stack)
        self.list = ConversationList(view.panes, app.text_font, self.open)
        view.panes.insert(0, self.list, weight=0)  # keeps its width; the pane gives way
        self.panes: dict[Conversation, MessagePane] = {GENERAL: first}
        self.ids: dict[Conversation, set[int]] = {GENERAL: set()}
        self._watch_top(GENERAL, first)
        self._dirty: set[MessagePane] = set()
        self._list_dirty = True
        self._jump: Message | None = None  # a search result to show once its page is in
        self._direct_loading: Conversation | None = None  # a page of direct messages asked
        self._rejoining: set[str] = set()  # rooms joined again after a reconnect or restart
        self._placed: set[MessagePane] = set()  # panes shown at their end once they had a size
        self._showing_result: MessagePane | None = None  # the pane a search result is shown in
        self.search_box = SearchBox(view, self.search, self.show_result)
        self.switcher = Switcher(view, self.switch_choices, self.open_label)
        view.users.listbox.bind("<ButtonRelease-1>", self._user_clicked, add=True)
        # On the window, and on the input box itself so that the Text's own Ctrl+K (delete
        # to the line's end) and Ctrl+F (a character forward) do not also run.
        for sequence, action in (
            ("<Control-k>", self.switcher.open),
            ("<Control-j>", self.switcher.open),
            ("<Control-f>", self.search_box.open),
        ):
            app.window.bind(sequence, _only(action), add=True)
            view.input.bind(sequence, _only(action))
        view.users.listbox.bind("<Return>", self._user_clicked, add=True)

    # ----------------------------------------------------------- the panes
    @property
    def current(self) -> Conversation:
        return self.model.current

    def pane(self, conversation: Conversation) -> MessagePane:
        """The pane of a conversation, made on first use."""
        pane = self.panes.get(conversation)
        if pane is None:
            pane = MessagePane(
                self.app.chat_view.panes, self.app.text_font, self.app.pane.scrollback
            )
            pane.set_own_name(self.model.me)
            self.panes[conversation] = pane
            self.ids[conversation] = set()
            self._watch_top(conversation, pane)
            self._list_dirty = True
        return pane

    def open(self, conversation: Conversation) -> None:
        """Show a conversation (list click, Ctrl+K, ``/join``, ``/msg``, a click on a name)."""
        if conversation.direct and conversation.key == self.model.me.lower():
            return  # no conversation with oneself
        new = self.pane(conversation)
        old = self.app.pane  # the one shown
        self.model.open(conversation)
        if old is not new:
            old.flush()
            old.grid_remove()
            new.flush()
            new.sync_fonts()  # the text size may have changed while it was hidden
            new.grid(in_=self.stack, row=0, column=0, sticky="nsew")
            new.lift(self.stack)
            self.app.pane = self.app.chat_view.pane = new
        self._show_members()
        self._list_dirty = True
        self._save()
        if conversation.direct and not self.ids[conversation] and self.model.extended:
            self._request_page(conversation)  # the first load: the newest direct messages

    def open_label(self, label: str) -> None:
        """The Ctrl+K choice: open it (joining a room first if need be), then type there."""
        conversation = Conversation.from_label(label)
        if conversation is None:
            return
        self.app.chat_view.input.focus_set()
        if conversation.direct or conversation in self.panes:
            self.open(conversation)
        elif self._available("/join"):
            self.app.session.request(Join(conversation.key))

    def flush(self) -> None:
        """Once per loop turn (gui/pump.py): draw what hidden panes were given and the
        list when it changed."""
        for pane in self._dirty:
            if pane is not self.app.pane:
                pane.flush()
        self._dirty.clear()
        state = self.model.state(self.model.current)
        if state.unread and self.app.attention.focused:  # back in the window: the open one is seen
            self.model.open(self.model.current)
            self._list_dirty = True
        if self._list_dirty:
            self._list_dirty = False
            self.list.show(self.model)

    def _show_members(self) -> None:
        conversation = self.model.current
        if conversation.direct or conversation == GENERAL or not self.model.extended:
            self.app.chat_view.users.set_users(self.app.session.users)
        else:
            users = self.app.chat_view.users
            members = self.model.state(conversation).members
            users.set_users(members)
            users.header.configure(text=f"In #{conversation.name} — {len(members)}")

    # -------------------------------------------------------- from ChatApp
    def reset(self, host: str, port: int, name: str) -> None:
        """A new connection from the connect screen: one ``general`` pane, what this server
        had open last time remembered (joined again once online)."""
        general = self.panes[GENERAL]
        if self.app.pane is not general:
            self.app.pane.grid_remove()
            general.grid(in_=self.stack, row=0, column=0, sticky="nsew")
            general.lift(self.stack)
            self.app.pane = self.app.chat_view.pane = general
        for conversation, pane in list(self.panes.items()):
            if conversation != GENERAL:
                pane.destroy()
                del self.panes[conversation]
                del self.ids[conversation]
        self.ids[GENERAL] = set()
        self._placed.clear()
        self._dirty.clear()
        self._rejoining.clear()
        self._jump = self._direct_loading = self._showing_result = None
        self.model.reset(name)
        self.server = f"{host}:{port}"
        self.model.restore(self.saved.get(self.server))
        for person in self.model.people():
            self.pane(person)
        general.set_own_name(name)
        self._list_dirty = True

    def online(self) -> None:
        """Logged in (first time or after a reconnect): join the remembered rooms again."""
        self.model.extended = self.app.session.speaks_tkchat
        self._list_dirty = True
        if not self.model.extended:
            if self.model.current != GENERAL:
                self.open(GENERAL)
            return
        for room in self.model.wanted_rooms:
            self._rejoining.add(room)
            self.app.session.request(Join(room))
        wanted = self.model.restore_open
        if wanted is not None and (wanted.direct or wanted == GENERAL):
            self.model.restore_open = None
            self.open(wanted)

    def offline(self) -> None:
        self.model.disconnected()
        self._rejoining.clear()
        if self.model.current != GENERAL and not self.model.current.direct:
            self.model.restore_open = self.model.current  # open it again once rejoined

    def users_changed(self, users: list[str]) -> None:
        """``general``'s members changed (the session keeps them)."""
        if self.model.current.direct or self.model.current == GENERAL:
            self.app.chat_view.users.set_users(users)

    def route(self, message: Message) -> MessagePane | None:
        """The pane a message goes in; None if that pane shows it already (a join history
        overlapping what came live)."""
        conversation = conversation_of(message, self.model.me)
        pane = self.pane(conversation)
        if message.id is not None:
            if message.id in self.ids[conversation]:
                return None
            self.ids[conversation].add(message.id)
            self.model.shown_ids(conversation, [message.id])
        self._dirty.add(pane)
        return pane

    def arrived(self, message: Message, mention: bool) -> None:
        """A live message from someone else: unread unless its conversation is in view."""
        conversation = conversation_of(message, self.model.me)
        seen = conversation == self.model.current and self.app.attention.focused
        self.model.arrived(conversation, mention=mention, seen=seen)
        if not seen:  # a busy room in view changes no count: no redraw per message
            self._list_dirty = True

    def command(self, command: Command) -> bool:
        """The conversation commands; False for any other command."""
        name, args = command.name, command.args.strip()
        current = self.model.current
        if name == "/names" and not current.direct and current != GENERAL:
            self.app.session.request(requests.names(current))  # who is in this room
            return True
        if name not in ("/join", "/part", "/rooms", "/msg"):
            return False
        if not self._available(name):
            return True
        session = self.app.session
        if name == "/join":
            room = room_name(args.removeprefix("#"))
            if room is None:
                self._error("a room name is 1-32 letters, digits or '-': /join ROOM")
            elif room == GENERAL_ROOM or self.model.is_joined(room):
                self.open(Conversation.room(room))
            else:
                session.request(Join(room))
        elif name == "/part":
            room = room_name(args.removeprefix("#")) if args else self.model.current.key
            if room is None or (self.model.current.direct and not args):
                self._error("which room? /part ROOM")
            else:
                session.request(Part(room))
        elif name == "/rooms":
            session.request(Rooms())
        else:
            who, _, text = args.partition(" ")
            who = who.removeprefix("@")
            if not who.isascii() or not who.isalnum() or len(who) > 32:
                self._error("to whom? /msg NAME text")
                return True
            conversation = Conversation.with_user(who)
            self.open(conversation)
            if text.strip():
                session.send(text, conversation)
        return True

    # -------------------------------------------------------- from Session
    def claim(self, event: ClientEvent) -> bool:
        """Take the events that belong to conversations; False lets the session have it."""
        if isinstance(event, InfoResponse):
            return self._info(event)
        if isinstance(event, HistoryResponse):
            return self._history(event)
        if (
            isinstance(event, ErrorResponse)
            and event.code == ErrorCode.BAD_REQUEST
            and self._direct_loading is not None
        ):
            # The first page of a direct conversation, refused: only a registered name,
            # logged in with its password, gets direct messages back.
            conversation, self._direct_loading = self._direct_loading, None
            self.model.page_arrived(conversation, [], False)
            pane = self.pane(conversation)
            pane.add_info(f"Earlier direct messages are not shown: {event.text}")
            self._dirty.add(pane)
            return True
        if isinstance(event, ErrorResponse) and event.code in (
            ErrorCode.NO_SUCH_USER,
            ErrorCode.NOT_IN_ROOM,
        ):
            self._undeliverable(event)
            return True
        return False

    def _info(self, info: InfoResponse) -> bool:
        room = room_name(info.room) if info.room else None
        if info.rooms is not None:
            listed = ", ".join(f"#{r.name} ({r.users})" for r in info.rooms) or "none"
            self.app.pane.add_info(f"Rooms: {listed}. /join ROOM to join one.")
            return True
        if room is None:
            return False
        if info.event == Event.JOINED:
            conversation = self.model.joined(room, list(info.users or ()))
            rejoined = room in self._rejoining
            self._rejoining.discard(room)
            if not rejoined:  # after a reconnect the status line says enough
                self.pane(conversation).add_info(f"You joined #{room}.")
                self._dirty.add(self.pane(conversation))
            if conversation == self.model.restore_open:
                self.model.restore_open = None
                self.open(conversation)
            elif not rejoined:  # the user's own /join: go there
                self.open(conversation)
            self._save()
        elif info.event == Event.PARTED:
            conversation = Conversation.room(room)
            pane = self.panes.get(conversation)
            if pane is not None and self.app.pane is pane:
                self.open(GENERAL)  # before it goes: the shown pane is never a destroyed one
            self.model.parted(room)
            self.panes.pop(conversation, None)
            self.ids.pop(conversation, None)
            if pane is not None:
                self._dirty.discard(pane)
                self._placed.discard(pane)
                pane.destroy()
            self.app.pane.add_info(f"You left #{room}.")
            self._list_dirty = True
            self._save()
        elif info.event in (Event.JOIN, Event.LEAVE) and info.user and room != GENERAL_ROOM:
            conversation = Conversation.room(room)
            if info.event == Event.JOIN:
                self.model.member_joined(room, info.user)
            else:
                self.model.member_left(room, info.user)
            verb = "joined" if info.event == Event.JOIN else "left"
            self.pane(conversation).add_info(f"{info.user} {verb} #{room}", when=info.timestamp)
            self._dirty.add(self.pane(conversation))
            if conversation == self.model.current:
                self._show_members()
        elif info.event is None and info.users is not None and room != GENERAL_ROOM:
            self.model.state(Conversation.room(room)).members = list(info.users)  # ``names``
            if Conversation.room(room) == self.model.current:
                self._show_members()
            self.app.pane.add_info(info.text, when=info.timestamp)
        else:
            return False  # about general: the session keeps its users
        return True

    def _history(self, history: HistoryResponse) -> bool:
        if history.search is not None:
            self.search_box.show_results(list(history.messages), self.model.me)
            return True
        if history.before is not None:
            if history.with_user:
                conversation = Conversation.with_user(history.with_user)
            else:
                conversation = Conversation.room(history.room or GENERAL_ROOM)
            self._page_arrived(conversation, history)
            return True
        if history.room and history.room != GENERAL_ROOM:  # the answer to a join
            conversation = Conversation.room(history.room)
            pane = self.pane(conversation)
            for message in history.messages:
                if self.route(message) is pane:
                    pane.add_message(message, self._own(message))
            return True
        return False

    def _page_arrived(self, conversation: Conversation, history: HistoryResponse) -> None:
        pane = self.panes.get(conversation)
        if pane is None:
            return
        if conversation == self._direct_loading:
            self._direct_loading = None
        seen = self.ids[conversation]
        first_load = not seen
        fresh = [m for m in history.messages if m.id is None or m.id not in seen]
        ids = [m.id for m in fresh if m.id is not None]
        seen.update(ids)
        self.model.page_arrived(conversation, ids, history.more)
        pane.prepend(fresh, self.model.me)
        if first_load:
            pane.scroll_to_end()  # a first load shows the newest
        self._continue_jump(conversation)

    def _undeliverable(self, error: ErrorResponse) -> None:
        """``no_such_user``/``not_in_room``: the oldest pending message of that kind cannot
        be delivered; it stops waiting and the error shows in its conversation."""
        want_direct = error.code == ErrorCode.NO_SUCH_USER
        session = self.app.session
        for pending in session.pending:
            if pending.conversation.direct == want_direct and pending.conversation != GENERAL:
                session.pending.drop(pending.nonce)
                pane = self.pane(pending.conversation)
                pane.settle(pending.nonce)
                pane.add_info(f"Not sent: {error.text or error.code}", error=True)
                self._dirty.add(pane)
                return
        self.app.pane.add_info(error.text or str(error.code), error=True)

    # -------------------------------------------------------------- paging
    def _watch_top(self, conversation: Conversation, pane: MessagePane) -> None:
        """Scrolling to the top of a pane asks for the page before it.  The pane's own
        ``yscrollcommand`` still runs first; this only listens."""
        text = pane.text
        inner = str(text.cget("yscrollcommand"))

        def scrolled(first: str, last: str) -> None:
            text.tk.call(inner, first, last)
            if pane not in self._placed:
                # Lines that came while the pane had no size yet (a login's history comes
                # before the window is drawn) left it at the top: the first load shows the
                # newest, so the first time it has a size and lines, go to the end.
                if text.winfo_height() > 1 and self.ids.get(conversation):
                    self._placed.add(pane)
                    text.after_idle(lambda: self._first_view(pane))
                return
            if float(first) <= 0.0 and conversation == self.model.current:
                text.after_idle(lambda: self._at_top(conversation))

        text.configure(yscrollcommand=text.register(scrolled))

    def _first_view(self, pane: MessagePane) -> None:
        """A pane's first view is its end, unless a search result is shown in it."""
        if pane is not self._showing_result and pane.winfo_exists():
            pane.scroll_to_end()

    def _at_top(self, conversation: Conversation) -> None:
        if conversation != self.model.current or self.model.state(conversation).oldest_id is None:
            return
        pane = self.panes.get(conversation)
        if pane is None or float(pane.text.yview()[0]) > 0.0:
            return
        self._request_page(conversation)

    def _request_page(self, conversation: Conversation) -> None:
        before = self.model.page_request(conversation)
        if before is not None and conversation.direct:
            self._direct_loading = conversation
        if before is not None and not self.app.session.request(requests.page(conversation, before)):
            self.model.page_arrived(conversation, [], True)  # not sent: try again later

    # -------------------------------------------------------------- search
    def search(self, words: str) -> None:
        if self._available("Search"):
            self.app.session.request(Search(words))

    def show_result(self, message: Message) -> None:
        """Open the result's conversation and show the message, paging back to it."""
        conversation = conversation_of(message, self.model.me)
        if not conversation.direct and conversation not in self.panes:
            self._error(f"join #{conversation.key} to read it there")
            return
        self.open(conversation)
        self._jump = message
        self._continue_jump(conversation)

    def _continue_jump(self, conversation: Conversation) -> None:
        message = self._jump
        if message is None or conversation_of(message, self.model.me) != conversation:
            return
        state = self.model.state(conversation)
        if message.id is not None and message.id not in self.ids[conversation] and state.more:
            self._request_page(conversation)  # not loaded yet: one more page back
            return
        self._jump = None
        pane = self.pane(conversation)
        self._showing_result = pane
        pane.flush()
        text = pane.text
        found = (
            text.search(message.text.split("\n")[0], "1.0", stopindex="end") if message.text else ""
        )
        if found:
            pane.show_line(found)

    # ------------------------------------------------------------- Ctrl+K
    def switch_choices(self) -> list[str]:
        labels = [c.label for c in self.model.all()]
        if self.model.extended:
            known = {label.lower() for label in labels}
            for user in self.app.session.users:
                label = f"@{user}"
                if label.lower() not in known and user.lower() != self.model.me.lower():
                    labels.append(label)
        return labels

    # ------------------------------------------------------------- helpers
    def _user_clicked(self, _event: tk.Event[tk.Misc]) -> None:
        users = self.app.chat_view.users
        for index in users.listbox.curselection():  # type: ignore[no-untyped-call]
            if 0 <= index < len(users.names) and self._available("Direct messages"):
                self.open(Conversation.with_user(users.names[index]))
                self.app.chat_view.input.focus_set()

    def _available(self, what: str) -> bool:
        if self.model.extended:
            return True
        self._error(NOT_HERE.format(command=what))
        return False

    def _error(self, text: str) -> None:
        self.app.pane.add_info(text, error=True)
        self.app.pane.flush()

    def _own(self, message: Message) -> bool:
        return bool(self.model.me) and message.user.lower() == self.model.me.lower()

    def _save(self) -> None:
        if self.server:
            self.saved.put(self.server, self.model.saved())


def _only(action: Callable[[], None]) -> Callable[[tk.Event[tk.Misc]], str]:
    """A key binding that runs ``action`` and nothing else (no class binding after it)."""

    def handler(_event: tk.Event[tk.Misc]) -> str:
        action()
        return "break"

    return handler
