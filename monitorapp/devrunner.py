"""Run several processes in one terminal, each line prefixed with its name.

`flask dev` uses this to start web, worker and scheduler together. Ctrl-C,
SIGTERM, or any one process ending stops them all: each child runs in its own
process group and the whole group is signalled, so grandchildren (gunicorn's
workers, the RQ worker's scheduler process) go too.

Why not honcho: it notices a process has ended only when its output pipe
closes, and a grandchild that outlives its parent (RQ's scheduler process
after `kill -9` of the worker) keeps that pipe open, so one dead process did
not stop the others.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TextIO

STOP_GRACE_SECONDS = 10


@dataclass
class Child:
    name: str
    command: list[str]
    process: subprocess.Popen | None = None
    reader: threading.Thread | None = field(default=None, repr=False)


class DevRunner:
    def __init__(self, env: dict[str, str], cwd: str, out: TextIO = sys.stdout) -> None:
        self.env = env
        self.cwd = cwd
        self.out = out
        self.children: list[Child] = []
        self.width = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    def add(self, name: str, command: list[str]) -> None:
        self.children.append(Child(name, command))
        self.width = max(self.width, len(name), len("system"))

    def say(self, name: str, line: str) -> None:
        with self._lock:
            self.out.write(f"{datetime.now():%H:%M:%S} {name:<{self.width}} | {line}\n")
            self.out.flush()

    def _pump(self, child: Child) -> None:
        assert child.process is not None and child.process.stdout is not None
        for line in child.process.stdout:
            self.say(child.name, line.rstrip("\n"))

    def _signal_all(self, signum: int) -> None:
        for child in self.children:
            if child.process is not None and child.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.process.pid, signum)

    def _on_signal(self, signum, frame) -> None:
        self._stopping.set()

    def run(self) -> int:
        """Start every child; return when all have stopped (the first non-zero exit code)."""
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            for child in self.children:
                child.process = subprocess.Popen(
                    child.command,
                    env=self.env,
                    cwd=self.cwd,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    text=True,
                    start_new_session=True,  # its own process group, signalled as one
                )
                child.reader = threading.Thread(target=self._pump, args=(child,), daemon=True)
                child.reader.start()
                self.say("system", f"{child.name} started (pid {child.process.pid})")
            first_exit = self._watch()
            self._stop_all()
            return first_exit
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _watch(self) -> int:
        while not self._stopping.is_set():
            for child in self.children:
                code = child.process.poll() if child.process else None
                if code is not None:
                    self.say("system", f"{child.name} stopped (exit code {code}); stopping the others")
                    return code or 1
            time.sleep(0.2)
        self.say("system", "stop requested; stopping all processes")
        return 0

    def _stop_all(self) -> None:
        self._signal_all(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while time.monotonic() < deadline and any(c.process and c.process.poll() is None for c in self.children):
            time.sleep(0.1)
        # Whatever is left in any group (the child or an orphaned grandchild) is killed.
        for child in self.children:
            if child.process is None:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.process.pid, signal.SIGKILL)
            child.process.wait()
            if child.reader is not None:
                child.reader.join(timeout=2)
            self.say("system", f"{child.name} stopped")
