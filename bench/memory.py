"""Benchmark 5: resident memory of the web, a worker and the scheduler over 100,000 checks.

The real processes run side by side: gunicorn (2 workers), two `flask worker`
processes and `flask scheduler`, over 5,000 endpoints on the local target
server. "At rest" is measured after a warm-up (one round of 5,000 checks and
wrk on the dashboard for a few seconds), so that start-up imports and template
compilation are not counted as growth. Then 20 more rounds of 5,000 checks run
while wrk keeps the web busy, and every process is measured again.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil

from bench.common import ROOT, Figure, connect, reset_database, seed_endpoints, seed_teams
from bench.throughput import Targets, end_to_end, start_workers, stop, worker_env
from bench.web import WRK_SCRIPT, Server, seed_user, sign_in

ENDPOINTS = 5_000


def rss_mib(process: psutil.Process) -> float:
    return process.memory_info().rss / 2**20


def measure(web: Server, workers: list[subprocess.Popen], scheduler: subprocess.Popen) -> dict[str, float]:
    gunicorn_workers = psutil.Process(web.process.pid).children()
    return {
        "web worker": max(rss_mib(child) for child in gunicorn_workers),
        "RQ worker": max(rss_mib(psutil.Process(worker.pid)) for worker in workers),
        "scheduler": rss_mib(psutil.Process(scheduler.pid)),
    }


def load_web(web: Server, script: Path, seconds: int) -> subprocess.Popen:
    return subprocess.Popen(
        ["wrk", "-t1", "-c4", f"-d{seconds}s", "-s", str(script), web.url + "/"],
        stdout=subprocess.DEVNULL,
    )


def run(quick: bool = False) -> list[Figure]:
    rounds = 4 if quick else 20
    targets = Targets()
    processes: list[subprocess.Popen] = []
    web = None
    try:
        reset_database()
        with connect() as connection:
            teams = seed_teams(connection, 1)
            ids = seed_endpoints(
                connection, teams, ENDPOINTS, url=lambda n: targets.url("ok", n),
                next_check_at=datetime.now(UTC) + timedelta(days=1),
            )
            connection.commit()
        email, token = seed_user(teams[0])
        web = Server(extra_env=worker_env())
        session = sign_in(web, email)
        workers = start_workers(2)
        flask = str(Path(sys.executable).parent / "flask")
        scheduler = subprocess.Popen([flask, "scheduler"], env=worker_env(), cwd=ROOT, stdout=subprocess.DEVNULL)
        processes = [*workers, scheduler]
        with tempfile.TemporaryDirectory() as folder:
            paths = Path(folder) / "paths.txt"
            paths.write_text(
                "\n".join(
                    [f"page /dashboard?page={n % 200 + 1}" for n in range(100)]
                    + [f"api /api/endpoints/?page={n % 50 + 1}" for n in range(100)]
                    + [f"endpoint /endpoints/{ids[n]}" for n in range(100)]
                )
                + "\n"
            )
            script = Path(folder) / "mix.lua"
            cookie = "; ".join(f"{c.name}={c.value}" for c in session.cookies)
            script.write_text(WRK_SCRIPT % {"paths": paths, "cookie": cookie, "token": token})
            warm = load_web(web, script, 10)
            end_to_end(ENDPOINTS)
            warm.wait()
            at_rest = measure(web, workers, scheduler)
            busy = load_web(web, script, 3600)
            try:
                for _ in range(rounds):
                    end_to_end(ENDPOINTS)
            finally:
                busy.terminate()
                busy.wait()
            after = measure(web, workers, scheduler)
    finally:
        stop(processes)
        if web is not None:
            web.stop()
        targets.stop()
    checks = rounds * ENDPOINTS
    figures = []
    for name in at_rest:
        growth = (after[name] - at_rest[name]) / at_rest[name]
        figures.append(
            Figure.make(
                f"{name} RSS after {checks:,} checks", after[name], "MiB", at_rest[name], "growth <= 10%",
                growth <= 0.10,
            )
        )
    return figures
