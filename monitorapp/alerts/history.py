"""The endpoint page's figures: uptime windows, the 24-hour chart and the 90-day strip.

Everything is aggregated in SQL and read as a handful of small result sets:
at most 144 chart buckets, 90 days and four uptime sums, however many raw
checks there are. Raw checks cover the days after the newest daily rollup;
rollups (monitoring/history.py) cover the days before.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import Float, Integer, case, cast, func, select

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


def _epoch_seconds(column):
    """Seconds since 1970 of a timestamp column, on PostgreSQL and SQLite."""
    if db.engine.dialect.name == "postgresql":
        return func.extract("epoch", column)
    return cast(func.strftime("%s", column), Integer)


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def newest_rollup_day(endpoint_id: uuid.UUID) -> date | None:
    return db.session.scalar(select(func.max(CheckRollup.day)).where(CheckRollup.endpoint_id == endpoint_id))


# -- uptime ---------------------------------------------------------------------


@dataclass(frozen=True)
class Uptime:
    label: str
    checks: int
    failures: int

    @property
    def percent(self) -> float | None:
        return None if not self.checks else 100.0 * (self.checks - self.failures) / self.checks


def uptimes(endpoint_id: uuid.UUID, now: datetime) -> list[Uptime]:
    """Uptime (share of successful checks) over each window: two queries in all.

    Days up to the newest rollup count from the rollups (whole days), later
    checks from the raw results.
    """
    newest = newest_rollup_day(endpoint_id)
    raw_from = _day_start(newest + timedelta(days=1)) if newest else None
    starts = [now - span for _, span in WINDOWS]

    raw_columns = []
    for start in starts:
        since = max(start, raw_from) if raw_from else start
        in_window = CheckResult.checked_at >= since
        raw_columns += [
            func.sum(case((in_window, 1), else_=0)),
            func.sum(case((in_window & ~CheckResult.ok, 1), else_=0)),
        ]
    raw = db.session.execute(
        select(*raw_columns).where(CheckResult.endpoint_id == endpoint_id, CheckResult.checked_at >= min(starts))
    ).one()

    rolled = [0] * (2 * len(starts))
    if newest is not None:
        rollup_columns = []
        for start in starts:
            in_window = CheckRollup.day >= start.date()
            rollup_columns += [
                func.sum(case((in_window, CheckRollup.checks), else_=0)),
                func.sum(case((in_window, CheckRollup.failures), else_=0)),
            ]
        rolled = db.session.execute(
            select(*rollup_columns).where(
                CheckRollup.endpoint_id == endpoint_id, CheckRollup.day >= min(starts).date()
            )
        ).one()
    totals = [int(a or 0) + int(b or 0) for a, b in zip(raw, rolled, strict=True)]
    return [Uptime(label, totals[2 * i], totals[2 * i + 1]) for i, (label, _) in enumerate(WINDOWS)]


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
    offset = start.timestamp()
    index = func.floor((_epoch_seconds(CheckResult.checked_at) - offset) / size)
    rows = db.session.execute(
        select(
            index.label("bucket"),
            func.count(CheckResult.id),
            func.sum(case((CheckResult.ok, 0), else_=1)),
            func.avg(case((CheckResult.ok, cast(CheckResult.latency_ms, Float)), else_=None)),
        )
        .where(CheckResult.endpoint_id == endpoint_id, CheckResult.checked_at >= start)
        .group_by(index)
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


def status_days(endpoint_id: uuid.UUID, today: date) -> list[Day]:
    """The last 90 UTC days, oldest first: rollups, then raw checks grouped by day."""
    first = today - timedelta(days=STRIP_DAYS - 1)
    counts: dict[date, tuple[int, int]] = {}
    for day, checks, failures in db.session.execute(
        select(CheckRollup.day, CheckRollup.checks, CheckRollup.failures).where(
            CheckRollup.endpoint_id == endpoint_id, CheckRollup.day >= first
        )
    ):
        counts[day] = (checks, failures)
    newest = max(counts) if counts else None
    raw_from = _day_start(newest + timedelta(days=1)) if newest else _day_start(first)
    day_number = func.floor(_epoch_seconds(CheckResult.checked_at) / 86400)
    rows = db.session.execute(
        select(day_number, func.count(CheckResult.id), func.sum(case((CheckResult.ok, 0), else_=1)))
        .where(CheckResult.endpoint_id == endpoint_id, CheckResult.checked_at >= raw_from)
        .group_by(day_number)
    ).all()
    for number, checks, failures in rows:
        counts[(EPOCH + timedelta(days=int(number))).date()] = (int(checks), int(failures or 0))
    return [Day(first + timedelta(days=offset), *counts.get(first + timedelta(days=offset), (0, 0)))
            for offset in range(STRIP_DAYS)]


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
