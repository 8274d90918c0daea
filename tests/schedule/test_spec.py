"""Schedule run times: logical dates are the scheduled times, in the schedule's zone, across DST changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kawa.pipelines import Pipeline, PipelineDefinitionError, step
from kawa.schedule import Schedule, ScheduleError, WaitFor, parse_duration
from kawa.schedule.waits import matching_date

BERLIN = "Europe/Berlin"


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def local(s: Schedule, dates: list[datetime]) -> list[str]:
    return [d.astimezone(s.tz).isoformat() for d in dates]


@step
def noop() -> None:
    return None


def test_the_first_run_is_the_start_and_logical_dates_are_the_scheduled_times() -> None:
    s = Schedule(start="2026-01-01T02:00", every="1d", timezone=BERLIN)
    assert s.first_run == utc("2026-01-01T02:00+01:00")
    dates = list(s.between(s.first_run, s.first_run + timedelta(days=2)))
    assert local(s, dates) == [
        "2026-01-01T02:00:00+01:00",
        "2026-01-02T02:00:00+01:00",
        "2026-01-03T02:00:00+01:00",
    ]
    # Not the start of the previous interval (Airflow's data_interval_start): the run at 02:00 on the
    # 2nd has logical date 02:00 on the 2nd.
    assert s.at_or_before(utc("2026-01-02T05:00+01:00")) == utc("2026-01-02T02:00+01:00")
    assert s.next_after(utc("2026-01-02T02:00+01:00")) == utc("2026-01-03T02:00+01:00")
    assert s.at_or_before(utc("2026-01-01T01:59+01:00")) is None
    assert s.next_after(utc("2025-06-01T00:00Z")) == s.first_run


def test_a_daily_interval_keeps_its_wall_time_across_daylight_saving_changes() -> None:
    spring = Schedule(start="2026-03-28T02:30", every="1d", timezone=BERLIN)
    dates = list(spring.between(spring.first_run, spring.first_run + timedelta(days=2)))
    # 02:30 does not exist on 29 March (clocks jump 02:00 -> 03:00): that run moves forward an hour.
    assert local(spring, dates) == [
        "2026-03-28T02:30:00+01:00",
        "2026-03-29T03:30:00+02:00",
        "2026-03-30T02:30:00+02:00",
    ]
    autumn = Schedule(start="2026-10-24T02:30", every="1d", timezone=BERLIN)
    dates = list(autumn.between(autumn.first_run, autumn.first_run + timedelta(days=2, hours=1)))
    # 02:30 happens twice on 25 October: the daily run happens once, at the first.
    assert local(autumn, dates) == [
        "2026-10-24T02:30:00+02:00",
        "2026-10-25T02:30:00+02:00",
        "2026-10-26T02:30:00+01:00",
    ]


def test_an_hourly_interval_steps_in_absolute_time() -> None:
    s = Schedule(start="2026-10-25T01:00", every="1h", timezone=BERLIN)
    dates = list(s.between(s.first_run, s.first_run + timedelta(hours=3)))
    assert [d.isoformat() for d in dates] == [
        "2026-10-24T23:00:00+00:00",
        "2026-10-25T00:00:00+00:00",
        "2026-10-25T01:00:00+00:00",
        "2026-10-25T02:00:00+00:00",
    ]


def test_cron_schedules_run_in_their_zone_and_once_on_the_night_the_clocks_go_back() -> None:
    s = Schedule(start="2026-10-23T02:30", cron="30 2 * * *", timezone=BERLIN)
    dates = list(s.between(s.first_run, s.first_run + timedelta(days=4, hours=1)))
    assert local(s, dates) == [
        "2026-10-23T02:30:00+02:00",
        "2026-10-24T02:30:00+02:00",
        "2026-10-25T02:30:00+02:00",
        "2026-10-26T02:30:00+01:00",
        "2026-10-27T02:30:00+01:00",
    ]
    # The latest run time at or before a moment, including the moment itself.
    assert s.at_or_before(utc("2026-10-26T02:30+01:00")) == utc("2026-10-26T02:30+01:00")
    assert s.at_or_before(utc("2026-10-26T02:29+01:00")) == utc("2026-10-25T02:30+02:00")


def test_a_cron_start_must_be_a_time_the_expression_names() -> None:
    with pytest.raises(ScheduleError, match=r"does not match cron '0 2 \* \* \*'.*2026-01-02T02:00"):
        Schedule(start="2026-01-01T02:30", cron="0 2 * * *", timezone="UTC")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"start": "2026-01-01T02:00"}, "exactly one of every"),
        ({"start": "2026-01-01T02:00", "every": "1d", "cron": "0 2 * * *"}, "exactly one of every"),
        ({"start": "2026-01-01T02:00", "every": "soon"}, "'soon' is not a duration"),
        ({"start": "2026-01-01T02:00", "every": "0s"}, "longer than zero"),
        ({"start": "2026-01-01T02:00", "cron": "61 * * * *"}, "not valid"),
        ({"start": "2026-01-01T02:00", "every": "1d", "timezone": "Mars/Olympus"}, "unknown time zone"),
        ({"start": "next tuesday", "every": "1d"}, "not an ISO 8601 time"),
    ],
)
def test_bad_schedules_are_refused_with_what_to_write(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(ScheduleError, match=message):
        Schedule(**kwargs)  # type: ignore[arg-type]


def test_durations() -> None:
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration("2w") == timedelta(days=14)
    assert parse_duration("500ms") == timedelta(milliseconds=500)
    with pytest.raises(ScheduleError):
        parse_duration("1h 30 minutes")


def test_an_offset_in_start_is_the_instant_and_the_fingerprint_follows_the_run_times() -> None:
    a = Schedule(start="2026-01-01T02:00", every="1d", timezone=BERLIN)
    b = Schedule(start="2026-01-01T01:00Z", every="1d", timezone=BERLIN)
    assert a.first_run == b.first_run
    assert a.fingerprint() == b.fingerprint()
    assert (
        a.fingerprint()
        == Schedule(start="2026-01-01T02:00", every="1d", timezone=BERLIN, grace="1h").fingerprint()
    )
    assert a.fingerprint() != Schedule(start="2026-01-01T03:00", every="1d", timezone=BERLIN).fingerprint()
    assert a.fingerprint() != Schedule(start="2026-01-01T02:00", every="2d", timezone=BERLIN).fingerprint()


def test_wait_for_maps_to_the_latest_upstream_run_at_or_before_the_logical_date() -> None:
    hourly = Pipeline("hourly", steps=[noop], schedule=Schedule(start="2026-01-01T00:00", every="1h"))
    daily = Schedule(start="2026-01-02T00:00", cron="0 0 * * *")
    unscheduled = Pipeline("adhoc", steps=[noop])
    day = daily.first_run
    # The daily run at 00:00 on the 2nd covers the 1st; it waits for the hourly run at 00:00, the
    # one that covers the last hour of the 1st.
    assert matching_date(hourly, day) == utc("2026-01-02T00:00Z")
    assert matching_date(hourly, utc("2026-01-02T06:30Z")) == utc("2026-01-02T06:00Z")
    assert matching_date(hourly, utc("2025-12-31T23:00Z")) is None
    assert matching_date(unscheduled, day) == day


def test_pipelines_check_their_scheduling_arguments() -> None:
    s = Schedule(start="2026-01-01T00:00", every="1h")
    p = Pipeline("p", steps=[noop], schedule=s, wait_for=["up", WaitFor("other", timeout="30m")])
    assert [w.pipeline for w in p.wait_for] == ["up", "other"]
    assert p.wait_for[1].timeout_s == 1800
    assert p.max_active_runs == 1
    with pytest.raises(PipelineDefinitionError, match="cannot wait for itself"):
        Pipeline("p", steps=[noop], wait_for="p")
    with pytest.raises(PipelineDefinitionError, match="max_active_runs"):
        Pipeline("p", steps=[noop], max_active_runs=0)
    with pytest.raises(PipelineDefinitionError, match="must be a Schedule"):
        Pipeline("p", steps=[noop], schedule="daily")  # type: ignore[arg-type]


def test_the_docstring_examples_run() -> None:
    import doctest

    from kawa.schedule import clock, spec

    for module in (spec, clock):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, module.__name__
