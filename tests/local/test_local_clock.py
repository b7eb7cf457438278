"""The clocks the local scheduler runs on."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sls_py.errors import ConfigError
from sls_py_local.clock import RealClock, SimulatedClock, iso_utc, parse_clock


class FakeMonotonic:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_simulated_clock_runs_speed_times_faster() -> None:
    mono = FakeMonotonic()
    clock = SimulatedClock(datetime(2026, 1, 1, tzinfo=UTC), speed=3600, monotonic=mono)
    assert clock.now() == datetime(2026, 1, 1, tzinfo=UTC)
    mono.t += 2.5
    assert clock.now() == datetime(2026, 1, 1, 2, 30, tzinfo=UTC)
    assert clock.real_seconds_until(datetime(2026, 1, 1, 3, tzinfo=UTC)) == 0.5
    assert clock.real_seconds_until(datetime(2026, 1, 1, 1, tzinfo=UTC)) == 0.0


def test_simulated_sleep_until_wakes_at_the_simulated_time() -> None:
    clock = SimulatedClock(datetime(2026, 1, 1, tzinfo=UTC), speed=36000)

    async def run() -> datetime:
        target = clock.now() + timedelta(hours=1)  # 0.1 s of real time
        await clock.sleep_until(target)
        return target

    target = asyncio.run(run())
    assert clock.now() >= target


def test_parse_clock() -> None:
    assert isinstance(parse_clock(None), RealClock)
    c = parse_clock("2026-01-01T00:00:00Z@3600")
    assert isinstance(c, SimulatedClock)
    assert (c.start, c.speed) == (datetime(2026, 1, 1, tzinfo=UTC), 3600.0)
    c = parse_clock("2026-06-01T12:00")  # no offset: UTC; no speed: real time
    assert isinstance(c, SimulatedClock)
    assert (c.start, c.speed) == (datetime(2026, 6, 1, 12, tzinfo=UTC), 1.0)
    c = parse_clock("2026-06-01T12:00+02:00@2")
    assert isinstance(c, SimulatedClock)
    assert (c.start, c.speed) == (datetime(2026, 6, 1, 10, tzinfo=UTC), 2.0)
    now = parse_clock("now@60")
    assert isinstance(now, SimulatedClock)
    assert abs((now.start - datetime.now(UTC)).total_seconds()) < 60


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("yesterday@2", "not an ISO 8601 time"),
        ("2026-01-01@fast", "is not a number"),
        ("2026-01-01@0", "positive"),
        ("2026-01-01@-5", "positive"),
        ("2026-01-01@inf", "positive"),
    ],
)
def test_parse_clock_errors_say_what_is_wrong(text: str, why: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_clock(text)
    assert why in err.value.message
    assert err.value.hint and "--clock 2026-01-01T00:00:00Z@3600" in err.value.hint


def test_iso_utc() -> None:
    moment = datetime(2026, 1, 1, 3, 4, 5, 999, tzinfo=UTC) + timedelta(hours=0)
    assert iso_utc(moment) == "2026-01-01T03:04:05Z"
