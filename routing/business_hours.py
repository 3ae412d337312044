"""Business hours: a weekly schedule in a time zone, with holidays, that SLA clocks run inside.

All arithmetic is on real elapsed time: an opening interval is turned into two
instants (UTC) on its own local date, so a day with a DST change simply has an
hour more or less of business time, and "2 business hours" is always two hours
of the clock on the wall of an open office. A local time that does not exist
(the spring-forward gap) resolves as zoneinfo does (fold=0: the offset before
the change); an interval that ends up empty or reversed counts as closed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from hub.errors import OmnihubError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
UTC = dt.UTC
# How far ahead `add` looks for open hours before deciding the schedule can't
# fit the duration (a schedule with no hours at all, or a year of holidays).
HORIZON_DAYS = 3 * 366

Interval = tuple[dt.time, dt.time | None]  # end None: midnight at the end of the day ("24:00")


class BadSchedule(OmnihubError):
    pass


@dataclass(frozen=True)
class BusinessHours:
    tz: ZoneInfo
    week: tuple[tuple[Interval, ...], ...]  # 7 entries, Monday first
    holidays: frozenset[dt.date] = frozenset()

    def intervals(self, day: dt.date) -> Iterator[tuple[dt.datetime, dt.datetime]]:
        """The open intervals of one local date, as UTC instants, in order."""
        if day in self.holidays:
            return
        for start, end in self.week[day.weekday()]:
            s = dt.datetime.combine(day, start, tzinfo=self.tz).astimezone(UTC)
            if end is None:
                e = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tzinfo=self.tz).astimezone(UTC)
            else:
                e = dt.datetime.combine(day, end, tzinfo=self.tz).astimezone(UTC)
            if e > s:
                yield s, e

    def add(self, start: dt.datetime, duration: dt.timedelta) -> dt.datetime:
        """The instant when `duration` of business time has passed since `start`."""
        if duration < dt.timedelta(0):
            raise ValueError("duration must not be negative")
        start = start.astimezone(UTC)
        remaining = duration
        day = start.astimezone(self.tz).date() - dt.timedelta(days=1)
        for _ in range(HORIZON_DAYS):
            for s, e in self.intervals(day):
                s = max(s, start)
                if e <= s:
                    continue
                if e - s >= remaining:
                    return s + remaining
                remaining -= e - s
            day += dt.timedelta(days=1)
        raise BadSchedule(f"these business hours have no room for {duration} within {HORIZON_DAYS} days")

    def between(self, a: dt.datetime, b: dt.datetime) -> dt.timedelta:
        """Business time from `a` to `b` (zero when b <= a)."""
        a, b = a.astimezone(UTC), b.astimezone(UTC)
        total = dt.timedelta(0)
        if b <= a:
            return total
        day = a.astimezone(self.tz).date() - dt.timedelta(days=1)
        last = b.astimezone(self.tz).date()
        while day <= last:
            for s, e in self.intervals(day):
                s, e = max(s, a), min(e, b)
                if e > s:
                    total += e - s
            day += dt.timedelta(days=1)
        return total

    def is_open(self, at: dt.datetime) -> bool:
        return self.between(at, at + dt.timedelta(microseconds=1)) > dt.timedelta(0)


class AlwaysOpen:
    """No business hours: the clock runs around the clock."""

    def add(self, start: dt.datetime, duration: dt.timedelta) -> dt.datetime:
        return start.astimezone(UTC) + duration

    def between(self, a: dt.datetime, b: dt.datetime) -> dt.timedelta:
        return max(b - a, dt.timedelta(0))


Hours = BusinessHours | AlwaysOpen
Pause = tuple[dt.datetime, dt.datetime | None]  # (from, until); until None: still paused


def add_outside(hours: Hours, start: dt.datetime, duration: dt.timedelta, pauses: Sequence[Pause]) -> dt.datetime:
    """The instant when `duration` of business time outside the pauses has passed since `start`.

    A pause still open when the clock has time left stops it there: the answer is then the due
    time it had when that pause began (it moves later once the pause ends and this is asked again).
    """
    remaining = duration
    cursor = start
    for paused, resumed in sorted(pauses, key=lambda p: p[0]):
        if resumed is not None and resumed <= cursor:
            continue
        if paused > cursor:
            due = hours.add(cursor, remaining)
            if due <= paused:
                return due
            remaining -= hours.between(cursor, paused)
            cursor = paused
        if resumed is None:
            break
        cursor = resumed
    return hours.add(cursor, remaining)


def _time(text: Any, *, end: bool) -> dt.time | None:
    if end and text == "24:00":
        return None
    if not isinstance(text, str):
        raise BadSchedule(f"times must be strings like '09:00', not {text!r}")
    try:
        return dt.time.fromisoformat(text)
    except ValueError:
        raise BadSchedule(f"{text!r} is not a time like '09:00' (an interval may end at '24:00')") from None


def parse_schedule(schedule: Any) -> tuple[tuple[Interval, ...], ...]:
    """`{"mon": [["09:00", "18:00"]], ...}` → seven sorted, merged interval lists."""
    if not isinstance(schedule, Mapping):
        raise BadSchedule('schedule must be an object like {"mon": [["09:00", "18:00"]]}')
    unknown = set(schedule) - set(DAYS)
    if unknown:
        raise BadSchedule(f"unknown days in schedule: {', '.join(sorted(unknown))} (use {', '.join(DAYS)})")
    week: list[tuple[Interval, ...]] = []
    for day in DAYS:
        raw = schedule.get(day, [])
        if not isinstance(raw, Sequence) or isinstance(raw, str):
            raise BadSchedule(f"schedule.{day} must be a list of [start, end] pairs")
        spans: list[tuple[dt.time, dt.time | None]] = []
        for pair in raw:
            if not isinstance(pair, Sequence) or isinstance(pair, str) or len(pair) != 2:
                raise BadSchedule(f"schedule.{day}: each interval is a [start, end] pair, not {pair!r}")
            start = _time(pair[0], end=False)
            stop = _time(pair[1], end=True)
            assert start is not None
            if stop is not None and stop <= start:
                raise BadSchedule(f"schedule.{day}: {pair[0]}–{pair[1]} ends before it starts")
            spans.append((start, stop))
        week.append(_merge(spans))
    return tuple(week)


def _merge(spans: list[Interval]) -> tuple[Interval, ...]:
    def key_end(end: dt.time | None) -> tuple[int, dt.time]:
        return (1, dt.time(0)) if end is None else (0, end)

    merged: list[Interval] = []
    for start, end in sorted(spans, key=lambda p: (p[0], key_end(p[1]))):
        if merged and key_end(merged[-1][1]) >= (0, start):
            prev_start, prev_end = merged[-1]
            merged[-1] = (prev_start, max(prev_end, end, key=key_end))
        else:
            merged.append((start, end))
    return tuple(merged)


def zone(name: Any) -> ZoneInfo:
    if not isinstance(name, str) or not name:
        raise BadSchedule("time_zone must be an IANA name such as 'Europe/Moscow'")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadSchedule(f"unknown time zone {name!r}; use an IANA name such as 'Europe/Moscow'") from None


def parse_holidays(holidays: Any) -> frozenset[dt.date]:
    if not isinstance(holidays, Sequence) or isinstance(holidays, str):
        raise BadSchedule("holidays must be a list of dates like '2026-01-01'")
    out: set[dt.date] = set()
    for h in holidays:
        if isinstance(h, dt.date):
            out.add(h)
            continue
        try:
            out.add(dt.date.fromisoformat(str(h)))
        except ValueError:
            raise BadSchedule(f"{h!r} is not a date like '2026-01-01'") from None
    return frozenset(out)


def business_hours(*, time_zone: Any, schedule: Any, holidays: Any = ()) -> BusinessHours:
    """Validate and build business hours from their JSON (API) or row form."""
    return BusinessHours(zone(time_zone), parse_schedule(schedule), parse_holidays(holidays))


def schedule_json(week: tuple[tuple[Interval, ...], ...]) -> dict[str, list[list[str]]]:
    return {
        day: [[s.strftime("%H:%M"), "24:00" if e is None else e.strftime("%H:%M")] for s, e in spans]
        for day, spans in zip(DAYS, week, strict=True)
        if spans
    }
