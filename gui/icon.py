"""The window icon, from the one committed picture (``gui/assets/tkchat.png``, 1024 px) or,
in a built ChatClient, the 256 px copy ``build_scripts/build.py`` derives and bundles."""

from __future__ import annotations

import logging
import tkinter as tk
from pathlib import Path

log = logging.getLogger(__name__)

ASSETS = Path(__file__).resolve().parent / "assets"
# (file, subsample factor): window managers show icons at 16-64 px; 64 px is plenty.
_CANDIDATES = (("tkchat-256.png", 4), ("tkchat.png", 16))


def set_window_icon(window: tk.Tk | tk.Toplevel) -> tk.PhotoImage | None:
    """Give ``window`` the TkChat icon; the caller keeps the image alive (Tk drops it else)."""
    for name, factor in _CANDIDATES:
        path = ASSETS / name
        if not path.is_file():
            continue
        try:
            image = tk.PhotoImage(master=window, file=str(path)).subsample(factor)
            window.iconphoto(False, image)
        except tk.TclError as exc:  # a Tk without PNG support, a damaged file
            log.warning("no window icon from %s: %s", path, exc)
            return None
        return image
    log.warning("no window icon: %s holds no icon picture", ASSETS)
    return None
