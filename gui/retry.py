"""``Retry``: when a session tries again, and how long it waits first.

A session runs on two clocks: the *step* timer (the login's deadline while logging in, the
next connection attempt while waiting to reconnect) and the *resend* timer (messages the
server refused with ``rate_limited`` go out again after ``RATE_LIMIT_RETRY_SECONDS``).  With
the backoff and the attempt count they are the connection's retry policy; they live here,
apart from ``Session`` (gui/session.py), which decides *when* to arm them from the events it
handles.  The timers are a Tk widget's ``after`` calls, so this runs on the Tk thread only.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

RATE_LIMIT_RETRY_SECONDS = 2.0  # after a ``rate_limited`` error, unsent messages go out again


@dataclass(frozen=True, slots=True)
class Backoff:
    """Reconnect delays: ``first``, doubling up to ``maximum`` seconds, with +-20 % jitter."""

    first: float = 0.5
    maximum: float = 15.0

    def delay(self, attempt: int) -> float:
        base = min(self.maximum, self.first * (2 ** min(attempt, 16)))
        return float(base * random.uniform(0.8, 1.2))


class Retry:
    """See the module docstring.  ``after``/``after_cancel`` are a Tk widget's timer calls."""

    def __init__(
        self,
        after: Callable[[int, Callable[[], None]], str],
        after_cancel: Callable[[str], None],
        backoff: Backoff,
    ) -> None:
        self._after = after
        self._after_cancel = after_cancel
        self.backoff = backoff
        self.attempt = 0  # reconnect attempts since the connection was lost (0 while online)
        # While waiting to reconnect: why the connection went (a sentence), and when
        # (time.monotonic) the next try is.
        self.reason = ""
        self.at: float | None = None
        self._step: str | None = None
        self._resend: str | None = None

    def start(self, seconds: float, callback: Callable[[], None]) -> None:
        """Arm the step timer (replacing the one armed): ``callback`` in ``seconds``."""
        self.cancel()
        self._step = self._after(max(1, int(seconds * 1000)), lambda: self._fire(callback))

    def _fire(self, callback: Callable[[], None]) -> None:
        self._step = None
        self.at = None
        callback()

    def wait(self, reason: str, reconnect: Callable[[], None]) -> float:
        """The connection is lost (``reason``, a sentence): the next attempt calls
        ``reconnect`` after the backoff's delay for this attempt, which is returned."""
        delay = self.backoff.delay(self.attempt)
        self.attempt += 1
        self.reason = reason
        self.start(delay, reconnect)
        self.at = time.monotonic() + delay
        return delay

    def cancel(self) -> None:
        """Disarm the step timer (no login deadline, no attempt pending)."""
        self.at = None
        if self._step is not None:
            _cancel(self._after_cancel, self._step)
            self._step = None

    def resend_later(self, resend: Callable[[], None]) -> bool:
        """After ``rate_limited``: ``resend`` in ``RATE_LIMIT_RETRY_SECONDS``.  False (and
        nothing armed) when a resend is armed already: one for a whole burst of refusals."""
        if self._resend is not None:
            return False
        self._resend = self._after(
            int(RATE_LIMIT_RETRY_SECONDS * 1000), lambda: self._fire_resend(resend)
        )
        return True

    def _fire_resend(self, resend: Callable[[], None]) -> None:
        self._resend = None
        resend()

    def cancel_resend(self) -> None:
        if self._resend is not None:
            _cancel(self._after_cancel, self._resend)
            self._resend = None

    def stop(self) -> None:
        """Both timers off: the connection ended, or is lost and about to be waited for."""
        self.cancel()
        self.cancel_resend()


def _cancel(after_cancel: Callable[[str], None], timer: str) -> None:
    try:
        after_cancel(timer)
    except Exception:  # the widget may already be gone at shutdown
        pass
