"""Many checks in flight in one worker process.

A `check_batch` job hands its endpoints to the worker's `CheckRunner` and
returns; the worker then takes the next batch from Redis while the probes
run. Probes run on a pool of `CHECK_THREADS` threads, so a target that hangs
until the deadline holds one thread and delays nobody else. One recorder
thread collects finished checks and writes them in bulk (one transaction,
one multi-row insert and one batched update per flush).

`submit` blocks when twice `CHECK_THREADS` checks are waiting or running:
a busy worker then stops taking batches, and Redis keeps them for the other
workers. Checks in flight when the process is killed are lost like any job
of a killed worker; the scheduler claims their endpoints again after the
grace period.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from flask import Flask

from monitorapp.extensions import db
from monitorapp.models import utcnow
from monitorapp.monitoring.jobs import Outcome, Target, record_outcomes
from monitorapp.monitoring.probe import ProbeSettings, probe

log = logging.getLogger(__name__)
FLUSH_SIZE = 200
FLUSH_SECONDS = 0.25
_STOP = object()
_LOST = object()  # a probe that raised: nothing to record, the grace period brings it back


class CheckRunner:
    """Probes on a thread pool; results recorded in bulk by one thread."""

    def __init__(self, app: Flask, threads: int | None = None) -> None:
        self.app = app
        threads = threads or app.config["CHECK_THREADS"]
        self.settings = ProbeSettings.from_config(app.config)
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="probe")
        self._slots = threading.BoundedSemaphore(2 * threads)
        self._finished: queue.SimpleQueue = queue.SimpleQueue()
        self._pending = 0
        self._changed = threading.Condition()
        self._recorder = threading.Thread(target=self._record_forever, name="check-recorder", daemon=True)
        self._recorder.start()

    @property
    def busy(self) -> bool:
        with self._changed:
            return self._pending > 0

    def submit(self, target: Target, attempt: int = 1) -> None:
        """Start checking `target`; blocks while the runner is full."""
        self._slots.acquire()
        with self._changed:
            self._pending += 1
        self._pool.submit(self._check, target, attempt)

    def wait_idle(self) -> None:
        """Wait until every submitted check is recorded."""
        with self._changed:
            self._changed.wait_for(lambda: self._pending == 0)

    def close(self) -> None:
        """Finish the checks in flight, record them, stop the threads."""
        self._pool.shutdown(wait=True)
        self._finished.put(_STOP)
        self._recorder.join()

    def _check(self, target: Target, attempt: int) -> None:
        try:
            self._finished.put(Outcome(target, probe(target.url, self.settings), attempt, utcnow()))
        except Exception:
            log.exception("probe failed unexpectedly for endpoint %s", target.endpoint_id)
            self._finished.put(_LOST)
        finally:
            self._slots.release()

    def _record_forever(self) -> None:
        while True:
            items = self._take()
            outcomes = [item for item in items if isinstance(item, Outcome)]
            if outcomes:
                self._record(outcomes)
            with self._changed:
                self._pending -= sum(1 for item in items if item is not _STOP)
                self._changed.notify_all()
            if _STOP in items:
                return

    def _take(self) -> list:
        """Block for one finished check, then gather more for a short while."""
        items = [self._finished.get()]
        flush_at = time.monotonic() + FLUSH_SECONDS
        while len(items) < FLUSH_SIZE and items[-1] is not _STOP:
            try:
                items.append(self._finished.get(timeout=max(0.001, flush_at - time.monotonic())))
            except queue.Empty:
                break
        return items

    def _record(self, outcomes: list[Outcome]) -> None:
        with self.app.app_context():
            try:
                record_outcomes(outcomes)
            except Exception:  # the database is away: the grace period brings these endpoints back
                log.exception("%d check results not recorded", len(outcomes))
            finally:
                db.session.remove()
