"""The endpoint page's figures: uptime windows, the 24-hour chart and the 90-day strip.

Everything is aggregated in SQL and read as a handful of small result sets:
at most 144 chart buckets, 90 days and four uptime sums, however many raw
checks there are. Raw checks cover the days after the newest daily rollup;
rollups (monitoring/history.py) cover the days before.
"""

from __future__ import annotations

import functools
import math
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import Float, Integer, bindparam, case, cast, func, select

from monitorapp.extensions import db
from monitorapp.models import CheckResult, CheckRollup

WINDOWS = (
    ("24 h", timedelta(hours=24)),
    ("7 d", timedelta(days=7)),
    ("30 d", timedelta(days=30)),
    ("90 d", timedelta(days=90)),
)
CHART_SPAN = timedelta(hours=24)
CHART_BUCKETS = 144  # ten minutes each
STRIP_DAYS = 90
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _epoch_seconds(column, dialect: str):
    """Seconds since 1970 of a timestamp column, on PostgreSQL and SQLite."""
    if dialect == "postgresql":
        return func.extract("epoch", column)
    return cast(func.strftime("%s", column), Integer)


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


# -- uptime ---------------------------------------------------------------------


@dataclass(frozen=True)
class Uptime:
    label: str
    checks: int
    failures: int

    @property
    def percent(self) -> float | None:
        return None if not self.checks else 100.0 * (self.checks - self.failures) / self.checks


# -- the response-time chart ----------------------------------------------------------


@dataclass(frozen=True)
class Bucket:
    start: datetime
    checks: int
    failures: int
    avg_latency_ms: float | None


def latency_buckets(endpoint_id: uuid.UUID, now: datetime) -> list[Bucket]:
    """The last 24 hours in ten-minute buckets: average latency of successful checks, failures."""
    start = now - CHART_SPAN
    size = CHART_SPAN.total_seconds() / CHART_BUCKETS
    rows = db.session.execute(
        _buckets_statement(db.engine.dialect.name),
        {"endpoint_id": endpoint_id, "since": start, "offset": start.timestamp()},
    ).all()
    found = {int(row[0]): row for row in rows}
    buckets = []
    for number in range(CHART_BUCKETS):
        row = found.get(number)
        moment = start + timedelta(seconds=number * size)
        if row is None:
            buckets.append(Bucket(moment, 0, 0, None))
        else:
            buckets.append(Bucket(moment, int(row[1]), int(row[2] or 0), float(row[3]) if row[3] is not None else None))
    return buckets


@functools.cache
def _buckets_statement(dialect: str):
    """Checks since `since` in ten-minute buckets counted from `offset` (epoch seconds).

    Built once with bind parameters, like `_raw_days_statement` (bench/web.py).
    """
    size = CHART_SPAN.total_seconds() / CHART_BUCKETS
    index = func.floor((_epoch_seconds(CheckResult.checked_at, dialect) - bindparam("offset", type_=Float)) / size)
    return (
        select(
            index.label("bucket"),
            func.count(),
            func.sum(case((CheckResult.ok, 0), else_=1)),
            func.avg(case((CheckResult.ok, cast(CheckResult.latency_ms, Float)), else_=None)),
        )
        .where(CheckResult.endpoint_id == bindparam("endpoint_id"), CheckResult.checked_at >= bindparam("since"))
        .group_by(index)
    )


@dataclass(frozen=True)
class Chart:
    """Geometry of the response-time chart, in SVG user units."""

    width: int
    height: int
    left: int
    top: int
    plot_width: int
    plot_height: int
    lines: list[str]  # polyline `points`, one per run of buckets with data
    failures: list[tuple[float, str]]  # x of a bucket with failed checks, and its title
    y_ticks: list[tuple[float, str]]
    x_ticks: list[tuple[float, str]]
    has_data: bool


def _nice_ceiling(value: float) -> float:
    if value <= 0:
        return 100.0
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def latency_chart(buckets: list[Bucket], now: datetime) -> Chart:
    width, height, left, top, right, bottom = 760, 240, 56, 12, 24, 40
    plot_width, plot_height = width - left - right, height - top - bottom
    latencies = [bucket.avg_latency_ms for bucket in buckets if bucket.avg_latency_ms is not None]
    ceiling = _nice_ceiling(max(latencies) if latencies else 0)
    step = plot_width / len(buckets)

    def x(number: int) -> float:
        return round(left + (number + 0.5) * step, 1)

    def y(value: float) -> float:
        return round(top + plot_height - value / ceiling * plot_height, 1)

    lines, run, failures = [], [], []
    for number, bucket in enumerate(buckets):
        if bucket.avg_latency_ms is None:
            if run:
                lines.append(" ".join(run))
                run = []
        else:
            run.append(f"{x(number)},{y(bucket.avg_latency_ms)}")
        if bucket.failures:
            title = f"{bucket.start:%H:%M} UTC: {bucket.failures} of {bucket.checks} checks failed"
            failures.append((x(number), title))
    if run:
        lines.append(" ".join(run))
    if any(len(line.split(" ")) == 1 for line in lines):
        # A lone point would be invisible as a polyline: draw it as a short flat segment.
        lines = [line if " " in line else _widen(line, step) for line in lines]
    y_ticks = [(y(ceiling * part / 4), f"{ceiling * part / 4:g}") for part in range(5)]
    start = buckets[0].start
    x_ticks = []
    for hours in range(0, 25, 4):
        moment = start + timedelta(hours=hours)
        position = round(left + (moment - start).total_seconds() / CHART_SPAN.total_seconds() * plot_width, 1)
        x_ticks.append((position, f"{moment:%H:%M}"))
    return Chart(width, height, left, top, plot_width, plot_height, lines, failures, y_ticks, x_ticks, bool(latencies))


def _widen(point: str, step: float) -> str:
    px, py = (float(part) for part in point.split(","))
    return f"{round(px - step / 3, 1)},{py} {round(px + step / 3, 1)},{py}"


# -- the 90-day strip ------------------------------------------------------------------


@dataclass(frozen=True)
class Day:
    day: date
    checks: int
    failures: int

    @property
    def state(self) -> str:
        """up (no failed check), degraded (some), down (mostly failing), none (no checks)."""
        if not self.checks:
            return "none"
        if not self.failures:
            return "up"
        return "degraded" if self.failures / self.checks < 0.05 else "down"

    @property
    def title(self) -> str:
        if not self.checks:
            return f"{self.day.isoformat()}: no checks"
        uptime = 100.0 * (self.checks - self.failures) / self.checks
        return f"{self.day.isoformat()}: {uptime:.2f}% up, {self.failures} of {self.checks} checks failed"


def uptimes_and_days(endpoint_id: uuid.UUID, now: datetime) -> tuple[list[Uptime], list[Day]]:
    """Uptime over each window and the last 90 UTC days (oldest first): two queries in all.

    Days up to the newest rollup count from the rollups (whole days), later
    checks from the raw results, grouped by day in one pass that also sums
    each uptime window.
    """
    starts = [now - span for _, span in WINDOWS]
    first = now.date() - timedelta(days=STRIP_DAYS - 1)
    rollups = db.session.execute(
        _ROLLUPS, {"endpoint_id": endpoint_id, "since": min(starts[-1].date(), first)}
    ).all()
    newest = max((row.day for row in rollups), default=None)
    raw_from = _day_start(newest + timedelta(days=1)) if newest else min(starts[-1], _day_start(first))
    params = {"endpoint_id": endpoint_id, "since": raw_from}
    params.update({f"window_{number}": start for number, start in enumerate(starts)})
    raw_days = db.session.execute(_raw_days_statement(db.engine.dialect.name), params).all()

    sums = [0] * (2 * len(starts))
    for row in raw_days:
        for number, value in enumerate(row[3:]):
            sums[number] += int(value or 0)
    for day, checks, failures in rollups:
        for number, start in enumerate(starts):
            if day >= start.date():
                sums[2 * number] += checks
                sums[2 * number + 1] += failures
    uptimes = [Uptime(label, sums[2 * number], sums[2 * number + 1]) for number, (label, _) in enumerate(WINDOWS)]

    counts = {day: (checks, failures) for day, checks, failures in rollups}
    for number, checks, failures, *_ in raw_days:
        counts[(EPOCH + timedelta(days=int(number))).date()] = (int(checks), int(failures or 0))
    days = [
        Day(first + timedelta(days=offset), *counts.get(first + timedelta(days=offset), (0, 0)))
        for offset in range(STRIP_DAYS)
    ]
    return uptimes, days


# Built once with bind parameters: building these expressions on every request
# cost more than running them (bench/web.py, the endpoint page).
_ROLLUPS = select(CheckRollup.day, CheckRollup.checks, CheckRollup.failures).where(
    CheckRollup.endpoint_id == bindparam("endpoint_id"), CheckRollup.day >= bindparam("since")
)


@functools.cache
def _raw_days_statement(dialect: str):
    """Raw checks since `since` by UTC day: checks, failures, then both within each window."""
    day_number = func.floor(_epoch_seconds(CheckResult.checked_at, dialect) / 86400)
    columns = [day_number, func.count(), func.sum(case((CheckResult.ok, 0), else_=1))]
    for number in range(len(WINDOWS)):
        in_window = CheckResult.checked_at >= bindparam(f"window_{number}")
        columns += [
            func.sum(case((in_window, 1), else_=0)),
            func.sum(case((in_window & ~CheckResult.ok, 1), else_=0)),
        ]
    return (
        select(*columns)
        .where(CheckResult.endpoint_id == bindparam("endpoint_id"), CheckResult.checked_at >= bindparam("since"))
        .group_by(day_number)
    )


# -- recent checks --------------------------------------------------------------------


@dataclass(frozen=True)
class CheckPage:
    items: list[CheckResult]
    number: int
    has_next: bool

    @property
    def has_previous(self) -> bool:
        return self.number > 1


def recent_checks(endpoint_id: uuid.UUID, page: int, size: int = 20) -> CheckPage:
    rows = list(
        db.session.scalars(
            select(CheckResult)
            .where(CheckResult.endpoint_id == endpoint_id)
            .order_by(CheckResult.checked_at.desc(), CheckResult.id.desc())
            .limit(size + 1)
            .offset((page - 1) * size)
        )
    )
    return CheckPage(items=rows[:size], number=page, has_next=len(rows) > size)
