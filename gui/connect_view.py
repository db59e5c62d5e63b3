"""``ConnectView``: the first screen.  Server, port and name (last ones remembered), Connect,
and "Host a chat".  Problems show inline under the fields, in words a person can act on."""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable
from tkinter import ttk

from common.protocol import is_valid_username
from gui import theme


class ConnectView(ttk.Frame):
    def __init__(
        self,
        master: tk.Misc,
        on_connect: Callable[[str, int, str], None],
        on_host: Callable[[str], None],
    ) -> None:
        super().__init__(master, padding=24)
        self.on_connect = on_connect
        self.on_host = on_host
        card = ttk.Frame(self, padding=28)
        card.place(relx=0.5, rely=0.45, anchor="center")
        self.card = card
        ttk.Label(card, text="TkChat", font=("TkHeadingFont", 22, "bold")).grid(
            row=0, column=0, columnspan=2, sticky="w"
        )
        ttk.Label(card, text="Join a chat server, or host one for your team.").grid(
            row=1, column=0, columnspan=2, sticky="w", pady=(2, 18)
        )
        self.host_var = tk.StringVar(self)
        self.port_var = tk.StringVar(self)
        self.name_var = tk.StringVar(self)
        self.host_entry = self._field(card, 2, "Server", self.host_var, 26)
        self.port_entry = self._field(card, 3, "Port", self.port_var, 8)
        self.name_entry = self._field(card, 4, "Your name", self.name_var, 26)
        buttons = ttk.Frame(card)
        buttons.grid(row=5, column=0, columnspan=2, sticky="ew", pady=(16, 0))
        self.connect_button = ttk.Button(
            buttons, text="Connect", style="Accent.TButton", command=self.submit
        )
        self.connect_button.pack(side="left")
        self.host_button = ttk.Button(buttons, text="Host a chat", command=self.host)
        self.host_button.pack(side="left", padx=(10, 0))
        # Read by the app when connecting (ChatApp.connect); hosting always uses TLS.
        self.tls_var = tk.BooleanVar(self, value=False)
        self.tls_check = ttk.Checkbutton(buttons, text="Use TLS", variable=self.tls_var)
        self.tls_check.pack(side="left", padx=(16, 0))
        self.error_label = ttk.Label(card, text="", wraplength=380, justify="left")
        self.error_label.grid(row=6, column=0, columnspan=2, sticky="w", pady=(14, 0))
        self.status_label = ttk.Label(card, text="", wraplength=380, justify="left")
        self.status_label.grid(row=7, column=0, columnspan=2, sticky="w", pady=(4, 0))
        for entry in (self.host_entry, self.port_entry, self.name_entry):
            entry.bind("<Return>", lambda _e: self.submit())
            entry.bind("<KP_Enter>", lambda _e: self.submit())
        self.bind("<<ThemeChanged>>", lambda _e: self.apply_palette(), add=True)
        self.apply_palette()

    def _field(
        self, card: ttk.Frame, row: int, label: str, var: tk.StringVar, width: int
    ) -> ttk.Entry:
        ttk.Label(card, text=label).grid(row=row, column=0, sticky="w", padx=(0, 14), pady=4)
        entry = ttk.Entry(card, textvariable=var, width=width)
        entry.grid(row=row, column=1, sticky="w", pady=4)
        return entry

    def apply_palette(self) -> None:
        p = theme.palette(self)
        self.error_label.configure(foreground=p.error)
        self.status_label.configure(foreground=p.muted)

    # ---------------------------------------------------------------- state
    def fill(self, host: str, port: int, name: str) -> None:
        self.host_var.set(host)
        self.port_var.set(str(port))
        self.name_var.set(name)

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

    def show_error(self, text: str) -> None:
        self.error_label.configure(text=text)
        self.set_busy(False)

    def set_busy(self, busy: bool, status: str = "") -> None:
        state = ["disabled"] if busy else ["!disabled"]
        self.connect_button.state(state)
        self.host_button.state(state)
        self.status_label.configure(text=status)
        if busy:
            self.error_label.configure(text="")

    # --------------------------------------------------------------- actions
    def _checked_name(self) -> str | None:
        name = self.name_var.get().strip()
        if not is_valid_username(name):
            what = "Enter a name" if not name else f"{name[:40]!r} cannot be used"
            self.show_error(f"{what}: names are 1-32 letters (A-Z) or digits, no spaces.")
            self.name_entry.focus_set()
            return None
        return name

    def submit(self) -> None:
        name = self._checked_name()
        if name is None:
            return
        host = self.host_var.get().strip()
        if not host:
            self.show_error("Enter the server's address, e.g. 127.0.0.1 or chat.example.org.")
            self.host_entry.focus_set()
            return
        try:
            port = int(self.port_var.get().strip())
            if not 0 < port < 65536:
                raise ValueError
        except ValueError:
            self.show_error("The port is a number from 1 to 65535 (TkChat's usual one is 9998).")
            self.port_entry.focus_set()
            return
        self.set_busy(True, f"Connecting to {host}:{port}…")
        self.on_connect(host, port, name)

    def host(self) -> None:
        name = self._checked_name()
        if name is None:
            return
        self.set_busy(True, "Starting a chat server on this computer…")
        self.on_host(name)
