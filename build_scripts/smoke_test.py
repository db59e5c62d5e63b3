"""Smoke test of the *built* ChatServer and ChatClient: ``python build_scripts/smoke_test.py``.

The unit tests run the source; this runs what users download, to catch what only freezing breaks
(a hidden import PyInstaller missed, sv-ttk data left out, a library the bundle lacks).

1. Starts ``dist/ChatServer --host 127.0.0.1 --port 0`` (a free port, read back from its
   "listening on HOST:PORT" log line) with a throwaway SQLite file.
2. Drives a session with raw sockets and plain JSON, as a foreign KTN client would: alice and bob
   log in, see each other join, chat, ask for names.
3. Starts ``ChatClient --connect 127.0.0.1:PORT --user smoke --config-dir <tmp>`` (on Linux inside
   its own Xvfb unless ``--use-display``), checks that its window is shown (xdotool, Linux) and
   that it logged in (alice sees ``smoke`` join, the server logs ``login smoke``), types a line
   into it with real key presses (Linux) that bob must receive, lets alice and bob greet it,
   and saves a screenshot (Pillow) to ``test-output/smoke-client.png``: look at it.
4. Stops the client, then the server, by the pids it started; the server must exit 0.

Every wait is bounded; every failure says what was expected and where the logs are.  The last line
is ``smoke: N passed, N failed``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
EXE = ".exe" if sys.platform == "win32" else ""
# A plain bool, not sys.platform checks inline: mypy would call the other OSes' code unreachable.
LINUX = sys.platform.startswith("linux")
WINDOWS = sys.platform == "win32"
TIMEOUT = 30.0  # generous: a onefile build unpacks itself before Python even starts
LISTENING = re.compile(r"listening on 127\.0\.0\.1:(\d+)")


class SmokeFailure(Exception):
    """A check failed; the message says what was expected and where to look."""


class Checks:
    """Counts checks so the run ends with one ``N passed, N failed`` line CI can read."""

    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0

    def ok(self, what: str) -> None:
        self.passed += 1
        print(f"  ok   {what}", flush=True)

    def fail(self, what: str) -> None:
        self.failed += 1
        print(f"  FAIL {what}", flush=True)


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` every 0.1 s; SmokeFailure naming ``what`` when time runs out."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SmokeFailure(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)


class LogTail:
    """Reads a child's output in a thread (so its pipe never fills) into a file and a list."""

    def __init__(self, stream: IO[str], copy_to: Path) -> None:
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self._copy_to = copy_to
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream: IO[str]) -> None:
        with self._copy_to.open("w", encoding="utf-8") as out:
            for line in stream:  # ends when the child exits and its pipe closes
                out.write(line)
                out.flush()
                with self._lock:
                    self.lines.append(line.rstrip("\n"))

    def search(self, pattern: re.Pattern[str]) -> re.Match[str] | None:
        with self._lock:
            for line in self.lines:
                if m := pattern.search(line):
                    return m
        return None

    def tail(self, n: int = 20) -> str:
        with self._lock:
            return "\n".join("    | " + line for line in self.lines[-n:])

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


class RawClient:
    """A KTN client made of a socket and ``json``: no project code, like a foreign program."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.buffer = ""
        self.decoder = json.JSONDecoder()
        self.seen: list[dict[str, Any]] = []

    def send(self, request: str, content: str | None = None, **extra: str) -> None:
        self.sock.sendall(
            (json.dumps({"request": request, "content": content, **extra}) + "\n").encode()
        )

    def _read_some(self, timeout: float) -> None:
        self.sock.settimeout(max(timeout, 0.01))
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return
        if not data:
            raise SmokeFailure("the server closed a raw client's connection unexpectedly")
        self.buffer += data.decode("utf-8")
        while self.buffer.strip():
            text = self.buffer.lstrip()
            try:
                obj, end = self.decoder.raw_decode(text)
            except json.JSONDecodeError:
                return  # incomplete object: wait for more bytes
            self.buffer = text[end:]
            self.seen.append(obj)

    def expect(
        self, what: str, match: Callable[[dict[str, Any]], bool], timeout: float = TIMEOUT
    ) -> dict[str, Any]:
        """The first received object (old or new) that ``match``es; it is consumed."""
        deadline = time.monotonic() + timeout
        while True:
            for i, obj in enumerate(self.seen):
                if match(obj):
                    return self.seen.pop(i)
            left = deadline - time.monotonic()
            if left <= 0:
                got = "\n".join(f"    {o}" for o in self.seen[-8:]) or "    (nothing)"
                raise SmokeFailure(f"no {what} within {timeout:.0f}s; received:\n{got}")
            self._read_some(min(left, 0.5))

    def login(self, name: str) -> dict[str, Any]:
        self.send("login", name, client="smoke/1.0")
        info = self.expect(
            f"login answer for {name}", lambda o: o.get("response") == "info" and "users" in o
        )
        self.expect(f"history for {name}", lambda o: o.get("response") == "history")
        return info

    def close(self) -> None:
        self.sock.close()


def is_message(sender: str, content: str) -> Callable[[dict[str, Any]], bool]:
    return lambda o: (
        o.get("response") == "message" and o.get("sender") == sender and o.get("content") == content
    )


def is_event(event: str, user: str) -> Callable[[dict[str, Any]], bool]:
    return lambda o: (
        o.get("response") == "info" and o.get("event") == event and o.get("user") == user
    )


def find_client(dist: Path) -> Path:
    """The ChatClient program, whichever way it was built (onefile, onedir, macOS .app)."""
    candidates = [
        dist / "ChatClient.app" / "Contents" / "MacOS" / "ChatClient",
        dist / "ChatClient" / f"ChatClient{EXE}",
        dist / f"ChatClient{EXE}",
    ]
    for path in candidates:
        if path.is_file():
            return path
    raise SmokeFailure(
        f"no built ChatClient in {dist}; build it first: make dist "
        "(or python build_scripts/build.py)"
    )


def descendants(pid: int) -> list[int]:
    """Child pids (Linux /proc): a onefile build runs the app in a child of the pid we started."""
    found: list[int] = []
    todo = [pid]
    while todo and len(found) < 100:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                kids = [int(k) for k in task.read_text().split()]
                found += kids
                todo += kids
    return found


def stop(proc: subprocess.Popen[Any], name: str, timeout: float = 15.0) -> int:
    """SIGTERM (Windows: TerminateProcess) by pid, then SIGKILL if it hangs; its exit code."""
    if proc.poll() is not None:
        return proc.returncode
    kids = descendants(proc.pid)
    proc.terminate()
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        print(f"  {name} (pid {proc.pid}) ignored SIGTERM for {timeout:.0f}s; killing it")
        proc.kill()
        for kid in kids:  # only the children of our own process (Linux: Windows has none here)
            with contextlib.suppress(OSError):
                os.kill(kid, getattr(signal, "SIGKILL", signal.SIGTERM))
        return proc.wait(10)


@contextlib.contextmanager
def xvfb(use_display: bool) -> Iterator[str | None]:
    """A private X display for the client on Linux (its number from -displayfd), else None."""
    if not LINUX or use_display:
        yield os.environ.get("DISPLAY")
        return
    if shutil.which("Xvfb") is None:
        raise SmokeFailure("Xvfb is not installed: apt-get install xvfb (or pass --use-display)")
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
        pass_fds=[write_fd],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    try:
        ready, _, _ = select.select([read_fd], [], [], TIMEOUT)
        number = os.read(read_fd, 64).decode().strip() if ready else ""
        if not number:
            raise SmokeFailure(f"Xvfb did not report a display within {TIMEOUT:.0f}s")
        yield f":{number}"
    finally:
        os.close(read_fd)
        stop(proc, "Xvfb")


def xdotool(display: str, *args: str) -> str:
    """Run one xdotool command on ``display`` (bounded); its stdout."""
    return subprocess.run(
        ["xdotool", *args],
        env={**os.environ, "DISPLAY": display},
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    ).stdout.strip()


def visible_windows(display: str) -> list[tuple[str, str]]:
    """(id, 'name (WxH)') of every visible named window on ``display`` (xdotool, Linux only)."""
    shown = []
    for wid in xdotool(display, "search", "--onlyvisible", "--name", ".").split()[:20]:
        name = xdotool(display, "getwindowname", wid)
        size = re.search(r"Geometry: (\d+x\d+)", xdotool(display, "getwindowgeometry", wid))
        shown.append((wid, f"{name!r} ({size.group(1) if size else '?'})"))
    return shown


def type_into(display: str, wid: str, text: str, settle: float) -> None:
    """Real key presses into the window (XTEST): focus it, type, press Return.

    Not ``xdotool type --window``: that sends synthetic events, which Tk ignores.  Xvfb has no
    window manager, so focusing the toplevel by hand is what a click would do on a desktop.
    ``--sync`` returns once the X server has moved the focus, but Tk must still handle its
    FocusIn before keys reach the entry (a key before that is lost), and nothing outside Tk can
    see when it has: hence the ``settle`` pause.
    """
    xdotool(display, "windowfocus", "--sync", wid)
    time.sleep(settle)
    xdotool(display, "type", "--delay", "30", text)
    xdotool(display, "key", "Return")


def typed_message_arrives(display: str, wid: str, reader: RawClient) -> str:
    """Type a line into ChatClient until ``reader`` receives it whole; at most three tries.

    A try whose first keys were lost to the focus race above shows up as a message that is
    not the whole line; the next try waits longer.  Three wrong or missing lines fail the test.
    """
    got: list[str] = []
    for attempt in range(1, 4):
        text = f"hello from the built client, try {attempt}"
        type_into(display, wid, text, settle=0.3 * attempt)
        try:
            msg = reader.expect(
                "a message from smoke",
                lambda o: o.get("sender") == "smoke" and o.get("response") == "message",
                timeout=10,
            )
        except SmokeFailure:
            got.append("(nothing)")
            continue
        if msg.get("content") == text:
            return text
        got.append(repr(msg.get("content")))
    raise SmokeFailure(f"typed lines did not arrive whole; the others received: {', '.join(got)}")


def screenshot(display: str | None, path: Path) -> str:
    """Save the whole screen with Pillow's ImageGrab (X11 via xcb on Linux; native elsewhere)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        from PIL import ImageGrab
    except ImportError:
        return "skipped (Pillow is not installed: pip install -e '.[build]')"
    if LINUX and display is None:
        return "skipped (no X display)"
    try:
        ImageGrab.grab(xdisplay=display if LINUX else None).save(path)
    except OSError as exc:  # macOS without screen-recording permission, a locked session
        return f"skipped ({exc})"
    return f"saved {path}"


def run(args: argparse.Namespace, checks: Checks) -> None:
    dist: Path = args.dist
    out: Path = args.output
    out.mkdir(parents=True, exist_ok=True)
    server_exe = dist / f"ChatServer{EXE}"
    if not server_exe.is_file():
        raise SmokeFailure(f"no built ChatServer at {server_exe}; build it first: make dist")
    client_exe = None if args.server_only else find_client(dist)

    with tempfile.TemporaryDirectory(prefix="tkchat-smoke-") as tmp:
        server = subprocess.Popen(
            [
                str(server_exe),
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--db",
                str(Path(tmp) / "chat.sqlite3"),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
        assert server.stdout is not None
        server_log = LogTail(server.stdout, out / "smoke-server.log")
        raw: list[RawClient] = []
        try:
            print(f"server: {server_exe} (pid {server.pid})", flush=True)
            wait_until(
                lambda: server_log.search(LISTENING) is not None or server.poll() is not None,
                TIMEOUT,
                "the server's 'listening on 127.0.0.1:PORT' log line",
            )
            found = server_log.search(LISTENING)
            if found is None:
                raise SmokeFailure(
                    f"ChatServer exited with {server.returncode} before listening:\n"
                    + server_log.tail()
                )
            port = int(found.group(1))
            checks.ok(f"ChatServer listens on 127.0.0.1:{port}")

            alice, bob = RawClient(port), RawClient(port)
            raw += [alice, bob]
            alice.login("alice")
            users = bob.login("bob").get("users")
            alice.expect("bob's join event", is_event("join", "bob"))
            if users != ["alice", "bob"]:
                raise SmokeFailure(f"bob's login answer lists users {users}, expected alice, bob")
            alice.send("msg", "hi bob, this is the frozen server")
            for who in (alice, bob):
                who.expect(
                    "alice's message", is_message("alice", "hi bob, this is the frozen server")
                )
            bob.send("msg", "hi alice 👋")
            for who in (alice, bob):
                who.expect("bob's message", is_message("bob", "hi alice 👋"))
            bob.send("names")
            bob.expect("names answer", lambda o: o.get("users") == ["alice", "bob"])
            checks.ok("raw session: two logins, join event, messages both ways, names")

            if client_exe is not None:
                run_client(
                    client_exe,
                    port=port,
                    alice=alice,
                    bob=bob,
                    server_log=server_log,
                    tmp=Path(tmp),
                    out=out,
                    args=args,
                    checks=checks,
                )

            code = stop(server, "ChatServer")
            if WINDOWS:
                # Windows has no SIGTERM to send: terminate() ends the process outright, so
                # there is no shutdown notice or exit status to check (Ctrl-C in its console is
                # the graceful way there, which a test cannot send to a child it did not attach).
                checks.ok(f"ChatServer stopped (TerminateProcess, exit {code})")
                return
            alice.expect("shutdown notice", lambda o: o.get("event") == "shutdown", timeout=5)
            if code != 0:
                raise SmokeFailure(
                    f"ChatServer exited {code} on SIGTERM, expected 0:\n" + server_log.tail()
                )
            checks.ok("ChatServer told clients it was shutting down and exited 0 on SIGTERM")
        finally:
            for client in raw:
                client.close()
            stop(server, "ChatServer")
            server_log.join(5)


def run_client(
    exe: Path,
    *,
    port: int,
    alice: RawClient,
    bob: RawClient,
    server_log: LogTail,
    tmp: Path,
    out: Path,
    args: argparse.Namespace,
    checks: Checks,
) -> None:
    with xvfb(args.use_display) as display:
        env = dict(os.environ)
        if display is not None:
            env["DISPLAY"] = display
        config_dir = tmp / "client-config"
        client = subprocess.Popen(
            [
                str(exe),
                "--connect",
                f"127.0.0.1:{port}",
                "--user",
                "smoke",
                "--config-dir",
                str(config_dir),
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
        assert client.stdout is not None
        client_log = LogTail(client.stdout, out / "smoke-client.log")
        print(f"client: {exe} (pid {client.pid}) on display {display}", flush=True)
        try:
            try:
                alice.expect("smoke's join event", is_event("join", "smoke"), timeout=60)
            except SmokeFailure as exc:
                state = "still running" if client.poll() is None else f"exited {client.returncode}"
                raise SmokeFailure(
                    f"{exc}\nChatClient is {state}; its output "
                    f"({out / 'smoke-client.log'}):\n{client_log.tail()}"
                ) from exc
            wait_until(
                lambda: server_log.search(re.compile(r"login smoke\b")) is not None,
                10,
                "'login smoke' in the server log",
            )
            checks.ok("ChatClient connected and logged in as smoke (join event, server log)")

            if LINUX and display is not None:
                if shutil.which("xdotool") is None:
                    raise SmokeFailure("xdotool is not installed: apt-get install xdotool")
                windows: list[tuple[str, str]] = []

                def shown() -> bool:
                    windows[:] = visible_windows(display)
                    return bool(windows)

                wait_until(shown, TIMEOUT, "a visible ChatClient window (xdotool search)")
                checks.ok(f"ChatClient window shown: {', '.join(w[1] for w in windows)}")
                typed = typed_message_arrives(display, windows[0][0], bob)
                checks.ok(f"a line typed into ChatClient's window reached the others: {typed!r}")

            alice.send("msg", "welcome smoke!")
            bob.send("msg", "the built client works 🎉")
            for text, sender in (("welcome smoke!", "alice"), ("the built client works 🎉", "bob")):
                alice.expect(f"{sender}'s greeting", is_message(sender, text))
            # The GUI cannot be asked whether it has drawn the greetings; give its poll loop a
            # moment so the screenshot shows them.  Correctness does not depend on this pause.
            time.sleep(2.0)
            if client.poll() is not None:
                raise SmokeFailure(
                    f"ChatClient exited {client.returncode} while chatting:\n" + client_log.tail()
                )
            print(f"  screenshot: {screenshot(display, out / 'smoke-client.png')}", flush=True)
            checks.ok("ChatClient still running after receiving messages")
        finally:
            stop(client, "ChatClient")
            client_log.join(5)
        with contextlib.suppress(SmokeFailure):
            alice.expect("smoke's leave event", is_event("leave", "smoke"), timeout=10)
            checks.ok("the server saw ChatClient leave when it was stopped")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dist", type=Path, default=ROOT / "dist", help="where the builds are")
    parser.add_argument(
        "--output",
        type=Path,
        default=ROOT / "test-output",
        help="logs and screenshot go here (default: %(default)s)",
    )
    parser.add_argument(
        "--server-only",
        action="store_true",
        help="test only ChatServer (before a ChatClient exists)",
    )
    parser.add_argument(
        "--use-display",
        action="store_true",
        help="Linux: show the client on $DISPLAY instead of a private Xvfb",
    )
    args = parser.parse_args(argv)
    checks = Checks()
    start = time.monotonic()
    try:
        run(args, checks)
    except SmokeFailure as exc:
        checks.fail(str(exc))
        print(
            f"  logs: {args.output}/smoke-server.log, {args.output}/smoke-client.log",
            file=sys.stderr,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        checks.fail(f"{type(exc).__name__}: {exc}")
    print(f"smoke test took {time.monotonic() - start:.0f}s")
    print(f"smoke: {checks.passed} passed, {checks.failed} failed", flush=True)
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
