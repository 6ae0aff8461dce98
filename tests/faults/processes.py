"""The app's real processes for the fault tests: start, wait until ready, kill -9, read output.

Each process is the command the Procfile runs (`flask worker`, `flask
scheduler`, gunicorn `wsgi:app`) started from the virtualenv running the tests
with an environment built by `app_env`. Its output (stdout and stderr
together) goes to a file, never a pipe, so a chatty process cannot block on
a full pipe; `output()` reads it back at any time.

Every wait has a timeout. A `ProcessGroup` (the `app_processes` fixture in
conftest.py) kills every process it started when the test ends, passed or
failed:

    worker = app_processes.worker(env)            # started and ready
    worker.kill()                                 # kill -9
    app_processes.scheduler(env)
    web = app_processes.web(env)                  # web.url -> http://127.0.0.1:<port>
    worker.wait_for_output("check", timeout=30)
    worker.pause(); worker.resume()               # SIGSTOP / SIGCONT, to pick the moment of a kill

Start-up imports the whole app (seconds on a busy machine): to start several
at once, pass `wait=False` and then `app_processes.wait_ready(a, b)`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from monitorapp import ROOT
from tests.conftest import free_port

BIN = Path(sys.executable).parent  # the virtualenv running the tests has `flask` and `gunicorn`
READY_TIMEOUT = 90.0  # start-up imports the whole app; 2 shared cores can be slow


def wait_until(condition: Callable[[], object], timeout: float, interval: float = 0.1, message: str = "condition"):
    """Poll `condition` until it returns a truthy value (returned); fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {message}")
        time.sleep(interval)


def app_env(database_url: str, redis_url: str, instance_path: str, **settings: object) -> dict[str, str]:
    """The environment of an app process: the test's database and Redis, testing mode, plus `settings`.

    `settings` are environment variables (`CHECK_TIMEOUT_SECONDS=2`); values are
    turned into strings, tuples and lists joined with commas.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        # The test run's own settings must not leak into the processes: they get exactly these.
        if not key.startswith(("CHECK_", "SCHEDULER_", "ALLOWED_", "DATABASE_", "REDIS_", "APP_ENV", "SENTRY_"))
    }
    env.update(
        {
            "APP_ENV": "testing",
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "INSTANCE_PATH": instance_path,
            "SECRET_KEY": "test-secret-key-" + "x" * 32,
            "FLASK_APP": "monitorapp.cli:app_for_cli",
            "PYTHONUNBUFFERED": "1",
            "LOG_LEVEL": "INFO",
        }
    )
    for key, value in settings.items():
        env[key] = ",".join(str(part) for part in value) if isinstance(value, tuple | list) else str(value)
    return env


class AppProcess:
    """One real process of the app; output in a file, killed by `kill()` or `stop()`."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.command = command
        self.env = env
        self.log_path = log_dir / f"{name}-{time.monotonic_ns()}.log"
        self.process: subprocess.Popen | None = None
        self.ready_check: Callable[[], bool] = lambda: True

    def start(self) -> AppProcess:
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                self.command,
                env=self.env,
                cwd=str(ROOT),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: a kill reaches its children too
            )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} was never started"
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for_output(self, text: str, timeout: float = 30.0) -> str:
        """Wait until `text` appears in the output; fail (with the output) if the process dies first."""

        def seen() -> bool:
            if text in self.output():
                return True
            if not self.alive:
                raise AssertionError(f"{self.name} exited ({self.returncode}) before printing {text!r}:\n{self.tail()}")
            return False

        try:
            wait_until(seen, timeout, 0.1, f"{text!r} from {self.name}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- {self.name} output ---\n{self.tail()}") from None
        return self.output()

    def wait_ready(self, check: Callable[[], bool] | None = None, timeout: float = READY_TIMEOUT) -> AppProcess:
        """Wait until `check()` (default: the process's own readiness check) is true.

        Fails with the output if the process dies or time runs out.
        """
        check = check or self.ready_check

        def ready() -> bool:
            if not self.alive:
                raise AssertionError(f"{self.name} exited ({self.returncode}) during start-up:\n{self.tail()}")
            return check()

        try:
            wait_until(ready, timeout, 0.1, f"{self.name} to be ready")
        except AssertionError as exc:
            if "exited" in str(exc):
                raise
            raise AssertionError(f"{exc}\n--- {self.name} output ---\n{self.tail()}") from None
        return self

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    def kill(self, timeout: float = 15.0) -> None:
        """kill -9 the process (and its process group); wait until it is gone."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        self.process.wait(timeout=timeout)

    def pause(self) -> None:
        """SIGSTOP the process itself (not its children): it stands still between two instructions."""
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def terminate(self, timeout: float = 20.0) -> int | None:
        """SIGTERM (a graceful stop), then kill -9 after `timeout` seconds; return the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def stop(self) -> None:
        """Teardown: kill -9 the process and anything left in its process group."""
        self.kill()
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)


def _worker_registered(process: AppProcess) -> Callable[[], bool]:
    """True once RQ has registered a worker with this process's pid in the process's Redis."""
    from rq import Worker

    from monitorapp.queues import connect

    connection = connect(process.env["REDIS_URL"])

    def registered() -> bool:
        with contextlib.suppress(Exception):
            return any(worker.pid == process.pid for worker in Worker.all(connection=connection))
        return False

    return registered


def _answers(url: str) -> Callable[[], bool]:
    def answered() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (a local test URL)
                return response.status < 500
        except urllib.error.HTTPError as exc:
            return exc.code < 500
        except OSError:
            return False

    return answered


class ProcessGroup:
    """Starts the app's processes and kills every one of them in `stop_all()`."""

    def __init__(self, log_dir: Path | None = None) -> None:
        self.log_dir = log_dir or Path(tempfile.mkdtemp(prefix="monitorapp-faults-"))
        self.processes: list[AppProcess] = []

    def start(self, name: str, command: list[str], env: dict[str, str]) -> AppProcess:
        process = AppProcess(name, command, env, self.log_dir)
        self.processes.append(process)
        return process.start()

    def worker(
        self,
        env: dict[str, str],
        *,
        queues: list[str] | None = None,
        burst: bool = False,
        name: str = "worker",
        wait: bool = True,
        ready_timeout: float = READY_TIMEOUT,
    ) -> AppProcess:
        """`flask worker` (optionally on some queues only); returns once RQ has registered it."""
        command = [str(BIN / "flask"), "worker"]
        if queues:
            command += ["--queues", ",".join(queues)]
        if burst:
            command.append("--burst")
        process = self.start(name, command, env)
        if not burst:
            process.ready_check = _worker_registered(process)
        return process.wait_ready(timeout=ready_timeout) if wait else process

    def scheduler(
        self, env: dict[str, str], *, name: str = "scheduler", wait: bool = True, ready_timeout: float = READY_TIMEOUT
    ) -> AppProcess:
        """`flask scheduler`; returns once it has registered its recurring jobs."""
        process = self.start(name, [str(BIN / "flask"), "scheduler"], env)
        process.ready_check = lambda: "scheduler started" in process.output()
        return process.wait_ready(timeout=ready_timeout) if wait else process

    def web(
        self,
        env: dict[str, str],
        *,
        port: int | None = None,
        name: str = "web",
        wait: bool = True,
        ready_timeout: float = READY_TIMEOUT,
    ) -> AppProcess:
        """gunicorn `wsgi:app` on 127.0.0.1 (one worker process); returns once /health/ answers.

        The returned process has `.port` and `.url`.
        """
        port = port or free_port()
        command = [
            str(BIN / "gunicorn"), "wsgi:app",
            "--bind", f"127.0.0.1:{port}",
            "--workers", "1", "--threads", "4",
            "--graceful-timeout", "5", "--timeout", "60",
            "--no-control-socket",
        ]
        process = self.start(name, command, env)
        process.port = port
        process.url = f"http://127.0.0.1:{port}"
        process.ready_check = _answers(process.url + "/health/")
        return process.wait_ready(timeout=ready_timeout) if wait else process

    def wait_ready(self, *processes: AppProcess, timeout: float = READY_TIMEOUT) -> None:
        """Wait for processes started with `wait=False` (they start up side by side)."""
        for process in processes:
            process.wait_ready(timeout=timeout)

    def stop_all(self) -> None:
        for process in self.processes:
            with contextlib.suppress(Exception):
                process.stop()

    def outputs(self) -> str:
        """Every process's output, for a failure report."""
        return "\n".join(f"--- {process.name} (pid {process.process and process.pid}) ---\n{process.tail()}" for process in self.processes)
