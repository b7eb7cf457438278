"""Clocks for local schedules: the real one, and a simulated one for replaying time.

``sls-py run --clock START[@SPEED]`` runs schedules on a :class:`SimulatedClock`
that starts at ``START`` (ISO 8601, UTC unless an offset is given, or ``now``)
and advances ``SPEED`` simulated seconds per real second, so a test can replay
a day of schedules in seconds: ``--clock 2026-01-01T00:00:00Z@43200`` runs a
day in two seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sls_py.errors import ConfigError

_CLOCK_HINT = "write START[@SPEED], e.g. --clock 2026-01-01T00:00:00Z@3600 or --clock now@60"


class Clock(Protocol):
    """What the scheduler needs from a clock. Times are aware datetimes in UTC."""

    #: simulated seconds per real second (1 for the real clock)
    speed: float

    def now(self) -> datetime: ...

    async def sleep_until(self, when: datetime) -> None: ...


def iso_utc(moment: datetime) -> str:
    """``moment`` as ``2026-01-01T02:00:00Z`` (whole seconds, like EventBridge)."""
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


class RealClock:
    """The wall clock."""

    speed = 1.0

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_until(self, when: datetime) -> None:
        # sleep in slices: a machine that was suspended wakes up on time
        while (delta := (when - self.now()).total_seconds()) > 0:
            await asyncio.sleep(min(delta, 30.0))


class SimulatedClock:
    """A clock that starts at ``start`` and runs ``speed`` times faster than real time.

    :param monotonic: the real time source (seconds); tests pass their own.
    """

    def __init__(
        self, start: datetime, speed: float = 1.0, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.start = start.astimezone(UTC)
        self.speed = float(speed)
        self._monotonic = monotonic
        self._t0 = monotonic()

    def now(self) -> datetime:
        return self.start + timedelta(seconds=(self._monotonic() - self._t0) * self.speed)

    def real_seconds_until(self, when: datetime) -> float:
        """Real seconds until the simulated time ``when`` (0 when it has passed)."""
        return max(0.0, (when - self.now()).total_seconds() / self.speed)

    async def sleep_until(self, when: datetime) -> None:
        while (delay := self.real_seconds_until(when)) > 0:
            await asyncio.sleep(min(delay, 30.0))


def parse_clock(text: str | None) -> Clock:
    """The clock ``--clock`` asks for: real when ``text`` is empty, else simulated.

    Raises :class:`~sls_py.errors.ConfigError` saying what is wrong with ``text``.
    """
    if not text:
        return RealClock()
    start_text, sep, speed_text = text.strip().rpartition("@")
    if not sep:
        start_text, speed_text = speed_text, "1"
    if start_text.lower() == "now":
        start = datetime.now(UTC)
    else:
        try:
            start = datetime.fromisoformat(start_text)
        except ValueError:
            raise ConfigError(
                f"--clock {text!r}: {start_text!r} is not an ISO 8601 time", hint=_CLOCK_HINT
            ) from None
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
    try:
        speed = float(speed_text)
    except ValueError:
        raise ConfigError(
            f"--clock {text!r}: speed {speed_text!r} is not a number", hint=_CLOCK_HINT
        ) from None
    if not speed > 0 or speed == float("inf"):
        raise ConfigError(f"--clock {text!r}: speed must be a positive number", hint=_CLOCK_HINT)
    return SimulatedClock(start, speed)
