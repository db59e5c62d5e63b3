"""How fast the Tk client renders a burst, and whether the window stays responsive meanwhile.

Why: a busy room (or a history replay) can deliver thousands of messages at once.  The client
must draw them fast (goal: >= 20,000 messages/s) without freezing (goal: no event-loop stall
over 50 ms), and cost nothing when idle (goal: < 1 % CPU).

Setup, all real: an in-process ``ChatServer`` on 127.0.0.1 port 0 with the rate limit off, the
real ``ChatApp`` in a Tk window logged in as ``viewer``, and a raw socket client ``sender``
that posts N messages as fast as the server takes them.  The server broadcasts each to the
viewer, whose receiver thread parses it and queues it for the Tk thread.

Two figures for the burst:
- **render**: the viewer's Tk loop is held while the whole burst arrives and is queued (so it
  really does arrive at once), then released: messages/s from release until all are drawn.
- **end to end**: a second burst with the loop running throughout: first send to last drawn,
  which also includes the server and the parsing.
Worst stall is the largest lateness of a 5 ms ``after`` heartbeat while the pane renders.
Idle CPU is process CPU time (all threads, server included) over a quiet stretch after it.

In-process, the server, the client's receiver and the Tk thread share one GIL (and, here, two
cores), so "end to end" is bounded by the server's own Python work.  ``--server-process``
runs the same server as ``python -m server`` instead, as a user would, to show the client's
end-to-end rate on its own.

Run:  xvfb-run -a -s '-screen 0 1280x1024x24' .venv/bin/python bench/gui_render.py
      (--count 50000 --idle 5 --server-process; prints a table and a JSON line)
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tkinter as tk
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common.protocol import MessageParser  # noqa: E402
from gui.app import ChatApp  # noqa: E402
from gui.session import State  # noqa: E402
from server.app import ChatServer  # noqa: E402
from server.config import ServerConfig  # noqa: E402

HEARTBEAT_MS = 5
_ECHO = b'"response": "message"'


class Sender:
    """A raw KTN client that floods ``msg`` requests and drains its own echoes."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        # With a client id: the server paces output to classic clients (one object per send).
        login = MessageParser.request("login", "sender", client="tkchat-bench/1.0")
        self.sock.sendall(MessageParser.encode(login))
        self.echoes = 0
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        tail = b""
        try:
            while data := self.sock.recv(1 << 20):
                # Count echoes (a marker split across reads is counted once, via the tail).
                joined = tail + data
                self.echoes += joined.count(_ECHO) - tail.count(_ECHO)
                tail = joined[-len(_ECHO) :]
        except OSError:
            pass

    @staticmethod
    def prepare(count: int, tag: str) -> list[bytes]:
        """The requests, encoded ahead so that encoding does not compete with the client."""
        requests = [
            MessageParser.encode(
                MessageParser.request("msg", f"{tag} message {n}: the quick brown fox jumps")
            )
            for n in range(count)
        ]
        return [b"".join(requests[i : i + 500]) for i in range(0, count, 500)]

    def flood(self, chunks: list[bytes]) -> None:
        for chunk in chunks:
            self.sock.sendall(chunk)

    def close(self) -> None:
        self.sock.close()


class Heartbeat:
    """An ``after`` timer that records how late each tick fires (event-loop stalls)."""

    def __init__(self, root: tk.Tk) -> None:
        self.root = root
        self.worst = 0.0
        self._last = time.perf_counter()
        self._id: str | None = None

    def start(self) -> None:
        self.worst = 0.0
        self._last = time.perf_counter()
        self._id = self.root.after(HEARTBEAT_MS, self._tick)

    def _tick(self) -> None:
        now = time.perf_counter()
        self.worst = max(self.worst, now - self._last - HEARTBEAT_MS / 1000)
        self._last = now
        self._id = self.root.after(HEARTBEAT_MS, self._tick)

    def stop(self) -> None:
        if self._id is not None:
            self.root.after_cancel(self._id)
            self._id = None


def run_until(root: tk.Tk, condition: Callable[[], bool], timeout: float) -> None:
    """Run the real mainloop until ``condition`` (checked every 10 ms) or the timeout."""
    deadline = time.monotonic() + timeout

    def check() -> None:
        if condition() or time.monotonic() > deadline:
            root.quit()
        else:
            root.after(10, check)

    root.after(10, check)
    root.mainloop()
    if not condition():
        raise SystemExit(f"timed out after {timeout} s")


def start_server_process() -> tuple[subprocess.Popen[str], int]:
    """``python -m server`` on a free 127.0.0.1 port; the port is read from its log line."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--db",
            ":memory:",
            "--rate-limit",
            "0",
            "--max-queue-bytes",
            str(1 << 28),
            "--max-per-address",
            "0",
            "--address-rate",
            "0",
            "--login-rate",
            "0",
        ],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    deadline = time.monotonic() + 20
    for line in process.stderr:
        found = re.search(r"listening on [^ ]+:(\d+)", line)
        if found:
            threading.Thread(target=process.stderr.read, daemon=True).start()  # keep it drained
            return process, int(found.group(1))
        if time.monotonic() > deadline:
            break
    process.kill()
    raise SystemExit("the server process did not start")


def thread_ticks() -> dict[int, int]:
    """CPU clock ticks per thread of this process (Linux ``/proc``)."""
    ticks = {}
    for task in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{task}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        ticks[int(task)] = int(fields[11]) + int(fields[12])
    return ticks


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=50_000, help="messages per burst")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of idle measured")
    parser.add_argument(
        "--server-process", action="store_true", help="run the server as python -m server"
    )
    args = parser.parse_args()
    count: int = args.count

    server: ChatServer | None = None
    process: subprocess.Popen[str] | None = None
    if args.server_process:
        process, port = start_server_process()
    else:
        server = ChatServer(
            ServerConfig(
                host="127.0.0.1",
                port=0,
                db=":memory:",
                rate_limit=0,
                max_queue_bytes=1 << 28,
                max_per_address=0,
                address_rate=0,
                login_rate=0,
            )
        )
        server.start()
        port = server.port
    root = tk.Tk()
    root.report_callback_exception = lambda *exc: (_ for _ in ()).throw(exc[1])
    app = ChatApp(root, Path(tempfile.mkdtemp(prefix="tkchat-bench-")))
    gc.freeze()  # as python -m gui does once the window is built
    app.connect("127.0.0.1", port, "viewer")
    run_until(root, lambda: app.session.state is State.ONLINE, 10)
    sender = Sender(port)
    run_until(root, lambda: len(app.session.users) == 2, 10)
    pane = app.pane
    heartbeat = Heartbeat(root)

    # 1. Render: hold the Tk loop (no mainloop) until the whole burst is queued.
    base = pane.lines_added
    sender.flood(Sender.prepare(count, "held"))
    live = Sender.prepare(count, "live")
    deadline = time.monotonic() + 120
    while app.session.events.qsize() < count and time.monotonic() < deadline:
        time.sleep(0.01)
    queued = app.session.events.qsize()
    flushes = pane.flushes
    heartbeat.start()
    started = time.perf_counter()
    run_until(root, lambda: pane.lines_added - base >= count, 120)
    root.update_idletasks()  # the last batch laid out and drawn
    render_seconds = time.perf_counter() - started
    heartbeat.stop()
    render_stall = heartbeat.worst
    render_turns = pane.flushes - flushes

    # 2. End to end: the loop runs while the server delivers.
    base = pane.lines_added
    heartbeat.start()
    started = time.perf_counter()
    threading.Thread(target=sender.flood, args=(live,), daemon=True).start()
    run_until(root, lambda: pane.lines_added - base >= count, 120)
    root.update_idletasks()
    e2e_seconds = time.perf_counter() - started
    heartbeat.stop()
    e2e_stall = heartbeat.worst

    # 3. Idle: nothing arrives; the app only polls its queue.  First the server must finish
    # echoing the bursts to the sender, or its work would count as the app's.
    run_until(root, lambda: sender.echoes >= 2 * count, 120)
    root.after(2000, root.quit)  # let Tk finish laying out lines in the background
    root.mainloop()
    cpu_before, wall_before = cpu_seconds(), time.perf_counter()
    root.after(int(args.idle * 1000), root.quit)
    root.mainloop()
    idle_cpu = 100 * (cpu_seconds() - cpu_before) / (time.perf_counter() - wall_before)
    if "TKCHAT_BENCH_DEBUG" in os.environ:  # which thread spends the idle CPU
        before = thread_ticks()
        root.after(3000, root.quit)
        root.mainloop()
        after = thread_ticks()
        names = {t.native_id: t.name for t in threading.enumerate()}
        for task, ticks in after.items():
            print("idle ticks", names.get(task, task), ticks - before.get(task, 0))
    lines = int(pane.text.index("end").split(".")[0])

    sender.close()
    app.close()
    root.destroy()
    if server is not None:
        server.stop()
    if process is not None:
        process.terminate()
        process.wait(10)
    result = {
        "server": "subprocess" if process is not None else "in-process",
        "messages": count,
        "queued_before_release": queued,
        "render_msgs_per_s": round(count / render_seconds),
        "render_worst_stall_ms": round(render_stall * 1000, 1),
        "render_turns": render_turns,
        "end_to_end_msgs_per_s": round(count / e2e_seconds),
        "end_to_end_worst_stall_ms": round(e2e_stall * 1000, 1),
        "idle_cpu_percent": round(idle_cpu, 2),
        "pane_lines_after_trim": lines,
    }
    print(f"burst of {count:,} messages from a real server ({result['server']}) to the Tk client")
    print(
        f"  render (burst queued at once): {result['render_msgs_per_s']:>8,} msg/s, "
        f"worst stall {result['render_worst_stall_ms']} ms, {render_turns} loop turns"
    )
    print(
        f"  end to end (server + parse + render): {result['end_to_end_msgs_per_s']:>8,} msg/s, "
        f"worst stall {result['end_to_end_worst_stall_ms']} ms"
    )
    print(f"  idle CPU (whole process, {args.idle:g} s): {result['idle_cpu_percent']} %")
    print(f"  pane holds {lines} lines (scrollback {app.settings.scrollback})")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
