"""Schedule expressions: parsed once here so every provider agrees on them.

Accepted forms (all in UTC):

- ``rate(1 minute)``, ``rate(5 minutes)``, ``rate(2 hours)``, ``rate(1 day)``
- ``cron(0 2 * * ? *)``: AWS's six fields (minute hour day-of-month month
  day-of-week year), ``?`` allowed in day-of-month or day-of-week
- ``0 2 * * *``: standard five-field cron

:func:`parse_schedule` returns a :class:`ScheduleExpr` that can say when the
next firing is (via croniter) and how to write the expression for AWS.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$")
_CRON = re.compile(r"^cron\((.*)\)$")
_UNIT_S = {"minute": 60, "hour": 3600, "day": 86400}
_DOW_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")


class ScheduleSyntaxError(ValueError):
    """The expression is not a schedule sls-py understands."""


@dataclass(frozen=True)
class ScheduleExpr:
    """A parsed schedule: either every ``rate_s`` seconds or a 5-field ``cron``."""

    source: str
    rate_s: int | None = None
    cron: str | None = None

    def next_after(self, moment: datetime, start: datetime | None = None) -> datetime:
        """The first firing strictly after ``moment`` (UTC). Rates count from ``start``."""
        moment = moment.astimezone(UTC)
        if self.rate_s is not None:
            origin = (start or moment).astimezone(UTC)
            if moment < origin:
                return origin + timedelta(seconds=self.rate_s)
            steps = int((moment - origin).total_seconds() // self.rate_s) + 1
            return origin + timedelta(seconds=steps * self.rate_s)
        from croniter import croniter

        assert self.cron is not None
        nxt: datetime = croniter(self.cron, moment).get_next(datetime)
        return nxt.astimezone(UTC)

    def aws(self) -> str:
        """The expression in AWS EventBridge syntax."""
        if self.rate_s is not None:
            for unit in ("day", "hour", "minute"):
                n, rem = divmod(self.rate_s, _UNIT_S[unit])
                if rem == 0:
                    return f"rate({n} {unit}{'s' if n != 1 else ''})"
        assert self.cron is not None
        minute, hour, dom, month, dow = self.cron.split()
        if dow == "*":
            dow = "?"
        elif dom == "*":
            dom = "?"
        else:
            raise ScheduleSyntaxError(
                f"{self.source!r}: AWS cannot combine a day of month and a day of week"
            )
        if dow != "?":
            dow = _aws_dow(dow)
        return f"cron({minute} {hour} {dom} {month} {dow} *)"


def _aws_dow(field: str) -> str:
    """Five-field cron day-of-week (0 or 7 = Sunday) to AWS names (SUN..SAT)."""

    def name(token: str) -> str:
        return _DOW_NAMES[int(token) % 7] if token.isdigit() else token.upper()

    return re.sub(r"[0-9]+|[A-Za-z]{3}", lambda m: name(m.group(0)), field)


def _cron_dow(field: str) -> str:
    """AWS day-of-week (1 = SUN .. 7 = SAT, or names) to five-field cron (0 = SUN)."""
    return re.sub(r"\d+", lambda m: str((int(m.group(0)) - 1) % 7), field)


def parse_schedule(expression: str) -> ScheduleExpr:
    """Parse ``expression``; raise :class:`ScheduleSyntaxError` saying what is wrong."""
    text = expression.strip()
    rate = _RATE.match(text)
    if rate:
        n, unit = int(rate.group(1)), rate.group(2).rstrip("s")
        if n < 1:
            raise ScheduleSyntaxError(f"{expression!r}: a rate must be at least 1 {unit}")
        if (n == 1) != (not rate.group(2).endswith("s")):
            raise ScheduleSyntaxError(
                f"{expression!r}: write 'rate(1 {unit})' for one and 'rate(N {unit}s)' for more"
            )
        return ScheduleExpr(source=expression, rate_s=n * _UNIT_S[unit])
    if text.startswith("rate("):
        raise ScheduleSyntaxError(
            f"{expression!r}: expected 'rate(N minutes|hours|days)', e.g. 'rate(5 minutes)'"
        )
    cron = _CRON.match(text)
    if cron:
        fields = cron.group(1).split()
        if len(fields) != 6:
            raise ScheduleSyntaxError(
                f"{expression!r}: cron(...) takes six fields: minute hour day-of-month "
                "month day-of-week year, e.g. 'cron(0 2 * * ? *)'"
            )
        minute, hour, dom, month, dow, year = fields
        if year not in ("*", "?"):
            raise ScheduleSyntaxError(f"{expression!r}: only '*' is supported for the year")
        if (dom == "?") == (dow == "?"):
            raise ScheduleSyntaxError(
                f"{expression!r}: AWS cron needs '?' in exactly one of day-of-month and day-of-week"
            )
        five = " ".join(
            [minute, hour, "*" if dom == "?" else dom, month, "*" if dow == "?" else _cron_dow(dow)]
        )
    else:
        five = text
        if len(five.split()) != 5:
            raise ScheduleSyntaxError(
                f"{expression!r}: expected 'rate(5 minutes)', 'cron(0 2 * * ? *)' "
                "or a five-field cron expression like '0 2 * * *'"
            )
    from croniter import croniter

    if not croniter.is_valid(five):
        raise ScheduleSyntaxError(f"{expression!r}: not a valid cron expression")
    return ScheduleExpr(source=expression, cron=five)
