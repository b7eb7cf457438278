from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sls_py.schedules import ScheduleSyntaxError, parse_schedule


@pytest.mark.parametrize(
    ("expression", "rate_s"),
    [("rate(1 minute)", 60), ("rate(5 minutes)", 300), ("rate(2 hours)", 7200), ("rate(1 day)", 86400)],
)
def test_rates(expression: str, rate_s: int) -> None:
    assert parse_schedule(expression).rate_s == rate_s
    assert parse_schedule(expression).aws() == expression


@pytest.mark.parametrize(
    ("expression", "cron", "aws"),
    [
        ("cron(0 2 * * ? *)", "0 2 * * *", "cron(0 2 * * ? *)"),
        ("cron(15 10 ? * 2-6 *)", "15 10 * * 1-5", "cron(15 10 ? * MON-FRI *)"),
        ("0 2 * * *", "0 2 * * *", "cron(0 2 * * ? *)"),
        ("30 9 * * 0", "30 9 * * 0", "cron(30 9 ? * SUN *)"),
    ],
)
def test_cron_forms(expression: str, cron: str, aws: str) -> None:
    parsed = parse_schedule(expression)
    assert (parsed.cron, parsed.aws()) == (cron, aws)


def test_next_firing_of_a_nightly_cron() -> None:
    nightly = parse_schedule("cron(0 2 * * ? *)")
    at = datetime(2026, 3, 1, 1, 59, tzinfo=UTC)
    assert nightly.next_after(at) == datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
    assert nightly.next_after(datetime(2026, 3, 1, 2, 0, tzinfo=UTC)) == datetime(
        2026, 3, 2, 2, 0, tzinfo=UTC
    )


def test_rates_count_from_their_start() -> None:
    every5 = parse_schedule("rate(5 minutes)")
    start = datetime(2026, 1, 1, 0, 0, tzinfo=UTC)
    assert every5.next_after(start, start) == datetime(2026, 1, 1, 0, 5, tzinfo=UTC)
    assert every5.next_after(datetime(2026, 1, 1, 0, 7, tzinfo=UTC), start) == datetime(
        2026, 1, 1, 0, 10, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("expression", "says"),
    [
        ("rate(5 minute)", "rate(N minutes)"),
        ("rate(1 minutes)", "rate(1 minute)"),
        ("rate(0 minutes)", "at least 1"),
        ("rate(5 weeks)", "expected 'rate(N minutes|hours|days)'"),
        ("cron(0 2 * * *)", "six fields"),
        ("cron(0 2 * * * *)", "exactly one"),
        ("cron(0 2 * * ? 2027)", "year"),
        ("every night", "five-field"),
        ("61 2 * * *", "not a valid cron"),
    ],
)
def test_bad_expressions_say_what_is_wrong(expression: str, says: str) -> None:
    with pytest.raises(ScheduleSyntaxError, match=None) as err:
        parse_schedule(expression)
    assert says in str(err.value)
