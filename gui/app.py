"""``ChatApp``: one chat window.  It owns the screens (connect, chat), the menus and the
``Session``, and shows what the session reports (it is the ``SessionListener``).

What it delegates, each to a module of its own: the loop that moves network events onto the
widgets (gui/pump.py), the conversations and their panes (gui/conversation_view.py), unread
counts and notifications (gui/attention.py), the chat this window hosts (gui/host.py) and the
questions before closing (gui/closing.py).

Several ``ChatApp`` may share one Tk root (the tests run alice and bob side by side); each
owns its own ``Toplevel`` (or the root) and nothing global except the ttk theme.
"""

from __future__ import annotations

import logging
import re
import tkinter as tk
from collections.abc import Callable
from pathlib import Path
from tkinter import font as tkfont
from tkinter import messagebox, ttk

from common.message import Message
from common.protocol import MAX_MESSAGE_CHARS, ErrorResponse
from gui import closing, commands, long_message, outbox, theme
from gui.attention import Attention
from gui.chat_view import ChatView
from gui.connect_view import ConnectView
from gui.conversation_view import Conversations
from gui.host import Host
from gui.hosting import HostConfig
from gui.icon import set_window_icon
from gui.menus import build_menus, colour_menus
from gui.net.trust import KNOWN_HOSTS_FILE, KnownHosts, TLSOptions
from gui.pending import Pending
from gui.pump import EventPump
from gui.question import Question
from gui.register_dialog import RegisterDialog
from gui.retry import Backoff
from gui.session import Session, State
from gui.settings import MAX_FONT_SIZE, MIN_FONT_SIZE, Settings
from gui.status_line import StatusLine

log = logging.getLogger(__name__)

VERSION = "1.0.0"


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
        self._closed = False
        self._focus_later: Callable[[], None] | None = None
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
        # The chat this window hosts, if any (gui/host.py owns its server).
        self.host = Host(host_config or HostConfig(), self.connect_view, self.tls_options)
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
        self.pump = EventPump(window, self.session, self._draw)

    # ------------------------------------------------------------- building
    def _build_menu(self) -> None:
        self.menus = build_menus(self)
        self.window.configure(menu=self.menus[0])
        self._colour_menus()
        self.status = StatusLine(self.session, self.chat_view, self.menus[1])

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
        if self.attention.focused:
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
        self.settings.host, self.settings.port = host, port
        self.settings.tls = self.connect_view.tls_var.get()
        tls = self.tls_options(self.settings.tls)
        self._join(host, port, name, password=password, server_password=server_password, tls=tls)

    def host_and_join(self, name: str) -> None:
        """The connect screen's Host: start (or reuse) the embedded server, join it."""
        hosted = self.host.start()
        if hosted is not None:
            tls = self.host.trust_own_server()
            self._join(hosted.connect_host, hosted.port, name, tls=tls)

    def _join(
        self,
        host: str,
        port: int,
        name: str,
        *,
        password: str | None = None,
        server_password: str | None = None,
        tls: TLSOptions | None = None,
    ) -> None:
        """A new conversation: the pane starts empty, messages kept unsent for this server
        and name (gui/outbox.py) go out once online."""
        self.pane.clear()
        self.settings.username = name
        self.pane.set_own_name(name)
        self.chat_view.users.set_own_name(name)
        self.chat_view.users.set_users([])
        self.conversations.reset(host, port, name)
        self.session.connect(host, port, name, password, server_password, tls=tls)
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
            parts = [parsed]
            if len(parsed) > MAX_MESSAGE_CHARS:  # offer to send it as several
                parts = long_message.ask_to_split(self.window, parsed) or []
            where = self.conversations.current
            return bool(parts) and all(self.session.send(p, where) is not None for p in parts)
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
        if state is State.ONLINE:
            status += self.host.status_note()
        turning = self.status.changed(state, status)
        self.chat_view.users.set_online(state is State.ONLINE)
        # The pane gets the turning points (lost, back, ended); the status line every step.
        if self.on_chat_screen and turning:
            self.pane.add_info(status, error=state is not State.ONLINE)
        if state is not State.ONLINE:
            self.conversations.offline()
        self.attention.title_dirty = True

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
            welcome = self.host.welcome()
            if welcome is not None:
                self.pane.add_info(welcome)

    def show_message(
        self, message: Message, own: bool, settled: str | None, from_history: bool
    ) -> None:
        live_other = not own and not from_history
        pane = self.conversations.route(message)  # the pane of the message's conversation
        if pane is None:
            return  # shown there already
        if settled is not None:
            pane.settle(settled)
            self.status.dirty = True
        if live_other and not self.attention.focused and self.attention.unread == 0:
            pane.add_unread_marker()
        # A direct message counts like a mention (title, bell, the list's mark).
        mention = pane.add_message(message, own) or message.to is not None
        if live_other:
            self.conversations.arrived(message, mention)
            self.attention.arrived(message, mention)

    def show_pending(self, pending: Pending) -> None:
        self.conversations.pane(pending.conversation).add_pending(pending.nonce, pending.text)
        self.status.refresh()

    def show_info(self, text: str) -> None:
        self.pane.add_info(text)

    def show_error(self, text: str) -> None:
        self.pane.add_info(text, error=True)

    def users_changed(self, users: list[str]) -> None:
        self.conversations.users_changed(users)

    # ---------------------------------------------------------- the loop
    def _draw(self) -> bool:
        """Each turn of the loop (gui/pump.py), after draining: draw once what changed.
        True when the pane drew something."""
        self.conversations.flush()
        drew = self.pane.flush()
        if self.attention.title_dirty:
            self._update_title()
        if self.status.stale():
            self.status.refresh()
        return drew > 0

    def _update_title(self) -> None:
        session = self.session
        title = "TkChat"
        if session.name and session.state is not State.DISCONNECTED:
            title = f"{session.name} @ {session.host}:{session.port} — TkChat"
        self.window.title(self.attention.title(title))

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
        self.pump.stop()
        self.session.logout()
        self.attention.close()
        self.host.stop()
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
        """True when the window may close (gui/closing.py asks what closing would lose)."""
        others = self.host.others(self.session.name)
        return closing.may_close(self.window, others, self.session, self.config_dir)


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
