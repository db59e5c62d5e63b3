"""Timestamps as TkChat writes them and as other KTN servers write them.

TkChat servers send ISO 8601 UTC with milliseconds (``2026-11-25T11:43:07.123Z``).  Other KTN
servers send floats, ints, numeric strings or local-time strings in several layouts, so reading is
lenient: anything recognisable becomes an aware UTC ``datetime``, anything else ``None`` (the
caller then uses the time of arrival).
"""

from __future__ import annotations

import email.utils
import math
from datetime import UTC, date, datetime

# Local-time layouts seen on classic KTN servers, most specific first.
_LOCAL_LAYOUTS = (
    "%Y-%m-%d %H:%M:%S.%f",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%d.%m.%Y %H:%M:%S",
    "%d.%m.%Y %H:%M",
    "%d/%m/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M:%S",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%d-%m-%Y %H:%M:%S",
    "%H:%M:%S %d.%m.%Y",
    "%H:%M:%S %d/%m/%Y",
    "%H:%M %d.%m.%Y",
    "%a %b %d %H:%M:%S %Y",
    "%a, %d %b %Y %H:%M:%S",
    "%d %b %Y %H:%M:%S",
)
_TIME_ONLY_LAYOUTS = ("%H:%M:%S.%f", "%H:%M:%S", "%H:%M", "%I:%M:%S %p", "%I:%M %p")

_EARLIEST = datetime(1000, 1, 1, tzinfo=UTC)
_LATEST = datetime(9000, 1, 1, tzinfo=UTC)

# Epoch values above this are taken as milliseconds (year 5138 in seconds).
_MILLIS_THRESHOLD = 1e11


def now_utc() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


def format_timestamp(moment: datetime) -> str:
    """ISO 8601 UTC with milliseconds and a ``Z``, as PROTOCOL.md requires."""
    # isoformat is about twice as fast as strftime, and this runs once per message sent.
    utc = moment if moment.tzinfo is UTC else moment.astimezone(UTC)
    return utc.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def parse_timestamp(value: object) -> datetime | None:
    """Read a timestamp in any layout a KTN server is known to use; ``None`` if unreadable.

    Never raises: the value comes from the network, and a year-1 or year-9999 date (or an
    integer too big for a float) must not kill the receiver thread.  Moments outside years
    1000-9000 count as unreadable, so that converting one to local time for display cannot
    overflow either.
    """
    try:
        moment = _parse(value)
    except (ValueError, OverflowError, OSError):
        return None
    if moment is None or not _EARLIEST <= moment <= _LATEST:
        return None
    return moment


def _parse(value: object) -> datetime | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return _from_epoch(float(value))
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text or len(text) > 64:
        return None
    try:
        return _from_epoch(float(text))
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        parsed = None
    if parsed is not None:
        return _as_utc(parsed)
    for layout in _LOCAL_LAYOUTS:
        try:
            return _as_utc(datetime.strptime(text, layout))
        except ValueError:
            continue
    try:  # RFC 2822, as email and HTTP write it ("Wed, 25 Nov 2026 12:43:07 +0000")
        return _as_utc(email.utils.parsedate_to_datetime(text))
    except (TypeError, ValueError, IndexError):
        pass
    for layout in _TIME_ONLY_LAYOUTS:
        try:
            clock = datetime.strptime(text, layout).time()
        except ValueError:
            continue
        return _as_utc(datetime.combine(date.today(), clock))
    return None


def _from_epoch(seconds: float) -> datetime | None:
    if not math.isfinite(seconds) or seconds < 0:
        return None
    if seconds > _MILLIS_THRESHOLD:
        seconds /= 1000.0
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _as_utc(moment: datetime) -> datetime:
    """Naive values are local time (that is what classic servers print); make them UTC.

    ``astimezone`` reads a naive value as local time, which is exactly the rule wanted."""
    return moment.astimezone(UTC)
