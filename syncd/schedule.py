"""Cron schedules with crontab's weekday numbering (APScheduler 3.x counts Monday as 0)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger

from syncd.errors import ConfigError

_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_NAME_NUMBERS = {name: i for i, name in enumerate(_DAY_NAMES)}


def _day_number(text: str) -> int:
    text = text.strip().lower()
    if text[:3] in _NAME_NUMBERS and not text.isdigit():
        return _NAME_NUMBERS[text[:3]]
    number = int(text)
    if not 0 <= number <= 7:
        raise ValueError(f"weekday {number} is not 0-7")
    return number % 7  # 7 is Sunday too


def crontab_weekdays(field: str) -> str:
    """A crontab weekday field (0 or 7 = Sunday) as the explicit names APScheduler 3 reads."""
    if field.strip() == "*":
        return "*"
    days: set[int] = set()
    for part in field.split(","):
        body, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if step < 1:
            raise ValueError(f"step {step} in weekday field")
        if body == "*":
            first, last = 0, 6
        elif "-" in body:
            start, end = body.split("-", 1)
            first, last = _day_number(start), _day_number(end)
            if end.strip() == "7":
                last = 7
        else:
            first = last = _day_number(body)
        days.update(d % 7 for d in range(first, last + 1, step))
    return ",".join(_DAY_NAMES[d] for d in sorted(days))


def cron_trigger(expr: str, timezone: str) -> CronTrigger:
    """The trigger for a standard 5-field crontab expression in ``timezone``."""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"[schedule] timezone {timezone!r} is not a time zone name") from None
    fields = expr.split()
    if len(fields) != 5:
        raise ConfigError(f"[schedule] cron {expr!r} must have 5 fields")
    minute, hour, day, month, weekday = fields
    try:
        return CronTrigger(
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=crontab_weekdays(weekday),
            timezone=zone,
        )
    except ValueError as exc:
        raise ConfigError(f"[schedule] cron {expr!r} is not valid: {exc}") from None


def next_runs(expr: str, timezone: str, after: datetime, count: int = 1) -> list[datetime]:
    """The next ``count`` times the schedule fires after ``after`` (for status and tests)."""
    trigger = cron_trigger(expr, timezone)
    times: list[datetime] = []
    previous = None
    now = after
    while len(times) < count:
        fire = trigger.get_next_fire_time(previous, now)
        if fire is None:
            break
        times.append(fire)
        previous, now = fire, fire + timedelta(seconds=1)
    return times
