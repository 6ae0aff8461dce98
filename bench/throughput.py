"""Benchmark 2: sustained checks per second, end to end.

N endpoints on a local target server (fast 200 answers; loopback opened with
ALLOWED_PRIVATE_NETWORKS for the benchmark), K `flask worker` processes. One
scheduler tick claims and enqueues them all; the clock stops when the last
result row is written. The baseline, in the same run, is a bare
`requests.Session().get` loop over the same URLs in K processes with the
same number of threads each (CHECK_THREADS), with no queue and no database.
"""

from __future__ import annotations

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from multiprocessing import Pool

import requests

from bench.common import ROOT, Figure, Timer, bench_env, connect, median, reset_database, seed_endpoints, seed_teams

RUNS = 3
WORKERS = 2
THREADS = 200

TICK = """
import time
from monitorapp import create_app
from monitorapp.monitoring.scheduler import schedule_endpoint_checks
app = create_app()
with app.app_context():
    print(time.time(), flush=True)
    schedule_endpoint_checks()
"""


class Targets:
    def __init__(self) -> None:
        from tests.conftest import free_port

        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.targets", str(self.port)], cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout.readline().strip() == "ready"

    def url(self, kind: str, n: int) -> str:
        return f"http://127.0.0.1:{self.port}/{kind}/{n}"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def worker_env(**extra: str) -> dict[str, str]:
    return bench_env(ALLOWED_PRIVATE_NETWORKS="127.0.0.0/8", CHECK_THREADS=str(THREADS), **extra)


def start_workers(count: int, **extra: str) -> list[subprocess.Popen]:
    flask = str(__import__("pathlib").Path(sys.executable).parent / "flask")
    return [
        subprocess.Popen([flask, "worker"], env=worker_env(**extra), cwd=ROOT, stdout=subprocess.DEVNULL)
        for _ in range(count)
    ]


def stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def result_count() -> int:
    with connect() as connection:
        return connection.execute("SELECT count(*) FROM check_result").fetchone()[0]


def make_all_due() -> None:
    """Make every endpoint due; retried if it deadlocks with a recorder still at work."""
    import psycopg

    for _ in range(5):
        try:
            with connect() as connection:
                connection.execute(
                    "UPDATE endpoint SET next_check_at = now() - interval '1 minute', last_enqueued_at = NULL"
                )
                connection.commit()
            return
        except psycopg.errors.DeadlockDetected:
            time.sleep(0.5)
    raise RuntimeError("could not make the endpoints due")


def end_to_end(count: int) -> float:
    """Checks per second from the tick's start to the last of `count` new result rows."""
    make_all_due()
    before = result_count()
    # The clock starts when the tick starts claiming (after its process has
    # imported the app) and stops when the last result row is written.
    tick = subprocess.run(
        [sys.executable, "-c", TICK], env=worker_env(), cwd=ROOT, check=True, capture_output=True, text=True
    )
    started = float(tick.stdout.split()[0])
    deadline = time.monotonic() + 600
    while result_count() < before + count:
        if time.monotonic() > deadline:
            raise RuntimeError("checks did not finish")
        time.sleep(0.02)
    return count / (time.time() - started)


def _bare_loop(urls: list[str]) -> int:
    session = requests.Session()
    session.trust_env = False
    with ThreadPoolExecutor(THREADS) as pool:
        return sum(1 for response in pool.map(lambda url: session.get(url, timeout=10), urls) if response.ok)


def baseline(urls: list[str]) -> float:
    shares = [urls[i::WORKERS] for i in range(WORKERS)]
    with Pool(WORKERS) as pool, Timer() as timer:
        done = sum(pool.map(_bare_loop, shares))
    if done != len(urls):
        raise RuntimeError(f"baseline: {done} of {len(urls)} answered")
    return len(urls) / timer.seconds


def run(quick: bool = False) -> list[Figure]:
    count = 1_000 if quick else 5_000
    targets = Targets()
    workers: list[subprocess.Popen] = []
    try:
        reset_database()
        with connect() as connection:
            teams = seed_teams(connection, 100)
            seed_endpoints(
                connection, teams, count, url=lambda n: targets.url("ok", n),
                next_check_at=datetime.now(UTC) + timedelta(days=1),
            )
            connection.commit()
        urls = [targets.url("ok", n) for n in range(count)]
        workers = start_workers(WORKERS)
        time.sleep(3)  # let the workers connect before the clock starts
        measured, baselines = [], []
        for _ in range(RUNS):
            baselines.append(baseline(urls))
            measured.append(end_to_end(count))
    finally:
        stop(workers)
        targets.stop()
    value, base = median(measured), median(baselines)
    return [
        Figure.make(
            f"checks/s end to end, {count:,} endpoints, {WORKERS} workers x {THREADS} threads",
            value, "checks/s", base, ">= 50% of the bare requests loop", value >= 0.5 * base,
        )
    ]
