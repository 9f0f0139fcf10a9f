"""The cron schedule fires when crontab says, in the configured zone (time travel, no sleep)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from syncd.errors import ConfigError
from syncd.schedule import crontab_weekdays, next_runs


def test_nightly_default_in_utc() -> None:
    start = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    runs = next_runs("0 2 * * *", "UTC", start, 3)
    assert [r.isoformat() for r in runs] == [
        "2026-12-01T02:00:00+00:00",
        "2026-12-02T02:00:00+00:00",
        "2026-12-03T02:00:00+00:00",
    ]


def test_local_time_across_a_daylight_saving_change() -> None:
    start = datetime(2027, 3, 27, 12, 0, tzinfo=UTC)  # Stockholm moves to CEST on 28 March
    runs = next_runs("30 2 * * *", "Europe/Stockholm", start, 3)
    # 02:30 does not exist on 28 March in Stockholm: that night's run moves to 03:30 local.
    assert [r.astimezone(UTC).isoformat() for r in runs] == [
        "2027-03-28T01:30:00+00:00",
        "2027-03-29T00:30:00+00:00",
        "2027-03-30T00:30:00+00:00",
    ]


def test_crontab_weekday_numbers_mean_what_crontab_means() -> None:
    start = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)  # a Monday
    sundays = next_runs("0 3 * * 0", "UTC", start, 2)
    assert [r.strftime("%a %d") for r in sundays] == ["Sun 06", "Sun 13"]
    assert [r.strftime("%a") for r in next_runs("0 3 * * 7", "UTC", start, 1)] == ["Sun"]
    weekdays = next_runs("0 6 * * 1-5", "UTC", start, 6)
    assert [r.strftime("%a") for r in weekdays] == ["Tue", "Wed", "Thu", "Fri", "Mon", "Tue"]
    assert crontab_weekdays("5-7") == "sun,fri,sat"
    assert crontab_weekdays("*/2") == "sun,tue,thu,sat"
    assert crontab_weekdays("mon,wed") == "mon,wed"


@pytest.mark.parametrize(
    ("expr", "zone"), [("0 25 * * *", "UTC"), ("0 2 * * 9", "UTC"), ("0 2 * * *", "Mars/Olympus")]
)
def test_invalid_schedules_are_configuration_errors(expr: str, zone: str) -> None:
    with pytest.raises(ConfigError):
        next_runs(expr, zone, datetime(2026, 1, 1, tzinfo=UTC))
