"""``ConnectView``: the first screen.  Server (``host:port`` accepted), port, name, the name's
password, a server password that appears when a server asks for one, "Remember passwords",
Connect, Cancel while connecting, and "Host a chat".

Each problem shows under the field it is about, in words a person can act on: a taken name
under the name, a wrong password under the password, an unreachable server under the server.
Every field's error line has its space reserved, so an error appearing never moves the form.

Passwords are kept only when "Remember passwords" is ticked, and then only in the system
keychain (``gui.secrets``), never in the settings file; without a keychain the box says that
they are not remembered.
"""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable
from tkinter import font as tkfont
from tkinter import ttk

from common.protocol import AuthField, ErrorCode, ErrorResponse, is_valid_username
from gui import secrets, theme

PASSWORD_HINT = "Only for a registered name."
DOT = "•"

# on_connect(host, port, name, password, server_password)
ConnectCallback = Callable[[str, int, str, str | None, str | None], None]


def split_server(text: str) -> tuple[str, int | None] | None:
    """``host``, ``host:port``, ``[v6]``, ``[v6]:port`` or a bare IPv6 address into the host
    and the port (None: not given); None when the port part is not a port number."""
    text = text.strip()
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
        return (host, _port(rest[1:])) if rest else (host, None)
    if text.count(":") == 1:
        host, _, port_text = text.partition(":")
        port = _port(port_text)
        return None if port is None else (host, port)
    return text, None  # a name, an IPv4 address or a bare IPv6 address


def _port(text: str) -> int | None:
    try:
        port = int(text.strip())
    except ValueError:
        return None
    return port if 0 < port < 65536 else None


class ConnectView(ttk.Frame):
    def __init__(
        self,
        master: tk.Misc,
        on_connect: ConnectCallback,
        on_host: Callable[[str], None],
        on_cancel: Callable[[], None] | None = None,
        *,
        remember: bool = False,
    ) -> None:
        super().__init__(master, padding=4)
        self.on_connect = on_connect
        self.on_host = on_host
        self.on_cancel = on_cancel
        base = tkfont.nametofont("TkDefaultFont", root=self)
        self.note_font = tkfont.Font(self, family=base.actual("family"), size=9)
        self._line_sizes: dict[int, int] = {}  # grid row of an error line: its height
        card = ttk.Frame(self, padding=(16, 6))
        self.card = card
        card.columnconfigure(1, weight=1)
        # The heading goes when the window is too short for it (the app's minimum 560x380
        # with the server password shown): the fields matter more.
        self.heading = ttk.Frame(card)
        self.heading.grid(row=0, column=0, columnspan=2, sticky="w", pady=(0, 8))
        ttk.Label(self.heading, text="TkChat", font=("TkHeadingFont", 18, "bold")).pack(anchor="w")
        ttk.Label(self.heading, text="Join a chat server, or host one for your team.").pack(
            anchor="w"
        )
        self.host_var = tk.StringVar(self)
        self.port_var = tk.StringVar(self)
        self.name_var = tk.StringVar(self)
        self.password_var = tk.StringVar(self)
        self.server_password_var = tk.StringVar(self)
        self.remember_var = tk.BooleanVar(self, value=remember)

        # Server and port share a row; "host:port" typed into Server is understood too.
        ttk.Label(card, text="Server").grid(row=2, column=0, sticky="w", padx=(0, 12))
        where = ttk.Frame(card)
        where.grid(row=2, column=1, sticky="ew")
        self.server_row = where
        self.host_entry = ttk.Entry(where, textvariable=self.host_var, width=18)
        self.host_entry.pack(side="left", fill="x", expand=True)
        ttk.Label(where, text="Port").pack(side="left", padx=(10, 6))
        self.port_entry = ttk.Entry(where, textvariable=self.port_var, width=6)
        self.port_entry.pack(side="left")
        self.server_error = self._error_line(card, 3, lines=2)
        self.name_entry = self._field(card, 4, "Your name", self.name_var)
        self.name_error = self._error_line(card, 5)
        self.password_entry = self._field(card, 6, "Password", self.password_var, show=DOT)
        self.password_error = self._error_line(card, 7)
        self.server_password_label = ttk.Label(card, text="Server password")
        self.server_password_label.grid(row=8, column=0, sticky="w", padx=(0, 12))
        self.server_password_entry = ttk.Entry(
            card, textvariable=self.server_password_var, show=DOT
        )
        self.server_password_entry.grid(row=8, column=1, sticky="ew")
        self.server_password_error = self._error_line(card, 9)
        self.server_password_rows = (
            self.server_password_label,
            self.server_password_entry,
            self.server_password_error,
        )
        for widget in self.server_password_rows:
            widget.grid_remove()
        card.rowconfigure(9, minsize=0)  # no space for its error line while it is hidden

        self.keychain = secrets.available()
        remember_text = (
            "Remember passwords (in the system keychain)"
            if self.keychain
            else "Remember passwords (no keychain here: not kept)"
        )
        self.remember_check = ttk.Checkbutton(card, text=remember_text, variable=self.remember_var)
        self.remember_check.grid(row=10, column=1, sticky="w")
        if not self.keychain:
            self.remember_var.set(False)
            self.remember_check.state(["disabled"])

        buttons = ttk.Frame(card)
        buttons.grid(row=11, column=0, columnspan=2, sticky="ew", pady=(8, 0))
        self.connect_button = ttk.Button(
            buttons, text="Connect", style="Accent.TButton", command=self.submit
        )
        self.connect_button.pack(side="left")
        self.host_button = ttk.Button(buttons, text="Host a chat", command=self.host)
        self.host_button.pack(side="left", padx=(10, 0))
        self.cancel_button = ttk.Button(buttons, text="Cancel", command=self.cancel)
        # Read by the app when connecting (ChatApp.connect); hosting always uses TLS.
        self.tls_var = tk.BooleanVar(self, value=False)
        self.tls_check = ttk.Checkbutton(buttons, text="Use TLS", variable=self.tls_var)
        self.tls_check.pack(side="left", padx=(16, 0))
        # Progress goes beside the buttons; problems that are about no one field below them.
        self.status_label = ttk.Label(
            buttons, text="", wraplength=170, justify="left", font=self.note_font
        )
        self.status_label.pack(side="right", padx=(10, 0))
        self.error_label = ttk.Label(
            card, text="", wraplength=430, justify="left", font=self.note_font
        )
        self.error_label.grid(row=12, column=0, columnspan=2, sticky="nw", pady=(4, 0))
        self.error_label.configure(text="X")
        card.rowconfigure(12, minsize=self.error_label.winfo_reqheight() + 4)
        self.error_label.configure(text="")

        self.field_errors = {
            "server": self.server_error,
            "name": self.name_error,
            "password": self.password_error,
            "server_password": self.server_password_error,
        }
        for entry in (
            self.host_entry,
            self.port_entry,
            self.name_entry,
            self.password_entry,
            self.server_password_entry,
        ):
            entry.bind("<Return>", lambda _e: self.submit())
            entry.bind("<KP_Enter>", lambda _e: self.submit())
            entry.bind("<Escape>", lambda _e: self.cancel())
        self.bind("<<ThemeChanged>>", lambda _e: self.apply_palette(), add=True)
        self.bind("<Configure>", lambda _e: self._place_card(), add=True)
        self.apply_palette()
        self._clear_errors()
        self._base_height = 0
        self._heading_height = 0
        self._measure()
        self._busy = False

    def _field(
        self, card: ttk.Frame, row: int, label: str, var: tk.StringVar, show: str = ""
    ) -> ttk.Entry:
        ttk.Label(card, text=label).grid(row=row, column=0, sticky="w", padx=(0, 12))
        entry = ttk.Entry(card, textvariable=var, show=show)
        entry.grid(row=row, column=1, sticky="ew")
        return entry

    def _error_line(self, card: ttk.Frame, row: int, lines: int = 1) -> ttk.Label:
        """The line(s) under a field where its error goes; their height is reserved."""
        label = ttk.Label(card, text="", wraplength=380, justify="left", font=self.note_font)
        label.grid(row=row, column=1, sticky="nw", pady=(0, 2))
        label.configure(text="\n".join("X" * lines))  # measure the lines as drawn
        self._line_sizes[row] = label.winfo_reqheight() + 2
        card.rowconfigure(row, minsize=self._line_sizes[row])
        label.configure(text="")
        return label

    def apply_palette(self) -> None:
        p = theme.palette(self)
        for label in (self.server_error, self.name_error, self.server_password_error):
            label.configure(foreground=p.error)
        self.password_error.configure(
            foreground=p.muted if self.password_error.cget("text") == PASSWORD_HINT else p.error
        )
        self.error_label.configure(foreground=p.error)
        self.status_label.configure(foreground=p.muted)

    # ------------------------------------------------------------ layout
    def _measure(self) -> None:
        """The card's height (error lines are reserved, so the same with errors shown) with
        and without the heading: the card is centred on it, so nothing moves when an error
        appears, and the heading shows only when everything fits."""
        heading_shown = bool(self.heading.winfo_manager())
        if not heading_shown:
            self.heading.grid()
        self.card.update_idletasks()
        # Errors wrap within the fields' column, so they never widen the card either.
        column = max(self.server_row.winfo_reqwidth(), self.remember_check.winfo_reqwidth())
        for label in self.field_errors.values():
            label.configure(wraplength=max(100, column - 4))
        self.card.update_idletasks()
        self._base_height = self.card.winfo_reqheight()
        self._heading_height = self.heading.winfo_reqheight() + 8
        if not heading_shown:
            self.heading.grid_remove()
        self._place_card()

    def _place_card(self) -> None:
        room = self.winfo_height() - 8
        fits = room >= self._base_height or room <= 1  # <= 1: not laid out yet
        if fits != bool(self.heading.winfo_manager()):
            if fits:
                self.heading.grid()
            else:
                self.heading.grid_remove()
        height = self._base_height - (0 if fits else self._heading_height)
        self.card.place(relx=0.5, y=max(0, (room - height) // 2), anchor="n")

    # ---------------------------------------------------------------- state
    def fill(self, host: str, port: int, name: str) -> None:
        self.host_var.set(host)
        self.port_var.set(str(port))
        self.name_var.set(name)
        self.load_remembered()

    def load_remembered(self) -> None:
        """Fill the password fields from the keychain for this server and name, if kept."""
        if not self.remember_var.get():
            return
        where = self._target()
        if where is None:
            return
        host, port, name = where
        if name:
            self.password_var.set(secrets.get_password(host, port, name) or "")
        server_password = secrets.get_server_password(host, port)
        self.server_password_var.set(server_password or "")
        if server_password:
            self.show_server_password()

    def _target(self) -> tuple[str, int, str] | None:
        parsed = split_server(self.host_var.get())
        if parsed is None or not parsed[0]:
            return None
        host, port = parsed
        if port is None:
            port = _port(self.port_var.get())
        if port is None:
            return None
        return host, port, self.name_var.get().strip()

    def show_server_password(self) -> None:
        if not self.server_password_entry.winfo_manager():
            for widget in self.server_password_rows:
                widget.grid()
            self.card.rowconfigure(9, minsize=self._line_sizes[9])
            self._measure()

    def focus_first_empty(self) -> None:
        for entry, var in (
            (self.host_entry, self.host_var),
            (self.port_entry, self.port_var),
            (self.name_entry, self.name_var),
        ):
            if not var.get().strip():
                entry.focus_set()
                return
        self.name_entry.focus_set()
        self.name_entry.select_range(0, "end")

    def error_text(self) -> str:
        """Every error shown now, field by field (for tests and screen readers)."""
        texts = [str(label.cget("text")) for label in self.field_errors.values()]
        texts.append(str(self.error_label.cget("text")))
        return "\n".join(t for t in texts if t and t != PASSWORD_HINT)

    def _clear_errors(self) -> None:
        for label in self.field_errors.values():
            label.configure(text="")
        self.error_label.configure(text="")
        self._set_field_error("password", PASSWORD_HINT)

    def _set_field_error(self, field: str, text: str) -> None:
        label = self.field_errors[field]
        label.configure(text=text)
        p = theme.palette(self)
        if field == "password":
            label.configure(foreground=p.muted if text == PASSWORD_HINT else p.error)

    def show_error(self, text: str, field: str | None = None) -> None:
        """Show ``text`` under ``field`` ("server", "name", "password", "server_password";
        None: the general line under the buttons) and make the form usable again."""
        self._clear_errors()
        if field is None:
            self.error_label.configure(text=text)
        else:
            if field == "server_password":
                self.show_server_password()
            self._set_field_error(field, text)
        self.set_busy(False)

    def show_login_error(self, reason: str, error: ErrorResponse | None) -> None:
        """A failed login: ``error`` is the server's refusal, None when the connection itself
        failed (refused, timed out, closed before any answer)."""
        name = self.name_var.get().strip()
        if error is None:
            self.show_error(_sentence(reason), "server")
            self.host_entry.focus_set()
            return
        code, field = error.code, error.field
        if code == ErrorCode.NAME_TAKEN:
            self.show_error(f"The name {name} is taken; pick another.", "name")
            self.name_entry.focus_set()
        elif code == ErrorCode.INVALID_USERNAME:
            self.show_error(_sentence(reason), "name")
            self.name_entry.focus_set()
        elif code == ErrorCode.AUTH_FAILED and field == AuthField.SERVER_PASSWORD:
            text = (
                "Wrong server password."
                if self.server_password_var.get()
                else "This server needs a password to join."
            )
            self.show_error(text, "server_password")
            self.server_password_entry.focus_set()
        elif code == ErrorCode.AUTH_FAILED:
            text = (
                f"Wrong password for {name}."
                if self.password_var.get()
                else f"{name} is a registered name: enter its password."
            )
            self.show_error(text if field == AuthField.PASSWORD else _sentence(reason), "password")
            self.password_entry.focus_set()
        elif code == ErrorCode.TOO_MANY_ATTEMPTS:
            self.show_error(
                "Too many wrong passwords from this computer; wait a few minutes.", "password"
            )
        elif code in _ABOUT_THE_SERVER:
            self.show_error(_sentence(reason), "server")
        else:
            self.show_error(_sentence(reason))

    def set_busy(self, busy: bool, status: str = "") -> None:
        self._busy = busy
        state = ["disabled"] if busy else ["!disabled"]
        self.connect_button.state(state)
        self.host_button.state(state)
        self.status_label.configure(text=status)
        if busy:
            self._clear_errors()
            self.cancel_button.pack(side="left", padx=(10, 0))
        else:
            self.cancel_button.pack_forget()

    # ------------------------------------------------------------- keychain
    def login_succeeded(self, host: str, port: int, name: str) -> None:
        """Keep the passwords just used in the keychain when "Remember" is ticked; forget
        any kept for this server and name when it is not."""
        if not self.keychain:
            return
        if self.remember_var.get():
            secrets.set_password(host, port, name, self.password_var.get())
            secrets.set_server_password(host, port, self.server_password_var.get())
        else:
            secrets.set_password(host, port, name, "")
            secrets.set_server_password(host, port, "")

    def registered(self, host: str, port: int, name: str, password: str) -> None:
        """The name was just registered (or its password changed): the field holds the new
        password, and the keychain too when "Remember" is ticked."""
        self.password_var.set(password)
        if self.keychain and self.remember_var.get():
            secrets.set_password(host, port, name, password)

    # --------------------------------------------------------------- actions
    def _checked_name(self) -> str | None:
        name = self.name_var.get().strip()
        if not is_valid_username(name):
            shown = repr(name) if len(name) <= 16 else repr(name[:14] + "…")
            what = "Enter a name" if not name else f"{shown} cannot be used"
            self.show_error(f"{what}: 1-32 letters or digits.", "name")
            self.name_entry.focus_set()
            return None
        return name

    def submit(self) -> None:
        if self._busy:
            return
        name = self._checked_name()
        if name is None:
            return
        parsed = split_server(self.host_var.get())
        if parsed is None or not parsed[0]:
            text = (
                "Enter the server's address, e.g. 127.0.0.1 or chat.example.org."
                if parsed is not None
                else "The server is a host name or address, optionally with :port "
                "(chat.example.org:9998, [::1]:9998)."
            )
            self.show_error(text, "server")
            self.host_entry.focus_set()
            return
        host, port = parsed
        if port is None:
            port = _port(self.port_var.get())
            if port is None:
                self.show_error(
                    "The port is a number from 1 to 65535 (TkChat's usual one is 9998).",
                    "server",
                )
                self.port_entry.focus_set()
                return
        self.host_var.set(host)
        self.port_var.set(str(port))
        password = self.password_var.get() or None
        server_password = self.server_password_var.get() or None
        shown = f"[{host}]" if ":" in host else host
        self.set_busy(True, f"Connecting to {shown}:{port}…")
        self.on_connect(host, port, name, password, server_password)

    def cancel(self) -> None:
        """Give up the connection attempt in progress (a server that never answers)."""
        if not self._busy:
            return
        if self.on_cancel is not None:
            self.on_cancel()
        self.set_busy(False, "Cancelled.")

    def host(self) -> None:
        name = self._checked_name()
        if name is None:
            return
        self.set_busy(True, "Starting a chat server on this computer…")
        self.on_host(name)


# Refusals about the server, not about anything typed for the name or a password.
_ABOUT_THE_SERVER = frozenset(
    {
        ErrorCode.SERVER_FULL,
        ErrorCode.TOO_MANY_CONNECTIONS,
        ErrorCode.LOGIN_TIMEOUT,
        ErrorCode.UNAVAILABLE,
    }
)


def _sentence(text: str) -> str:
    """Server and socket texts start in lower case; on the form they are sentences."""
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "?", "!")) else text + "."
