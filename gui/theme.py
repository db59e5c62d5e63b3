"""Light and dark looks: sv-ttk for the ttk widgets, a matching palette for the plain Tk ones.

sv-ttk themes every ttk widget of a Tk interpreter at once.  The message pane, the input box
and the user list are classic Tk widgets (``Text``, ``Listbox``: they are much faster and more
flexible), so each view asks ``palette()`` for colours and re-applies them on
``<<ThemeChanged>>``, which ttk sends whenever the theme switches.

``system_prefers_dark`` asks the desktop where that is cheap and reliable (Windows registry,
macOS defaults, GNOME/GTK settings); anything unknown means light.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tkinter as tk
import zlib
from dataclasses import dataclass

import sv_ttk

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Palette:
    background: str
    foreground: str
    muted: str  # timestamps, pending messages
    info: str
    error: str
    own: str  # the user's own name
    link: str
    mention_bg: str
    day: str
    select_bg: str
    nicks: tuple[str, ...]  # stable per-name colours, readable on ``background``


LIGHT = Palette(
    background="#fafafa",
    foreground="#1c1c1c",
    muted="#6e6e6e",
    info="#2f6f3e",
    error="#b3261e",
    own="#1c1c1c",
    link="#0058b3",
    mention_bg="#fff1b8",
    day="#8a8a8a",
    select_bg="#bcd7f5",
    nicks=(
        "#b3261e",
        "#1f6f43",
        "#7a3fb0",
        "#0b6e99",
        "#a35200",
        "#9c2f6b",
        "#3a5f0b",
        "#2f4fb3",
        "#8a5a00",
        "#006b6b",
    ),
)

DARK = Palette(
    background="#1c1c1c",
    foreground="#e6e6e6",
    muted="#9a9a9a",
    info="#8fd19e",
    error="#ff8a80",
    own="#ffffff",
    link="#7cb9ff",
    mention_bg="#5a4a10",
    day="#8a8a8a",
    select_bg="#2f4f73",
    nicks=(
        "#ff8a80",
        "#7ddf9f",
        "#c9a4ff",
        "#70cfff",
        "#ffb870",
        "#ff8ccf",
        "#b8e07a",
        "#94a8ff",
        "#f0d070",
        "#6fe0d8",
    ),
)


def nick_index(name: str, palette: Palette) -> int:
    """The same name gets the same colour in every run and on every machine (unlike hash())."""
    return zlib.crc32(name.lower().encode("utf-8", "replace")) % len(palette.nicks)


def current(widget: tk.Misc) -> str:
    """``"dark"`` or ``"light"``: what sv-ttk has in force for this interpreter."""
    try:
        return "dark" if sv_ttk.get_theme(_root(widget)) == "dark" else "light"
    except tk.TclError:
        return "light"


def palette(widget: tk.Misc) -> Palette:
    return DARK if current(widget) == "dark" else LIGHT


def apply(widget: tk.Misc, choice: str) -> str:
    """Put a theme ("system", "light" or "dark") in force; returns the one used."""
    name = choice if choice in ("light", "dark") else resolve_system()
    if current(widget) != name or _not_loaded(widget):
        sv_ttk.set_theme(name, _root(widget))
    return name


def _root(widget: tk.Misc) -> tk.Tk:
    """sv-ttk wants the ``Tk`` instance itself (it marks it once the theme files are loaded)."""
    root = widget.nametowidget(".")
    assert isinstance(root, tk.Tk)
    return root


def _not_loaded(widget: tk.Misc) -> bool:
    try:
        return not str(widget.tk.call("ttk::style", "theme", "use")).startswith("sun-valley")
    except tk.TclError:
        return True


def resolve_system() -> str:
    return "dark" if system_prefers_dark() else "light"


def system_prefers_dark() -> bool:
    """Best effort, never raises; takes a few milliseconds at most (bounded subprocesses)."""
    try:
        if sys.platform == "win32":
            return _windows_dark()
        if sys.platform == "darwin":
            out = _run(["defaults", "read", "-g", "AppleInterfaceStyle"])
            return out is not None and "dark" in out.lower()
        return _freedesktop_dark()
    except Exception as exc:  # pragma: no cover - platform oddities must not stop the app
        log.debug("cannot read the system theme: %s", exc)
        return False


def _windows_dark() -> bool:  # pragma: no cover - Windows only
    import winreg  # noqa: PLC0415

    key = winreg.OpenKey(  # type: ignore[attr-defined]
        winreg.HKEY_CURRENT_USER,  # type: ignore[attr-defined]
        r"Software\Microsoft\Windows\CurrentVersion\Themes\Personalize",
    )
    value, _ = winreg.QueryValueEx(key, "AppsUseLightTheme")  # type: ignore[attr-defined]
    return int(value) == 0


def _freedesktop_dark() -> bool:
    gtk_theme = os.environ.get("GTK_THEME", "")
    if gtk_theme:
        return gtk_theme.lower().endswith(":dark") or "dark" in gtk_theme.lower()
    scheme = _run(["gsettings", "get", "org.gnome.desktop.interface", "color-scheme"])
    if scheme is not None and "dark" in scheme:
        return True
    name = _run(["gsettings", "get", "org.gnome.desktop.interface", "gtk-theme"])
    return name is not None and "dark" in name.lower()


def _run(command: list[str]) -> str | None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=1.0, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None
