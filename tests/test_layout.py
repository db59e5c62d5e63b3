"""The client's network core is a package of its own with no Tk in it (issue 9 section 2).

Imported in a fresh interpreter, so that a tkinter import anywhere in the chain (a helper that
pulls in a dialog, say) shows up, and not one left over from another test.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import gui.net
from tests.conftest import ROOT


def core_modules() -> list[str]:
    found = [f"gui.net.{info.name}" for info in pkgutil.iter_modules(gui.net.__path__)]
    return sorted(found)


def tk_modules_after_importing(modules: list[str]) -> str:
    """The tkinter modules a fresh interpreter holds once it has imported ``modules``."""
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
    return out.stdout.strip()


def test_the_network_core_holds_the_client_its_events_and_trust() -> None:
    assert {"gui.net.client", "gui.net.events", "gui.net.trust"} <= set(core_modules())


def test_neither_the_core_nor_the_terminal_client_imports_tkinter() -> None:
    assert tk_modules_after_importing([*core_modules(), "gui.terminal"]) == "[]"


def test_the_tk_app_does_import_tkinter() -> None:
    """The check above can fail: the same probe sees tkinter under the Tk app."""
    assert "'tkinter'" in tk_modules_after_importing(["gui.app"])
