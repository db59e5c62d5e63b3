"""``RegisterDialog``: "Register this name…" - the password twice, then ``register``.

Registering makes the name the user's own on that server: from then on logging in as it
needs the password (PROTOCOL.md, Registered names).  The dialog checks what it can before
sending (8-256 characters, both the same); the server's answer shows in the chat pane.
"""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable
from tkinter import ttk

from common.protocol import MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS
from gui import theme
from gui.connect_view import DOT


class RegisterDialog(tk.Toplevel):
    """A small window over ``master``; ``on_register(password)`` sends it (True when sent)."""

    def __init__(
        self, master: tk.Misc, name: str, change: bool, on_register: Callable[[str], bool]
    ) -> None:
        super().__init__(master)
        self.on_register = on_register
        self.title("Change password" if change else "Register this name")
        self.transient(master.winfo_toplevel())
        self.resizable(False, False)
        frame = ttk.Frame(self, padding=16)
        frame.pack(fill="both", expand=True)
        what = (
            f"A new password for {name}."
            if change
            else f"Make {name} yours on this server: logging in as {name} will need this password."
        )
        ttk.Label(frame, text=what, wraplength=340, justify="left").grid(
            row=0, column=0, columnspan=2, sticky="w", pady=(0, 10)
        )
        self.first_var = tk.StringVar(self)
        self.second_var = tk.StringVar(self)
        ttk.Label(frame, text="Password").grid(row=1, column=0, sticky="w", padx=(0, 10))
        self.first_entry = ttk.Entry(frame, textvariable=self.first_var, show=DOT, width=28)
        self.first_entry.grid(row=1, column=1, sticky="ew", pady=2)
        ttk.Label(frame, text="Again").grid(row=2, column=0, sticky="w", padx=(0, 10))
        self.second_entry = ttk.Entry(frame, textvariable=self.second_var, show=DOT, width=28)
        self.second_entry.grid(row=2, column=1, sticky="ew", pady=2)
        self.error_label = ttk.Label(frame, text="", wraplength=340, justify="left")
        self.error_label.configure(foreground=theme.palette(self).error)
        self.error_label.grid(row=3, column=0, columnspan=2, sticky="w", pady=(6, 0))
        frame.rowconfigure(3, minsize=40)
        buttons = ttk.Frame(frame)
        buttons.grid(row=4, column=0, columnspan=2, sticky="e", pady=(8, 0))
        self.ok_button = ttk.Button(
            buttons,
            text="Change" if change else "Register",
            style="Accent.TButton",
            command=self.submit,
        )
        self.ok_button.pack(side="left")
        ttk.Button(buttons, text="Cancel", command=self.destroy).pack(side="left", padx=(8, 0))
        for entry in (self.first_entry, self.second_entry):
            entry.bind("<Return>", lambda _e: self.submit())
        self.bind("<Escape>", lambda _e: self.destroy())
        self.first_entry.focus_set()

    def submit(self) -> None:
        first, second = self.first_var.get(), self.second_var.get()
        if not MIN_PASSWORD_CHARS <= len(first) <= MAX_PASSWORD_CHARS:
            self.error_label.configure(
                text=f"A password is {MIN_PASSWORD_CHARS}-{MAX_PASSWORD_CHARS} characters."
            )
            self.first_entry.focus_set()
            return
        if first != second:
            self.error_label.configure(text="The two passwords differ; type it again.")
            self.second_var.set("")
            self.second_entry.focus_set()
            return
        if self.on_register(first):
            self.destroy()
        else:
            self.error_label.configure(text="Not connected: connect to the server first.")
