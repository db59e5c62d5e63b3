"""Timestamps: TkChat's own format, every layout other KTN servers use, and never a crash."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.timestamps import format_timestamp, parse_timestamp
from gui.display import local_clock


def test_format_is_iso_utc_with_milliseconds_and_z() -> None:
    moment = datetime(2026, 11, 25, 11, 43, 7, 123999, UTC)
    assert format_timestamp(moment) == "2026-11-25T11:43:07.123Z"
    stamp = format_timestamp(datetime.now(UTC))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", stamp)
    assert parse_timestamp(stamp) is not None


def test_out_of_range_values_are_unreadable_not_errors() -> None:
    for value in (
        10**400,
        "0001-01-01T00:00:00+01:00",
        "0001-01-01T00:00:00",
        "9999-12-31T23:59:59-05:00",
        "1e400",
        float("nan"),
        float("inf"),
        -1,
    ):
        assert parse_timestamp(value) is None, value


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        st.text(max_size=40),
        st.integers(),
        st.floats(allow_nan=True, allow_infinity=True),
        st.datetimes().map(str),
        st.datetimes().map(lambda d: d.isoformat()),
        st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    )
)
def test_any_value_parses_to_a_displayable_utc_moment_or_none(value: object) -> None:
    moment = parse_timestamp(value)
    if moment is not None:
        offset = moment.utcoffset()
        assert offset is not None and offset.total_seconds() == 0
        assert re.fullmatch(r"\d\d:\d\d:\d\d", local_clock(moment))


def _local(wall_clock: str) -> datetime:
    return datetime.fromisoformat(wall_clock).astimezone(UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-25T11:43:07.123Z", datetime(2026, 11, 25, 11, 43, 7, 123000, UTC)),
        ("2026-11-25T12:43:07+01:00", datetime(2026, 11, 25, 11, 43, 7, tzinfo=UTC)),
        ("Wed, 25 Nov 2026 12:43:07 +0100", datetime(2026, 11, 25, 11, 43, 7, tzinfo=UTC)),
        ("2026-11-25 12:43:07.250000", _local("2026-11-25 12:43:07.25")),
        ("2026/11/25 12:43:07", _local("2026-11-25 12:43:07")),
        ("25-11-2026 12:43:07", _local("2026-11-25 12:43:07")),
        ("12:43:07 25.11.2026", _local("2026-11-25 12:43:07")),
        ("Wed Nov  5 12:43:07 2026", _local("2026-11-05 12:43:07")),
        ("Wed, 25 Nov 2026 12:43:07", _local("2026-11-25 12:43:07")),
        ("25 Nov 2026 12:43:07", _local("2026-11-25 12:43:07")),
    ],
)
def test_layouts_of_other_ktn_servers(text: str, expected: datetime) -> None:
    assert parse_timestamp(text) == expected


def test_time_of_day_alone_is_today_local_time() -> None:
    moment = parse_timestamp("01:43:07 PM")
    assert moment is not None
    assert moment.astimezone().strftime("%H:%M:%S") == "13:43:07"
