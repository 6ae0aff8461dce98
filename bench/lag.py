"""Benchmark 3: how late checks start under a realistic mix, and whether any minute is skipped.

10,000 endpoints at a one-minute interval for five minutes, on the real
processes: `flask scheduler` (rq-scheduler ticking every
SCHEDULER_INTERVAL_SECONDS) and WORKERS `flask worker` processes. 85% of the
targets answer at once, 10% after 3 seconds and 5% never (the check times out
and is retried). Per check, lag = start time − due time, where the start is
the result's time minus its latency and the due time is the endpoint's slot on
its one-minute grid. The baseline, in the same run, is the lag of the fast
targets alone: what the slow and hanging ones add.

Lag and skipped minutes are taken over first tries (attempt 1) in the steady
window (after the first minute, before the last 20 seconds); hanging targets
are retried by design, so their final results arrive minutes later and are
reported separately.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.common import ROOT, Figure, connect, percentile, reset_database, seed_endpoints, seed_teams
from bench.throughput import Targets, start_workers, stop, worker_env

WORKERS = 2
HANG, SLOW = 0.05, 0.10


def kind(n: int) -> str:
    position = (n * 7919) % 100 / 100  # a fixed, well-mixed assignment
    return "hang" if position < HANG else "slow" if position < HANG + SLOW else "ok"


def slot_before(endpoint_id, seconds: float) -> float:
    from monitorapp.monitoring.scheduler import slot_offset

    offset = slot_offset(endpoint_id, 1)
    return offset + ((seconds - offset) // 60) * 60


def run(quick: bool = False) -> list[Figure]:
    count = 1_000 if quick else 10_000
    minutes = 2 if quick else 5
    targets = Targets()
    processes: list[subprocess.Popen] = []
    try:
        reset_database()
        from monitorapp.monitoring.scheduler import next_slot

        with connect() as connection:
            teams = seed_teams(connection, 100)
            ids = seed_endpoints(
                connection, teams, count, url=lambda n: targets.url(kind(n), n), interval_minutes=1,
                next_check_at=datetime.now(UTC) + timedelta(days=1),
            )
            start = datetime.now(UTC) + timedelta(seconds=20)
            connection.execute("CREATE TEMP TABLE due (id uuid, at timestamptz)")
            with connection.cursor().copy("COPY due (id, at) FROM STDIN") as copy:
                for endpoint_id in ids:
                    copy.write_row((endpoint_id, next_slot(endpoint_id, 1, start)))
            connection.execute("UPDATE endpoint SET next_check_at = due.at FROM due WHERE due.id = endpoint.id")
            connection.commit()
        kinds = {endpoint_id: kind(n) for n, endpoint_id in enumerate(ids)}
        flask = str(Path(sys.executable).parent / "flask")
        processes = start_workers(WORKERS)
        processes.append(
            subprocess.Popen([flask, "scheduler"], env=worker_env(), cwd=ROOT, stdout=subprocess.DEVNULL)
        )
        began = time.time()
        time.sleep(20 + minutes * 60 + 30)
        window = (began + 20 + 60, began + 20 + minutes * 60 - 20)
    finally:
        stop(processes)
        targets.stop()

    with connect() as connection:
        rows = connection.execute(
            "SELECT endpoint_id, extract(epoch FROM checked_at), latency_ms, attempt FROM check_result"
        ).fetchall()
    lags: dict[str, list[float]] = defaultdict(list)
    seen: dict = defaultdict(set)
    finals_for_hanging = 0
    for endpoint_id, checked_at, latency_ms, attempt in rows:
        started = float(checked_at) - (latency_ms or 0) / 1000
        if kinds[endpoint_id] == "hang":
            finals_for_hanging += 1
            continue
        if attempt != 1 or not window[0] <= started <= window[1]:
            continue
        slot = slot_before(endpoint_id, started)
        lags[kinds[endpoint_id]].append(started - slot)
        seen[endpoint_id].add(int(slot))
    slots = range(int(window[0]) // 60 * 60, int(window[1]) // 60 * 60, 60)
    skipped = 0
    for endpoint_id, endpoint_kind in kinds.items():
        if endpoint_kind == "hang":
            continue
        expected = {int(slot_before(endpoint_id, s + 30)) for s in slots}
        expected = {s for s in expected if window[0] <= s and s + 60 <= window[1]}
        if expected - seen[endpoint_id]:
            skipped += 1
    all_lags = lags["ok"] + lags["slow"]
    p99, base_p99 = percentile(all_lags, 0.99), percentile(lags["ok"], 0.99)
    return [
        Figure.make("lag p50, first tries (s)", percentile(all_lags, 0.5), "s", percentile(lags["ok"], 0.5),
                    "reference", True),
        Figure.make(f"lag p99, {count:,} endpoints/min, {WORKERS} workers", p99, "s", base_p99, "<= 5 s", p99 <= 5.0),
        Figure.make("endpoints with a skipped minute (answering targets)", skipped, "endpoints", None, "0",
                    skipped == 0),
        Figure.make("final results of hanging targets (after retries)", finals_for_hanging, "results", None,
                    "reference", True),
    ]
