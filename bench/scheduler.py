"""Benchmark 1: the scheduler tick at 10,000 and 100,000 due endpoints.

Each tick runs in a fresh process (as the worker that runs the tick would),
so its peak resident memory is its own. The baseline, in the same run, is the
least work any scheduler must do for the same rows: one bare
`UPDATE … RETURNING id` and the ids pushed to a Redis list in a pipeline.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

import redis

from bench.common import (
    ROOT,
    Figure,
    Timer,
    bench_env,
    connect,
    median,
    redis_url,
    reset_database,
    seed_endpoints,
    seed_teams,
)

TEAMS = 100
RUNS = 3

CHILD = """
import json, resource, time
from monitorapp import create_app
from monitorapp.monitoring.scheduler import schedule_endpoint_checks
app = create_app()
with app.app_context():
    started = time.perf_counter()
    claimed = schedule_endpoint_checks()
    seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "claimed": claimed,
                  "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run_ticks(processes: int) -> list[dict]:
    children = [
        subprocess.Popen([sys.executable, "-c", CHILD], env=bench_env(), cwd=ROOT, stdout=subprocess.PIPE, text=True)
        for _ in range(processes)
    ]
    results = []
    for child in children:
        out, _ = child.communicate(timeout=600)
        if child.returncode != 0:
            raise RuntimeError("scheduler tick failed")
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def make_due() -> None:
    with connect() as connection:
        connection.execute("UPDATE endpoint SET next_check_at = now() - interval '1 minute', last_enqueued_at = NULL")
        connection.commit()
    r = redis.Redis.from_url(redis_url())
    r.flushdb()


def baseline_claim() -> float:
    """The floor: claim every due row in one statement and push the ids to Redis."""
    r = redis.Redis.from_url(redis_url())
    with Timer() as timer, connect() as connection:
        ids = [
            str(row[0])
            for row in connection.execute(
                "UPDATE endpoint SET last_enqueued_at = now(), next_check_at = now() + interval '5 minutes' "
                "WHERE NOT paused AND next_check_at <= now() RETURNING id"
            )
        ]
        connection.commit()
        pipe = r.pipeline(transaction=False)
        for start in range(0, len(ids), 1000):
            pipe.rpush("bench:baseline", *ids[start : start + 1000])
        pipe.execute()
    return timer.seconds


def enqueued_endpoint_ids() -> list[str]:
    """Every endpoint id named by a queued check job (batch or single)."""
    from rq import Queue

    r = redis.Redis.from_url(redis_url())
    ids: list[str] = []

    def collect(value) -> None:
        if isinstance(value, (list, tuple)):
            for item in value:
                collect(item)
        elif isinstance(value, dict):
            for item in value.values():
                collect(item)
        elif isinstance(value, (str, uuid.UUID)):
            with contextlib.suppress(ValueError):
                ids.append(str(uuid.UUID(str(value))))
        elif hasattr(value, "endpoint_id"):
            ids.append(str(value.endpoint_id))

    queue = Queue("checks", connection=r)
    for job in queue.get_jobs():
        collect(job.args)
    return ids


def measure(count: int) -> tuple[float, float, float]:
    """(median tick seconds, median peak MiB, median baseline seconds) for `count` due endpoints."""
    reset_database()
    with connect() as connection:
        teams = seed_teams(connection, TEAMS)
        seed_endpoints(connection, teams, count, next_check_at=datetime.now(UTC) - timedelta(minutes=1))
        connection.commit()
    ticks, memory, baselines = [], [], []
    for _ in range(RUNS):
        make_due()
        result = run_ticks(1)[0]
        if result["claimed"] != count:
            raise RuntimeError(f"tick claimed {result['claimed']} of {count}")
        ticks.append(result["seconds"])
        memory.append(result["maxrss_mib"])
        make_due()
        baselines.append(baseline_claim())
    return median(ticks), median(memory), median(baselines)


def duplicates(count: int) -> tuple[int, int]:
    """Two schedulers at once over `count` due endpoints: (duplicates, endpoints enqueued)."""
    make_due()
    run_ticks(2)
    ids = enqueued_endpoint_ids()
    return len(ids) - len(set(ids)), len(set(ids))


def run(quick: bool = False) -> list[Figure]:
    small, large = (1_000, 10_000) if quick else (10_000, 100_000)
    small_tick, small_mem, small_base = measure(small)
    large_tick, large_mem, large_base = measure(large)
    dupes, enqueued = duplicates(large)
    memory_growth = (large_mem - small_mem) / small_mem
    return [
        Figure.make(f"scheduler tick, {small:,} due", small_tick, "s", small_base, "<= 2 s at 10,000", small_tick <= 2.0),
        Figure.make(f"scheduler tick, {large:,} due", large_tick, "s", large_base, "<= 15 s at 100,000", large_tick <= 15.0),
        Figure.make(f"scheduler peak RSS, {small:,} due", small_mem, "MiB", None, "reference", True),
        Figure.make(
            f"scheduler peak RSS, {large:,} due", large_mem, "MiB", small_mem, "within 10% of the 10,000 run",
            memory_growth <= 0.10,
        ),
        Figure.make(
            f"two schedulers at once: duplicates over {enqueued:,} endpoints", dupes, "jobs", None, "0", dupes == 0
        ),
    ]
