"""Log lines a peer cannot forge or flood: escaped strings and summarised repeats.

Why: the login's ``"client"`` string went to the log as sent, so a newline in it wrote a second,
forged line ("login admin ..."), ESC and BEL bytes reached the terminal showing the log, and 60 KB
client strings grew the log by 60 MiB/s.  And each refused connection logged its own WARNING
(17,727 lines in 6 s from one address).  So:

- ``clean`` turns any peer-supplied string into one printable, bounded line: control characters
  (C0, C1, DEL), line and paragraph separators, bidi overrides and zero-width characters become
  escapes (``\\n``, ``\\x1b``, ``\\u202e``), and the text is cut.
- ``SafeFormatter`` applies the same escaping to every message the server's log handler writes
  (not to tracebacks), for strings a call site forgot.
- ``Summary`` logs the first of a kind of warning, then at most one line per window saying how
  many more there were; ``RepeatFilter`` does the same on the server's log handler for any
  WARNING repeated with one message template.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, fields, is_dataclass, replace
from typing import Any

CLIENT_CHARS = 64  # the login's "client" string
PREVIEW_CHARS = 200  # request and response previews at DEBUG

# Characters that change what a terminal or a reader sees besides printing a glyph.
_INVISIBLE = (
    set(range(0x00, 0x20))
    | set(range(0x7F, 0xA0))
    | {0xAD, 0x061C, 0x180E, 0x2028, 0x2029, 0xFEFF}
    | set(range(0x200B, 0x2010))  # zero-width space/joiners, LRM, RLM
    | set(range(0x202A, 0x202F))  # LRE, RLE, PDF, LRO, RLO
    | set(range(0x2060, 0x2070))  # word joiner, invisible operators, LRI, RLI, FSI, PDI
)
_ESCAPES = {ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t", ord("\\"): "\\\\"}


def _escape(code: int) -> str:
    if code in _ESCAPES:
        return _ESCAPES[code]
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


_TABLE = {code: _escape(code) for code in _INVISIBLE | set(_ESCAPES)}


def clean(value: object, limit: int = PREVIEW_CHARS) -> str:
    """One printable line of at most about ``limit`` characters for the log."""
    text = value if isinstance(value, str) else repr(value)
    cut = ""
    if len(text) > limit:
        cut = f"...({len(text) - limit} more)"
        text = text[:limit]
    # Lone surrogates (JSON allows them) cannot be written as UTF-8: escape them too.
    text = text.translate(_TABLE).encode("utf-8", "backslashreplace").decode("utf-8")
    return text + cut


SECRET_KEYS = frozenset({"password", "server_password", "new_password"})


def redacted(request: Any) -> Any:
    """A typed request as it may be logged: its passwords replaced (the DEBUG log of each
    request must never show a password; tests/test_accounts.py reads it)."""
    if not is_dataclass(request) or isinstance(request, type):
        return request
    hidden = {
        f.name: "<hidden>"
        for f in fields(request)
        if f.name in SECRET_KEYS and getattr(request, f.name) is not None
    }
    return replace(request, **hidden) if hidden else request


def escape_line(text: str) -> str:
    """``clean`` without the cut: for whole log messages."""
    return text.translate(_TABLE).encode("utf-8", "backslashreplace").decode("utf-8")


class SafeFormatter(logging.Formatter):
    """Escapes control and bidi characters in each message, so every record is one line."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_line(record.message)
        return super().formatMessage(record)


@dataclass(slots=True)
class _Tally:
    start: float  # when the last line of this kind was written
    level: int
    held: int = 0  # occurrences since, not yet written


class Summary:
    """Repeated warnings of one kind, logged as the first one then "N more in the last W s".

    ``note`` is called for every occurrence (from any thread); ``flush`` (the accept loop calls
    it now and then, and at stop) reports counts whose window has ended, so a burst's tally is
    written even if no further warning comes to trigger it.
    """

    def __init__(self, logger: logging.Logger, window: float = 10.0) -> None:
        self.logger = logger
        self.window = window
        self._lock = threading.Lock()
        self._tallies: dict[str, _Tally] = {}

    def note(self, kind: str, level: int, msg: str, *args: object) -> None:
        """Log ``msg`` if it is the first of ``kind`` in the window, else count it."""
        now = time.monotonic()
        with self._lock:
            tally = self._tallies.get(kind)
            if tally is not None and now - tally.start < self.window:
                tally.held += 1
                return
            self._tallies[kind] = _Tally(now, level)
        if tally is not None and tally.held:
            self._report(kind, tally)
        self.logger.log(level, msg, *args)

    def flush(self, force: bool = False) -> None:
        """Write the counts of windows that have ended (all of them with ``force``)."""
        now = time.monotonic()
        with self._lock:
            due = {
                kind: tally
                for kind, tally in self._tallies.items()
                if force or now - tally.start >= self.window
            }
            for kind in due:
                del self._tallies[kind]
        for kind, tally in due.items():
            if tally.held:
                self._report(kind, tally)

    def _report(self, kind: str, tally: _Tally) -> None:
        self.logger.log(tally.level, "%d more %s in the last %g s", tally.held, kind, self.window)


class RepeatFilter(logging.Filter):
    """On ``python -m server``'s log handler: of the WARNINGs with one message template (from one
    logger), the first per window is written and the rest counted, then written as one line
    ("N more like ...") when the window ends (``flush``, called by the main loop).

    Why a filter as well as ``Summary``: every module that warns per connection (overflowing
    outboxes, unreadable data, failed handshakes) would flood the log under attack the way
    refusals did; here no call site has to remember.  Tracebacks and ERRORs always go through.
    """

    def __init__(self, handler: logging.Handler, window: float = 10.0) -> None:
        super().__init__()
        self.handler = handler
        self.window = window
        self._lock = threading.Lock()
        self._tallies: dict[tuple[str, str], _Tally] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.WARNING or record.exc_info or hasattr(record, "tally"):
            return True
        key = (record.name, str(record.msg))
        now = time.monotonic()
        with self._lock:
            tally = self._tallies.get(key)
            if tally is not None and now - tally.start < self.window:
                tally.held += 1
                return False
            self._tallies[key] = _Tally(now, record.levelno)
        if tally is not None and tally.held:
            self._write(key, tally)
        return True

    def flush(self, force: bool = False) -> None:
        """Write the counts of windows that have ended (all of them with ``force``)."""
        now = time.monotonic()
        with self._lock:
            due = {
                key: tally
                for key, tally in self._tallies.items()
                if force or now - tally.start >= self.window
            }
            for key in due:
                del self._tallies[key]
        for key, tally in due.items():
            if tally.held:
                self._write(key, tally)

    def _write(self, key: tuple[str, str], tally: _Tally) -> None:
        record = logging.makeLogRecord(
            {
                "name": key[0],
                "levelno": tally.level,
                "levelname": logging.getLevelName(tally.level),
                "msg": "%d more like %r in the last %g s",
                "args": (tally.held, key[1], self.window),
                "tally": True,
            }
        )
        self.handler.handle(record)
