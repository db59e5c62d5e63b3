"""The window's menu bar: File, View and Help, built for one ``ChatApp`` (its commands are the
app's actions), and coloured to match the theme (plain Tk menus do not follow ttk themes)."""

from __future__ import annotations

import tkinter as tk
from typing import TYPE_CHECKING

from gui import theme

if TYPE_CHECKING:
    from gui.app import ChatApp

Menus = tuple[tk.Menu, tk.Menu, tk.Menu, tk.Menu]  # the bar, then File, View and Help


def build_menus(app: ChatApp) -> Menus:
    """The menu bar and its three menus (tests find an entry by its label in one of them)."""
    bar = tk.Menu(app.window, tearoff=False)
    file_menu = tk.Menu(bar, tearoff=False)
    file_menu.add_command(label="Connect…", underline=0, command=app.show_connect)
    file_menu.add_command(
        label="Reconnect now", underline=0, command=app.reconnect_now, state="disabled"
    )
    file_menu.add_command(label="Disconnect", underline=0, command=app.disconnect)
    file_menu.add_command(label="Host a chat", underline=0, command=app.host_from_menu)
    file_menu.add_command(label="Register this name…", underline=0, command=app.register_name)
    file_menu.add_separator()
    file_menu.add_command(label="Quit", underline=0, accelerator="Ctrl+Q", command=app.quit)
    view_menu = tk.Menu(bar, tearoff=False)
    for label, value in (("System theme", "system"), ("Light", "light"), ("Dark", "dark")):
        view_menu.add_radiobutton(
            label=label,
            value=value,
            variable=app.theme_var,
            command=lambda: app.set_theme(app.theme_var.get()),
        )
    view_menu.add_separator()
    view_menu.add_checkbutton(
        label="Desktop notifications",
        variable=app.notify_var,
        command=lambda: app.set_notifications(app.notify_var.get()),
    )
    view_menu.add_separator()
    view_menu.add_command(
        label="Larger text", accelerator="Ctrl++", command=lambda: app.change_font(1)
    )
    view_menu.add_command(
        label="Smaller text", accelerator="Ctrl+-", command=lambda: app.change_font(-1)
    )
    view_menu.add_command(
        label="Normal size", accelerator="Ctrl+0", command=lambda: app.change_font(0)
    )
    help_menu = tk.Menu(bar, tearoff=False)
    help_menu.add_command(label="Commands", underline=0, command=app.show_command_help)
    help_menu.add_command(label="Server help", underline=0, command=app.session.request_help)
    help_menu.add_separator()
    help_menu.add_command(label="About TkChat", underline=0, command=app.about)
    bar.add_cascade(label="File", underline=0, menu=file_menu)
    bar.add_cascade(label="View", underline=0, menu=view_menu)
    bar.add_cascade(label="Help", underline=0, menu=help_menu)
    return (bar, file_menu, view_menu, help_menu)


def colour_menus(window: tk.Misc, menus: Menus) -> None:
    p = theme.palette(window)
    for menu in menus:
        menu.configure(
            background=p.background,
            foreground=p.foreground,
            activebackground=p.select_bg,
            activeforeground=p.foreground,
        )
