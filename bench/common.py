"""Shared pieces of the benchmarks: the database, seeding, timing, results."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import redis
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/monitorapp_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/12"


@dataclass
class Figure:
    """One measured figure, paired with its baseline and target."""

    name: str
    value: float
    unit: str
    baseline: float | None
    ratio: float | None
    target: str
    met: bool

    @classmethod
    def make(cls, name: str, value: float, unit: str, baseline: float | None, target: str, met: bool) -> Figure:
        ratio = round(value / baseline, 3) if baseline else None
        return cls(name, round(value, 4), unit, None if baseline is None else round(baseline, 4), ratio, target, met)


def database_url() -> str:
    return os.environ.get("BENCH_DATABASE_URL") or DEFAULT_DATABASE_URL


def redis_url() -> str:
    return os.environ.get("BENCH_REDIS_URL") or DEFAULT_REDIS_URL


def libpq_url(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def reset_database() -> None:
    """Drop and recreate the benchmark database, then build the schema by migration."""
    url = make_url(database_url())
    name = url.database
    with psycopg.connect(libpq_url(str(url.set(database="postgres"))), autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    run_flask(["db", "upgrade"])
    redis.Redis.from_url(redis_url()).flushdb()


def bench_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url(),
        REDIS_URL=redis_url(),
        FLASK_APP="monitorapp.cli:app_for_cli",
        APP_ENV="development",
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def run_flask(args: list[str], **extra: str) -> None:
    flask = str(Path(sys.executable).parent / "flask")
    subprocess.run([flask, *args], env=bench_env(**extra), cwd=ROOT, check=True, capture_output=True)


def connect() -> psycopg.Connection:
    return psycopg.connect(libpq_url(database_url()))


def copy_rows(connection: psycopg.Connection, table: str, columns: list[str], rows: Iterable[tuple]) -> int:
    count = 0
    with connection.cursor() as cursor, cursor.copy(f'COPY "{table}" ({", ".join(columns)}) FROM STDIN') as copy:
        for row in rows:
            copy.write_row(row)
            count += 1
    return count


def seed_teams(connection: psycopg.Connection, count: int) -> list[uuid.UUID]:
    now = datetime.now(UTC)
    ids = [uuid.uuid4() for _ in range(count)]
    copy_rows(connection, "tenant", ["id", "name", "created_at"], ((i, f"Bench team {n}", now) for n, i in enumerate(ids)))
    return ids


def endpoint_defaults() -> dict[str, object]:
    """Values for every NOT NULL endpoint column that has a Python-side default."""
    from monitorapp.models import Endpoint

    values: dict[str, object] = {}
    for column in Endpoint.__table__.columns:
        if column.default is None or column.primary_key:
            continue
        arg = column.default.arg
        values[column.name] = arg(None) if callable(arg) else arg
    return values


def seed_endpoints(
    connection: psycopg.Connection,
    teams: list[uuid.UUID],
    count: int,
    *,
    url: Callable[[int], str] = lambda n: f"https://svc-{n}.bench.example/health",
    next_check_at: datetime | None = None,
    interval_minutes: int = 5,
) -> list[uuid.UUID]:
    """Insert `count` endpoints spread over `teams`, all due at `next_check_at`."""
    defaults = endpoint_defaults()
    defaults.update(interval_minutes=interval_minutes, next_check_at=next_check_at or datetime.now(UTC))
    columns = ["id", "tenant_id", "name", "url", *defaults]
    ids = [uuid.uuid4() for _ in range(count)]
    rows = ((i, teams[n % len(teams)], f"svc-{n}", url(n), *defaults.values()) for n, i in enumerate(ids))
    copy_rows(connection, "endpoint", columns, rows)
    connection.execute("ANALYZE endpoint")
    return ids


def vacuum(*tables: str) -> None:
    """VACUUM ANALYZE, as autovacuum would have done on a database in service."""
    with psycopg.connect(libpq_url(database_url()), autocommit=True) as connection:
        for table in tables:
            connection.execute(f'VACUUM ANALYZE "{table}"')


def median(values: list[float]) -> float:
    return statistics.median(values)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {memory:.0f} GiB, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def write_results(figures: list[Figure]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "latest.json"
    path.write_text(json.dumps([asdict(figure) for figure in figures], indent=2) + "\n")
    return path


def print_table(figures: list[Figure]) -> None:
    header = f"{'benchmark':<52} {'value':>12} {'unit':<8} {'baseline':>10} {'ratio':>7}  {'target':<28} met"
    print(header)
    print("-" * len(header))
    for f in figures:
        baseline = "" if f.baseline is None else f"{f.baseline:g}"
        ratio = "" if f.ratio is None else f"{f.ratio:g}"
        print(f"{f.name:<52} {f.value:>12g} {f.unit:<8} {baseline:>10} {ratio:>7}  {f.target:<28} {'yes' if f.met else 'NO'}")


class Timer:
    def __enter__(self) -> Timer:
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.started
