"""The client's network core is a package of its own with no Tk in it (issue 9 section 2).

Imported in a fresh interpreter, so that a tkinter import anywhere in the chain (a helper that
pulls in a dialog, say) shows up, and not one left over from another test.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import gui.net

ROOT = Path(__file__).resolve().parent.parent


def core_modules() -> list[str]:
    found = [f"gui.net.{info.name}" for info in pkgutil.iter_modules(gui.net.__path__)]
    return sorted(found)


def test_the_network_core_holds_the_client_its_events_and_trust() -> None:
    assert {"gui.net.client", "gui.net.events", "gui.net.trust"} <= set(core_modules())


def test_neither_the_core_nor_the_terminal_client_imports_tkinter() -> None:
    modules = [*core_modules(), "gui.terminal"]
    script = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tkinter', '_tkinter')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.strip() == "[]", out.stdout


def test_the_tk_app_does_import_tkinter() -> None:
    """The check above can fail: the same probe sees tkinter under the Tk app."""
    script = "import sys, gui.app\nprint('tkinter' in sys.modules)\n"
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.strip() == "True"
