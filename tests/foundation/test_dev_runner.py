"""`flask dev` (what `make run` starts): all three processes, prefixed, stopped together."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
import requests

from monitorapp import ROOT
from tests.conftest import free_port

FLASK = str(Path(sys.executable).parent / "flask")


class Runner:
    """`flask dev` in a fresh instance folder on the embedded defaults."""

    def __init__(self, tmp_path: Path) -> None:
        self.port = free_port()
        self.env = {
            key: value
            for key, value in os.environ.items()
            if key not in ("DATABASE_URL", "REDIS_URL", "APP_ENV", "PYTEST_CURRENT_TEST")
        }
        self.env.update(
            INSTANCE_PATH=str(tmp_path / "instance"),
            DATABASE_URL=f"sqlite:///{tmp_path}/dev.sqlite3",
            FLASK_APP="monitorapp.cli:app_for_cli",
            SCHEDULER_INTERVAL_SECONDS="2",
            PORT=str(self.port),
        )
        subprocess.run([FLASK, "db", "upgrade"], env=self.env, cwd=ROOT, check=True, capture_output=True)
        self.process = subprocess.Popen(
            [FLASK, "dev"], env=self.env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_for(self, path: str, status: int, timeout: float = 60) -> requests.Response:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                last = requests.get(self.url + path, timeout=2)
                if last.status_code == status:
                    return last
            except requests.RequestException:
                pass
            time.sleep(0.3)
        raise AssertionError(f"{path} never answered {status}; last: {last and last.text}\n" + "\n".join(self.lines[-40:]))

    def descendants(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def embedded_redis(self) -> list[psutil.Process]:
        instance = self.env["INSTANCE_PATH"]
        found = []
        for process in psutil.process_iter(["cmdline"]):
            cmdline = " ".join(process.info["cmdline"] or [])
            if "redis-server" in cmdline and instance in cmdline:
                found.append(process)
        return found

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        for process in self.descendants() + self.embedded_redis():
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()


@pytest.fixture
def runner(tmp_path):
    runner = Runner(tmp_path)
    yield runner
    runner.stop()


def assert_all_gone(processes: list[psutil.Process], timeout: float = 20) -> None:
    gone, alive = psutil.wait_procs(processes, timeout=timeout)
    assert alive == [], f"left behind: {[p.info if hasattr(p, 'info') else p.pid for p in alive]}"


@pytest.mark.timeout(180)
def test_it_serves_the_app_with_a_live_scheduler_and_stops_everything_on_ctrl_c(runner):
    assert runner.wait_for("/", 200).text.count("monitorapp") > 0
    ready = runner.wait_for("/health/ready/", 200, timeout=90).json()
    assert all(check["ok"] for check in ready["checks"].values())
    children = runner.descendants()
    redis_servers = runner.embedded_redis()
    assert len(redis_servers) == 1
    prefixes = {line.split("|")[0].split()[-1] for line in runner.lines if "|" in line}
    assert {"web", "worker", "scheduler"} <= prefixes

    runner.process.send_signal(signal.SIGINT)
    assert runner.process.wait(timeout=30) is not None
    assert_all_gone(children + redis_servers)


@pytest.mark.timeout(180)
def test_when_one_process_dies_all_stop(runner):
    runner.wait_for("/health/", 200)
    children = runner.descendants()
    workers = [p for p in children if p.cmdline()[-2:] == [FLASK, "worker"] or p.cmdline()[-1:] == ["worker"]]
    assert workers, [p.cmdline() for p in children]
    min(workers, key=lambda p: p.pid).kill()
    assert runner.process.wait(timeout=30) is not None
    assert_all_gone(children + runner.embedded_redis())
