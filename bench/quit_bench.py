"""How long quitting the Tk client takes (goal: well under 1 s).

Why: a window that lingers after Ctrl+Q feels broken, and a person may press it again.

Setup, all real: the real ``ChatApp`` in a Tk window under the current display.  Three cases,
each repeated ``--rounds`` times:
- **online**: logged in to an in-process ``ChatServer`` on 127.0.0.1 port 0;
- **hosting**: hosting a chat itself (``HostedServer`` on 127.0.0.1 port 0, plaintext), with
  a guest connected from a raw socket;
- **hosting-tk**: hosting with TLS (as "Host a chat" does), a second ``ChatApp`` (in the same
  Tk root) connected as the guest;
- **waiting**: the server went away and the app waits to reconnect.
The figure is the wall time of ``ChatApp.quit()`` (log out, stop a hosted server, save the
settings, destroy the window), i.e. from Ctrl+Q to the window being gone.

Run:  xvfb-run -a -s '-screen 0 1280x1024x24' .venv/bin/python bench/quit_bench.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
import tkinter as tk
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gui.app import ChatApp
from gui.hosting import HostConfig
from gui.session import State
from server.app import ChatServer
from server.config import ServerConfig
from tests.wire import WireClient


def pump_until(root: tk.Tk, condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit("timed out setting up the case")
        root.update()
        time.sleep(0.002)


def one_round(root: tk.Tk, case: str, config: Path) -> float:
    top = tk.Toplevel(root)
    host_config = HostConfig(
        bind="127.0.0.1",
        port=0,
        db=":memory:",
        tls=case == "hosting-tk",
        cert_dir=str(config / "cert"),
    )
    app = ChatApp(top, config, host_config=host_config)
    server: ChatServer | None = None
    guest: WireClient | None = None
    guest_app: ChatApp | None = None
    try:
        if case == "hosting-tk":
            app.host_and_join("host")
            pump_until(root, lambda: app.session.state is State.ONLINE)
            assert app.host.server is not None
            guest_app = ChatApp(tk.Toplevel(root), config / "guest")
            guest_app.connect_view.tls_var.set(True)
            guest_app.connect("127.0.0.1", app.host.server.port, "guest")
            pump_until(root, lambda: len(app.session.users) == 2)
        elif case == "hosting":
            app.host_and_join("host")
            pump_until(root, lambda: app.session.state is State.ONLINE)
            assert app.host.server is not None
            guest = WireClient(app.host.server.port)
            guest.send("login", "guest")
            pump_until(root, lambda: len(app.session.users) == 2)
        else:
            server = ChatServer(ServerConfig(host="127.0.0.1", port=0, db=":memory:"))
            server.start()
            app.connect("127.0.0.1", server.port, "viewer")
            pump_until(root, lambda: app.session.state is State.ONLINE)
            if case == "waiting":
                server.stop()
                pump_until(root, lambda: app.session.state is not State.ONLINE)
        # Answer "close it" to the hosted-chat question without a person: nobody else is
        # asked about here, the figure is the closing itself.
        app.confirm_close = lambda: True  # type: ignore[method-assign]
        start = time.perf_counter()
        app.quit()
        return time.perf_counter() - start
    finally:
        if guest is not None:
            guest.close()
        if guest_app is not None:
            guest_app.close()
            guest_app.window.destroy()
        if server is not None:
            server.stop()
        # Closed windows' Tk variables and images: collect them here, on the Tk thread (a
        # collection on a network thread would call into Tk from there).
        gc.collect()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    root = tk.Tk()
    root.withdraw()
    print(f"{'case':<10} {'median ms':>10} {'max ms':>8}  (ChatApp.quit(), {args.rounds} rounds)")
    with tempfile.TemporaryDirectory() as tmp:
        for case in ("online", "hosting", "hosting-tk", "waiting"):
            times = [one_round(root, case, Path(tmp) / case) for _ in range(args.rounds)]
            print(f"{case:<10} {statistics.median(times) * 1000:>10.0f} {max(times) * 1000:>8.0f}")
    root.destroy()


if __name__ == "__main__":
    main()
