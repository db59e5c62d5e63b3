"""Shared fixtures: a real server on 127.0.0.1 port 0 (in a thread or as a subprocess), raw
wire clients, and a guard that fails any test during which something logged an ERROR."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from server.app import ChatServer
from server.config import ServerConfig
from tests.wire import WireClient

ROOT = Path(__file__).resolve().parent.parent
# Every test connects from 127.0.0.1, and many open hundreds of connections or send thousands
# of requests from it: the per-address limits are off here.  tests/test_limits.py runs them
# with their defaults (``DEFAULT_LIMITS``), attacker and victim on different loopback addresses.
TEST_CONFIG = ServerConfig(
    host="127.0.0.1", port=0, db=":memory:", max_per_address=0, address_rate=0, login_rate=0
)
_DEFAULTS = ServerConfig()
DEFAULT_LIMITS = {
    "max_per_address": _DEFAULTS.max_per_address,
    "address_rate": _DEFAULTS.address_rate,
    "login_rate": _DEFAULTS.login_rate,
}


@pytest.fixture(autouse=True)
def fail_on_logged_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Any ERROR logged during a test (a crashed thread, a Tk callback error) fails it.

    Teardown counts too: servers stop there, and that is where shutdown bugs show.  This
    fixture is autouse and so set up first and torn down last: the other fixtures' teardown
    (``make_server`` stopping its servers) has run when it looks at the records.
    """
    caplog.set_level(logging.INFO)
    yield
    errors = [
        r
        for when in ("setup", "call", "teardown")
        for r in caplog.get_records(when)
        if r.levelno >= logging.ERROR
    ]
    if errors:
        pytest.fail("ERROR logged: " + "; ".join(r.getMessage() for r in errors), pytrace=False)


@pytest.fixture
def make_server() -> Iterator[Callable[..., ChatServer]]:
    """Start ChatServers in-process on free ports; every one is stopped after the test."""
    servers: list[ChatServer] = []

    def start(**overrides: object) -> ChatServer:
        server = ChatServer(replace(TEST_CONFIG, **overrides))  # type: ignore[arg-type]
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def server(make_server: Callable[..., ChatServer]) -> ChatServer:
    return make_server()


@pytest.fixture
def connect(server: ChatServer) -> Iterator[Callable[[], WireClient]]:
    clients: list[WireClient] = []

    def open_client() -> WireClient:
        client = WireClient(server.port)
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        client.close()


class ServerProcess:
    """``python -m server`` as a real subprocess; its port is read from its start-up log line."""

    def __init__(self, *args: str) -> None:
        self.args = list(args)
        self.preexec: Callable[[], None] | None = None  # run in the child (resource limits)
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0
        self.log: list[str] = []
        self._reader: threading.Thread | None = None

    def start(self, timeout: float = 15.0) -> ServerProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "server", "--host", "127.0.0.1", *self.args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            preexec_fn=self.preexec,  # noqa: PLW1509 (set only by tests that need it)
        )
        ready = threading.Event()

        def read() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                self.log.append(line.rstrip("\n"))
                match = re.search(r"listening on [^ ]+:(\d+)", line)
                if match:
                    self.port = int(match.group(1))
                    ready.set()
            ready.set()

        self._reader = threading.Thread(target=read, daemon=True)
        self._reader.start()
        if not ready.wait(timeout) or not self.port:
            self.kill()
            raise AssertionError("server did not start:\n" + "\n".join(self.log))
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        if self._reader is not None:
            self._reader.join(timeout)
        return code

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def server_process() -> Iterator[Callable[..., ServerProcess]]:
    started: list[ServerProcess] = []

    def start(*args: str) -> ServerProcess:
        proc = ServerProcess(*args).start()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()


def wait_for(condition: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    """Poll a condition (no event loop to pump here) with a bounded number of tries."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On Windows (the release workflow), leave out the tests that stop ``python -m server``
    with POSIX signals: there a process can only be terminated, which is neither a SIGTERM
    shutdown nor a SIGKILL crash.  On Linux and macOS every test runs."""
    if os.name == "posix":
        return
    reason = "stops `python -m server` with POSIX signals; Windows has only TerminateProcess"
    for item in items:
        if "server_process" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.skip(reason=reason))
