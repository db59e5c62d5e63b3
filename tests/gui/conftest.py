"""Fixtures for the Tk tests: one Tk root for the session (Tk callback errors go to logging,
so the autouse ERROR guard fails the test), and alice and bob windows against a real server."""

from __future__ import annotations

import gc
import logging
import tkinter as tk
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType

import pytest

from server.app import ChatServer
from tests.gui.harness import Person

log = logging.getLogger("tests.gui")


@pytest.fixture(scope="session")
def root() -> Iterator[tk.Tk]:
    root = tk.Tk()
    root.withdraw()

    def report(exc: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        log.error("Tk callback raised", exc_info=(exc, value, tb))

    root.report_callback_exception = report
    yield root
    root.destroy()


@pytest.fixture
def person(root: tk.Tk, tmp_path: Path) -> Iterator[Callable[[str], Person]]:
    """Open chat windows; every one is closed after the test."""
    people: list[Person] = []

    def open_window(name: str) -> Person:
        who = Person(root, name, tmp_path)
        people.append(who)
        return who

    yield open_window
    for who in people:
        who.close()
    root.update()


@pytest.fixture(autouse=True)
def collect_tk_garbage() -> Iterator[None]:
    """Collect closed windows' Tk variables here, on the Tk thread: a collection that happens
    to run on a server thread would call into Tk from there and raise."""
    yield
    gc.collect()


@pytest.fixture
def file_server(make_server: Callable[..., ChatServer], tmp_path: Path) -> ChatServer:
    """A server with its history in a file, so it can be restarted with the same history."""
    return make_server(db=str(tmp_path / "history.sqlite3"))
