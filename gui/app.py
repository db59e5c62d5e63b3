"""``ChatApp``: one chat window.  It owns the screens (connect, chat), the menus, the
``Session`` and the loop that moves network events onto the widgets.

The loop (``_pump``) is the only bridge between threads: it drains the session's queue for a
bounded time, flushes the message pane once, and re-arms itself with ``after`` - at once while
a burst is still queued, every ``BUSY_POLL_MS`` while things happen and every
``IDLE_POLL_MS`` after a quiet spell (each turn is cheap: one ``Queue.get_nowait``).
Drawing and input handling run between two turns, so a burst never freezes the window.

Several ``ChatApp`` may share one Tk root (the tests run alice and bob side by side); each
owns its own ``Toplevel`` (or the root) and nothing global except the ttk theme.
"""

from __future__ import annotations

import logging
import math
import re
import time
import tkinter as tk
from collections.abc import Callable
from pathlib import Path
from tkinter import font as tkfont
from tkinter import messagebox, ttk

from common.message import Message
from common.protocol import MAX_MESSAGE_CHARS, ErrorResponse
from gui import commands, outbox, theme
from gui.attention import Attention
from gui.chat_view import ChatView
from gui.connect_view import ConnectView
from gui.conversation_view import Conversations
from gui.hosting import HostConfig, HostedServer
from gui.icon import set_window_icon
from gui.menus import build_menus, colour_menus
from gui.notify import Notifier
from gui.pending import Pending
from gui.question import Question, ask
from gui.register_dialog import RegisterDialog
from gui.session import Backoff, Session, State, split_text
from gui.settings import MAX_FONT_SIZE, MIN_FONT_SIZE, Settings
from gui.trust import KNOWN_HOSTS_FILE, KnownHosts, TLSOptions
from server.config import default_db_path

log = logging.getLogger(__name__)

VERSION = "1.0.0"
# Per loop turn: at most this long handling events, and at most this many (drawing them in
# the flush that follows costs about 15 us each), so that a turn stays far under 50 ms.
DRAIN_BUDGET_SECONDS = 0.010
DRAIN_LIMIT = 600
# Polling the queue: often while things happen, slowly after a quiet spell.  Each poll costs
# a Tcl timer and a Python call (~0.3 ms under Xvfb); 10 per second keep idle CPU well under
# 1 %, and the first message after a pause shows at most 100 ms late.
BUSY_POLL_MS = 20
IDLE_POLL_MS = 100
QUIET_SECONDS = 2.0


class ChatApp:
    """See the module docstring.  Create it on the Tk thread; call ``quit`` to end it."""

    def __init__(
        self,
        window: tk.Tk | tk.Toplevel,
        config_dir: Path,
        *,
        host_config: HostConfig | None = None,
        backoff: Backoff | None = None,
        login_timeout: float = 8.0,
    ) -> None:
        self.window = window
        self.config_dir = config_dir
        self.settings = Settings.load(config_dir)
        self.host_config = host_config or HostConfig()
        self.hosted: HostedServer | None = None
        self._closed = False
        self._last_activity = time.monotonic()
        self._focus_later: Callable[[], None] | None = None
        self._last_state = State.DISCONNECTED
        self._status = ""
        self._status_dirty = False
        self._countdown = -1  # the seconds shown in "Reconnecting in N s"
        self._was_lost = False
        self.theme_in_use = theme.apply(window, self.settings.theme)
        family = tkfont.nametofont("TkDefaultFont", root=window).actual("family")
        self.text_font = tkfont.Font(window, family=family, size=self.settings.font_size)

        window.title("TkChat")
        self._icon = set_window_icon(window)
        window.minsize(560, 380)
        window.geometry("980x640")
        self.frame = ttk.Frame(window)
        self.frame.pack(fill="both", expand=True)
        self.connect_view = ConnectView(
            self.frame,
            self.connect,
            self.host_and_join,
            self.cancel_connect,
            remember=self.settings.remember_passwords,
        )
        # Above the connect screen while still connected: the way back to the chat.
        self.back_bar = ttk.Frame(self.frame, padding=(12, 8, 12, 0))
        self.back_label = ttk.Label(self.back_bar, text="", wraplength=360)
        self.back_button = ttk.Button(
            self.back_bar, text="Back to the chat", style="Accent.TButton", command=self.show_chat
        )
        self.back_button.pack(side="right")
        self.back_label.pack(side="left", fill="x", expand=True)
        self.chat_view = ChatView(
            self.frame,
            self.text_font,
            self.settings.scrollback,
            self.submit,
            on_reconnect=self.reconnect_now,
        )
        self.pane = self.chat_view.pane
        self.session = Session(
            self, window.after, window.after_cancel, backoff=backoff, login_timeout=login_timeout
        )
        # Rooms and direct messages: one pane per conversation (gui/conversation_view.py).
        self.conversations = Conversations(self)
        self.session.claim = self.conversations.claim
        self.theme_var = tk.StringVar(window, value=self.settings.theme)
        self.notify_var = tk.BooleanVar(window, value=self.settings.notifications)
        self.attention = Attention(window, lambda: self.settings.notifications)
        self._build_menu()
        self._bind_keys()
        self.connect_view.fill(self.settings.host, self.settings.port, self.settings.username)
        self.connect_view.tls_var.set(self.settings.tls)
        self.show_connect()
        window.protocol("WM_DELETE_WINDOW", self.quit)
        # One Tcl command for the whole life of the loop: ``after(ms, func)`` would create and
        # delete a command per turn, and each of those makes Tcl recompile its procedures.
        self._pump_command = window.register(self._pump)
        self._pump_id: str | None = None
        self._schedule_pump(BUSY_POLL_MS)

    # ------------------------------------------------------------- building
    def _build_menu(self) -> None:
        self.menus = build_menus(self)
        self.window.configure(menu=self.menus[0])
        self._colour_menus()

    def _bind_keys(self) -> None:
        window = self.window
        bindings: dict[str, Callable[[], None]] = {
            "<Control-plus>": lambda: self.change_font(1),
            "<Control-equal>": lambda: self.change_font(1),
            "<Control-KP_Add>": lambda: self.change_font(1),
            "<Control-minus>": lambda: self.change_font(-1),
            "<Control-KP_Subtract>": lambda: self.change_font(-1),
            "<Control-Key-0>": lambda: self.change_font(0),
            "<Control-q>": self.quit,
            "<Escape>": self._escape,
        }
        for sequence, action in bindings.items():
            window.bind(sequence, _ignore_event(action), add=True)
        window.bind("<FocusIn>", self._focus_changed, add=True)
        window.bind("<FocusOut>", self._focus_changed, add=True)
        window.bind("<<ThemeChanged>>", lambda _e: self._colour_menus(), add=True)
        # The pane shown now (each conversation has its own), not the first one.
        self.chat_view.input.bind("<Prior>", lambda _e: self.pane.page(-1))
        self.chat_view.input.bind("<Next>", lambda _e: self.pane.page(1))

    def _colour_menus(self) -> None:
        colour_menus(self.window, self.menus)

    # -------------------------------------------------------------- screens
    def show_connect(self) -> None:
        self.chat_view.pack_forget()
        self.connect_view.pack(fill="both", expand=True)
        session = self.session
        if session.state is not State.DISCONNECTED and session.ever_online:
            self.back_label.configure(
                text=f"You are still in the chat at {session.host}:{session.port} as "
                f"{session.name}. Connecting elsewhere leaves it."
            )
            self.back_bar.pack(side="top", fill="x", before=self.connect_view)
        else:
            self.back_bar.pack_forget()
        self.connect_view.set_busy(self.session.state in (State.CONNECTING, State.LOGGING_IN))
        self._focus(self.connect_view.focus_first_empty)
        self.attention.title_dirty = True

    def show_chat(self) -> None:
        self.connect_view.pack_forget()
        self.back_bar.pack_forget()
        self.chat_view.pack(fill="both", expand=True)
        self._focus(self.chat_view.input.focus_set)
        self.attention.title_dirty = True

    def _escape(self) -> None:
        """Escape on the connect screen goes back to a chat that is still going on."""
        if self.back_bar.winfo_manager():
            self.show_chat()

    def _focus(self, give_focus: Callable[[], None]) -> None:
        """Move the keyboard focus now if this window has it, else when it comes back: in
        Tk, ``focus_set`` in an unfocused window of the same app would steal the focus from
        the window the user is typing in (a login finishing in the background, say)."""
        if self.focused:
            give_focus()
            self._focus_later = None
        else:
            self._focus_later = give_focus

    @property
    def on_chat_screen(self) -> bool:
        return bool(self.chat_view.winfo_manager())

    # -------------------------------------------------------------- actions
    def connect(
        self,
        host: str,
        port: int,
        name: str,
        password: str | None = None,
        server_password: str | None = None,
    ) -> None:
        """Connect screen's Connect: a new conversation (the pane starts empty)."""
        self.pane.clear()
        self.settings.host, self.settings.port, self.settings.username = host, port, name
        self.pane.set_own_name(name)
        self.chat_view.users.set_own_name(name)
        self.chat_view.users.set_users([])
        self.settings.tls = self.connect_view.tls_var.get()
        self.conversations.reset(host, port, name)
        self.session.connect(
            host, port, name, password, server_password, tls=self.tls_options(self.settings.tls)
        )
        self.session.restore_pending(outbox.take(self.config_dir, host, port, name))

    def cancel_connect(self) -> None:
        """The connect screen's Cancel: give up the attempt in progress."""
        self.session.close()

    def register_name(self) -> RegisterDialog | None:
        """File > Register this name…: ask for the password twice and send ``register``."""
        if self.session.state is not State.ONLINE:
            self.show_connect()
            self.connect_view.show_error("Log in first, then register the name you use.")
            return None
        return RegisterDialog(
            self.window,
            self.session.name,
            change=self.session.password is not None,
            on_register=self.session.register,
        )

    def tls_options(self, use_tls: bool) -> TLSOptions | None:
        """How this app checks TLS servers: pins in the config dir, plus the settings' CA."""
        if not use_tls:
            return None
        known = KnownHosts(self.config_dir / KNOWN_HOSTS_FILE)
        return TLSOptions(known, self.settings.ca_file or None)

    def _trust_own_server(self, hosted: HostedServer) -> TLSOptions | None:
        """The hosted server's certificate is ours: pin it, so our own connection checks it."""
        if hosted.fingerprint is None:
            return None
        options = self.tls_options(True)
        assert options is not None and options.known_hosts is not None
        options.known_hosts.remember(hosted.connect_host, hosted.port, hosted.fingerprint)
        self.connect_view.tls_var.set(True)
        return options

    def host_and_join(self, name: str) -> None:
        """Start (or reuse) the embedded server and join it as ``name``."""
        if self._start_hosting() is None:
            return
        hosted = self.hosted
        assert hosted is not None
        self.pane.clear()
        self.pane.set_own_name(name)
        self.chat_view.users.set_own_name(name)
        self.settings.username = name
        tls = self._trust_own_server(hosted)
        self.conversations.reset(hosted.connect_host, hosted.port, name)
        self.session.connect(hosted.connect_host, hosted.port, name, tls=tls)
        self.session.restore_pending(
            outbox.take(self.config_dir, hosted.connect_host, hosted.port, name)
        )

    def start_local_server(self) -> HostedServer | None:
        """For ``--host-local``: the embedded server, before anyone logs in."""
        if self._start_hosting() is None:
            return None
        assert self.hosted is not None
        self.connect_view.fill(self.hosted.connect_host, self.hosted.port, self.settings.username)
        self._trust_own_server(self.hosted)
        self.connect_view.set_busy(
            False,
            f"A chat server is running here; others join at {self.hosted.share_address()}."
            + self._fingerprint_note(),
        )
        return self.hosted

    def _start_hosting(self) -> HostedServer | None:
        """The embedded server, started once; on failure the connect screen says why."""
        if self.hosted is None:
            try:
                self.hosted = HostedServer(self.host_config)
            except OSError as exc:  # a port we cannot bind, a folder we cannot write
                log.warning("cannot host a chat: %s", exc)
                self.connect_view.show_error(f"Cannot start a chat server here: {exc}")
            except Exception as exc:  # sqlite3.DatabaseError: "file is not a database"
                db = self.host_config.db or str(default_db_path())
                log.warning("cannot host a chat with history file %s: %s", db, exc)
                self.connect_view.show_error(
                    f"Cannot start a chat server here: the history file {db} cannot be "
                    f"read ({exc}). Move it away to start with an empty history."
                )
        return self.hosted

    def _fingerprint_note(self) -> str:
        """For the host: what people joining should see when their client asks them to trust
        this server's self-signed certificate."""
        if self.hosted is None or self.hosted.fingerprint is None:
            return ""
        return (
            " with TLS. Certificate fingerprint (SHA-256), for them to compare: "
            f"{self.hosted.fingerprint}"
        )

    def host_from_menu(self) -> None:
        self.show_connect()
        self.connect_view.host()

    def reconnect_now(self) -> None:
        """File > Reconnect now, and the button beside a "Reconnecting in ..." status."""
        self.session.reconnect_now()

    def disconnect(self) -> None:
        self.session.logout()
        self.show_connect()

    def submit(self, text: str) -> bool:
        """Input box Enter: a command or a message.  True when the input may be cleared."""
        parsed = commands.parse(text)
        if isinstance(parsed, str):
            if not parsed.strip():
                return False
            if len(parsed) > MAX_MESSAGE_CHARS:
                return self._send_in_parts(parsed)
            return self.session.send(parsed, self.conversations.current) is not None
        if self.conversations.command(parsed):
            self.pane.flush()
            return True
        if not parsed.known:
            self.pane.add_info(
                f"unknown command {parsed.name[:40]}; /help lists the commands "
                "(start with // to send a message beginning with /)",
                error=True,
            )
            self.pane.flush()
            return False
        if parsed.name == "/names":
            self.session.request_names()
        elif parsed.name == "/help":
            self.show_command_help()
        elif parsed.name == "/clear":
            self.pane.clear()
        elif parsed.name == "/logout":
            self.disconnect()
        elif parsed.name == "/quit":
            self.window.after_idle(self.quit)
        self.pane.flush()
        return True

    def _send_in_parts(self, text: str) -> bool:
        """Too long for one message: offer to send it as several (True when sent)."""
        parts = split_text(text)
        send = f"Send as {len(parts)} messages"
        choice = ask(
            self.window,
            "Long message",
            f"This text has {len(text):,} characters; one message holds at most "
            f"{MAX_MESSAGE_CHARS:,}. Send it as {len(parts)} messages, split at line breaks "
            "or spaces? (Cancel keeps it in the box to shorten.)",
            [send, "Cancel"],
            send,
        )
        if choice != send:
            return False
        where = self.conversations.current
        return all(self.session.send(part, where) is not None for part in parts)

    def show_server_help(self, text: str) -> None:
        """Help > Server help: the server's text as plain lines, not protocol notation."""
        where = f"{self.session.host}:{self.session.port}"
        self.pane.add_info(f"Help from the server at {where}:")
        for line in readable_help(text):
            self.pane.add_info("    " + line)
        self.pane.flush()

    def show_command_help(self) -> None:
        for line in commands.help_lines():
            self.pane.add_info(line)
        self.pane.flush()

    def set_theme(self, choice: str) -> None:
        self.settings.theme = choice
        self.theme_var.set(choice)
        self.theme_in_use = theme.apply(self.window, choice)
        self.settings.save(self.config_dir)

    def set_notifications(self, on: bool) -> None:
        """View > Desktop notifications (the bell and the title count stay either way)."""
        self.settings.notifications = on
        self.notify_var.set(on)
        self.settings.save(self.config_dir)

    def change_font(self, step: int) -> None:
        size = Settings().font_size if step == 0 else self.settings.font_size + step
        size = max(MIN_FONT_SIZE, min(MAX_FONT_SIZE, size))
        self.settings.font_size = size
        self.text_font.configure(size=size)
        self.pane.sync_fonts()
        self.settings.save(self.config_dir)

    def about(self) -> None:
        messagebox.showinfo(
            "About TkChat",
            f"TkChat {VERSION}\nA self-hosted desktop chat speaking the KTN protocol.\n"
            f"Tk {self.window.tk.call('info', 'patchlevel')}",
            parent=self.window,
        )

    # ------------------------------------------------------ SessionListener
    def session_state(self, state: State, detail: str) -> None:
        status = detail[:1].upper() + detail[1:]
        if state is State.ONLINE and self.hosted is not None:
            tls = " with TLS" if self.hosted.fingerprint is not None else ""
            status += f" · hosting: others join at {self.hosted.share_address()}{tls}"
        self._status = status
        self._refresh_status()
        self.chat_view.users.set_online(state is State.ONLINE)
        # The pane gets the turning points (lost, back, ended); the status line every step.
        previous, self._last_state = self._last_state, state
        turning = (
            (state is State.WAITING and previous is State.ONLINE)
            or (state is State.ONLINE and previous is not State.LOGGING_IN)
            or (state is State.ONLINE and self._was_lost)
            or (state is State.DISCONNECTED and previous is not State.DISCONNECTED)
        )
        if state is State.WAITING:
            self._was_lost = True
        if self.on_chat_screen and turning:
            self.pane.add_info(status, error=state is not State.ONLINE)
        if state is State.ONLINE:
            self._was_lost = False
        else:
            self.conversations.offline()
        self.attention.title_dirty = True

    def _refresh_status(self) -> None:
        """The status line: what the connection does, when the next try is (counting down),
        and how much is waiting to be sent."""
        session = self.session
        state = session.state
        kind = {State.ONLINE: "ok", State.WAITING: "problem", State.DISCONNECTED: "problem"}
        status = self._status
        if state is State.WAITING and session.retry_at is not None:
            left = max(0, math.ceil(session.retry_at - time.monotonic()))
            self._countdown = left
            # The first sentence only: the pane has the full reason (with its hints).
            reason = session.lost_reason.split(". ")[0].rstrip(".")
            status = f"Offline: {reason}. Reconnecting in {left} s (attempt {session.attempt})"
        waiting = len(session.pending)
        if waiting and state is not State.ONLINE:
            status += f" · {waiting} message{'s' if waiting > 1 else ''} waiting to be sent"
        self.chat_view.set_status(status, kind.get(state, "busy"), state is State.WAITING)
        self.menus[1].entryconfigure(
            "Reconnect now", state="normal" if state is State.WAITING else "disabled"
        )

    def login_failed(self, reason: str, error: ErrorResponse | None = None) -> None:
        if self.on_chat_screen:
            self.show_connect()
        self.connect_view.show_login_error(reason, error)

    def registered(self, password: str) -> None:
        session = self.session
        self.connect_view.registered(session.host, session.port, session.name, password)

    def logged_in(self, first: bool) -> None:
        self.conversations.online()
        if first:
            session = self.session
            self.connect_view.login_succeeded(session.host, session.port, session.name)
            self.settings.remember_passwords = self.connect_view.remember_var.get()
            self.settings.save(self.config_dir)
            self.show_chat()
            if self.hosted is not None:
                self.pane.add_info(
                    f"You are hosting this chat. Others join at {self.hosted.share_address()}"
                    + (self._fingerprint_note() or ".")
                )

    def show_message(
        self, message: Message, own: bool, settled: str | None, from_history: bool
    ) -> None:
        live_other = not own and not from_history
        pane = self.conversations.route(message)  # the pane of the message's conversation
        if pane is None:
            return  # shown there already
        if settled is not None:
            pane.settle(settled)
            self._status_dirty = True
        if live_other and not self.focused and self.unread == 0:
            pane.add_unread_marker()
        # A direct message counts like a mention (title, bell, the list's mark).
        mention = pane.add_message(message, own) or message.to is not None
        if live_other:
            self.conversations.arrived(message, mention)
            self.attention.arrived(message, mention)

    def show_pending(self, pending: Pending) -> None:
        self.conversations.pane(pending.conversation).add_pending(pending.nonce, pending.text)
        self._refresh_status()

    def show_info(self, text: str) -> None:
        self.pane.add_info(text)

    def show_error(self, text: str) -> None:
        self.pane.add_info(text, error=True)

    def users_changed(self, users: list[str]) -> None:
        self.conversations.users_changed(users)

    # ---------------------------------------------------------- the loop
    def _pump(self) -> None:
        more = False
        delay = IDLE_POLL_MS
        try:
            more = self.session.drain(DRAIN_BUDGET_SECONDS, DRAIN_LIMIT)
            now = time.monotonic()
            self.conversations.flush()
            if self.pane.flush() or more:
                self._last_activity = now
            if self.attention.title_dirty:
                self._update_title()
            if self._status_dirty or self._countdown_changed():
                self._status_dirty = False
                self._refresh_status()
            if more:
                delay = 1
            elif now - self._last_activity < QUIET_SECONDS or self.session.state not in (
                State.ONLINE,
                State.DISCONNECTED,
            ):
                delay = BUSY_POLL_MS
        finally:
            self._schedule_pump(delay)

    def _countdown_changed(self) -> bool:
        """While waiting to reconnect: has the shown "Reconnecting in N s" gone stale?"""
        retry_at = self.session.retry_at
        if retry_at is None or self.session.state is not State.WAITING:
            return False
        return max(0, math.ceil(retry_at - time.monotonic())) != self._countdown

    def _schedule_pump(self, delay: int) -> None:
        if not self._closed:
            self._pump_id = str(self.window.tk.call("after", delay, self._pump_command))

    def _update_title(self) -> None:
        session = self.session
        title = "TkChat"
        if session.name and session.state is not State.DISCONNECTED:
            title = f"{session.name} @ {session.host}:{session.port} — TkChat"
        self.window.title(self.attention.title(title))

    # Where the person's attention is: gui/attention.py (read here by the window and tests).
    @property
    def unread(self) -> int:
        return self.attention.unread

    @property
    def focused(self) -> bool:
        return self.attention.focused

    @property
    def notifier(self) -> Notifier:
        return self.attention.notifier

    # ------------------------------------------------------ notifications
    def _focus_changed(self, _event: tk.Event[tk.Misc]) -> None:
        self.window.after_idle(self._check_focus)

    def _check_focus(self) -> None:
        if self._closed:
            return
        try:
            widget = self.window.focus_displayof()
            focused = widget is not None and widget.winfo_toplevel() is self.window
        except (KeyError, tk.TclError):  # focus on a Tk-internal widget (menu, popdown)
            focused = True
        self.set_focused(focused)

    def set_focused(self, focused: bool) -> None:
        """Window focus changed: coming back clears the unread count (the marker stays)."""
        if not self.attention.set_focused(focused):
            return
        if focused and self._focus_later is not None:
            self._focus_later()
            self._focus_later = None
        if self.attention.title_dirty:
            self._update_title()

    # ------------------------------------------------------------- closing
    def close(self) -> None:
        """Log out, stop a hosted server, save settings; the window stays (tests reuse the
        root).  Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._pump_id is not None:
            try:
                self.window.tk.call("after", "cancel", self._pump_id)
                self.window.deletecommand(self._pump_command)
            except tk.TclError:
                pass
        self.session.logout()
        self.attention.close()
        if self.hosted is not None:
            self.hosted.stop(wait=True)
            self.hosted = None
        self.settings.save(self.config_dir)

    def quit(self) -> None:
        """Ctrl+Q, File > Quit, /quit and the window's close box: ask first if closing would
        end a chat others are in or drop unsent messages."""
        if self._closed or Question.current is not None:  # a second close click while asking
            return
        if not self.confirm_close():
            return
        self.close()
        self.window.destroy()

    def confirm_close(self) -> bool:
        """True when the window may close; keeps unsent messages if the person says so."""
        others = self.hosted_others()
        if others:
            people = len(others) + 1
            shown = ", ".join(others[:5]) + (" and others" if len(others) > 5 else "")
            text = (
                f"{people} people are in this chat; closing ends it. "
                f"{shown} will be disconnected, and the chat is gone until someone hosts "
                "it again."
            )
            choice = ask(
                self.window, "Close the chat?", text, ["Close the chat", "Cancel"], "Cancel"
            )
            if choice != "Close the chat":
                return False
        waiting = list(self.session.pending.values())
        if waiting:
            session = self.session
            count = len(waiting)
            what = f"{count} message{'s' if count > 1 else ''} you typed"
            text = (
                f"{what} {'are' if count > 1 else 'is'} not sent yet. Keep "
                f"{'them' if count > 1 else 'it'} and send {'them' if count > 1 else 'it'} "
                f"the next time you connect to {session.host}:{session.port} as "
                f"{session.name}? If you discard {'them' if count > 1 else 'it'}, "
                f"{'they are' if count > 1 else 'it is'} lost."
            )
            keep, discard = "Keep and quit", "Discard and quit"
            choice = ask(self.window, "Unsent messages", text, [keep, discard, "Cancel"], keep)
            if choice not in (keep, discard):
                return False
            if choice == keep:
                outbox.keep(
                    self.config_dir,
                    session.host,
                    session.port,
                    session.name,
                    [(p.nonce, p.text, p.conversation.label) for p in waiting],
                )
        return True

    def hosted_others(self) -> list[str]:
        """Who else is in the chat this window hosts (empty when it hosts none)."""
        if self.hosted is None:
            return []
        own = self.session.name.lower()
        return [n for n in self.hosted.server.room.names() if n.lower() != own]


_JSON_OBJECT = re.compile(r"\s*\{[^{}]*\}")


def readable_help(text: str) -> list[str]:
    """A server's help text for a person: no JSON objects (how requests look on the wire is
    TkChat's business, not the user's), no blank or duplicate spacing."""
    lines = []
    for raw in text.splitlines():
        line = _JSON_OBJECT.sub("", raw).rstrip()
        if "JSON" in line:  # a sentence about the wire format: say what it means for the user
            kept = [part for part in re.split(r"(?<=\.)\s+", line) if "JSON" not in part]
            if line.endswith(":"):
                kept.append(
                    "It answers these requests (TkChat sends them for you; "
                    "Help > Commands lists what you type):"
                )
            line = " ".join(kept)
        line = re.sub(r"\s+([,.:;])", r"\1", line)
        line = re.sub(r"(\S)\s{2,}(\S)", r"\1 — \2", line.strip())
        if line:
            lines.append(line)
    return lines or ["(the server sent no help text)"]


def _ignore_event(action: Callable[[], None]) -> Callable[[tk.Event[tk.Misc]], str]:
    """A key binding that runs ``action`` and stops the key from doing anything else."""

    def handler(_event: tk.Event[tk.Misc]) -> str:
        action()
        return "break"

    return handler
