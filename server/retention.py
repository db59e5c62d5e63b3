"""``Retention``: deletes history older than ``--keep-days`` / beyond ``--keep-messages``.

One background thread (``tkchat-retention``) looks once at start and then every
``interval`` seconds.  It deletes in chunks of a few hundred rows, each its own short
transaction under the store's write lock, so the history writer's commits go on between the
chunks and chat never waits for a prune.  Ids are never reused (``AUTOINCREMENT``), so a
client's paging position stays meaningful.  ``stop`` ends the thread (it waits on an event).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from datetime import timedelta

from common.timestamps import format_timestamp, now_utc
from server.history import HistoryStore

log = logging.getLogger(__name__)

CHUNK = 200  # rows deleted per transaction (~40 ms of the write lock with the FTS index)
CHUNK_PAUSE = 0.01  # seconds between chunks, so the writer gets the lock


class Retention:
    """Prunes ``store`` to the newest ``keep_messages`` and the last ``keep_days`` (either
    may be ``None``: no limit of that kind)."""

    def __init__(
        self,
        store: HistoryStore,
        keep_days: float | None,
        keep_messages: int | None,
        interval: float = 600.0,
    ) -> None:
        self._store = store
        self.keep_days = keep_days
        self.keep_messages = keep_messages
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tkchat-retention", daemon=True)

    @property
    def active(self) -> bool:
        return self.keep_days is not None or self.keep_messages is not None

    def start(self) -> None:
        if self.active:
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("retention thread did not stop within %.1f s", timeout)

    def prune_once(self) -> int:
        """Delete everything retention allows now; return how many messages went."""
        try:
            bound = self._bound()
        except sqlite3.Error as exc:
            log.warning("retention: prune postponed (%s)", exc)
            return 0
        total = 0
        while bound is not None and not self._stop.is_set():
            try:
                removed = self._store.prune(bound, CHUNK)
            except sqlite3.Error as exc:
                log.warning("retention: prune postponed (%s)", exc)
                break
            total += removed
            if removed < CHUNK:
                break
            self._stop.wait(CHUNK_PAUSE)
        if total:
            log.info("retention: deleted %d old message(s)", total)
        return total

    def _bound(self) -> int | None:
        """Messages with an id below this may go (``None``: none may)."""
        bounds: list[int] = []
        if self.keep_messages is not None:
            keep_from = self._store.id_keeping(max(1, self.keep_messages))
            if keep_from is not None:
                bounds.append(keep_from)
        if self.keep_days is not None:
            since = format_timestamp(now_utc() - timedelta(days=self.keep_days))
            first = self._store.first_id_since(since)
            # Nothing that new: every message is older than the limit.
            bounds.append(first if first is not None else 2**63 - 1)
        return max(bounds) if bounds else None

    def _run(self) -> None:
        while not self._stop.is_set():
            self.prune_once()
            self._stop.wait(self.interval)
