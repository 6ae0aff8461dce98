"""The RQ worker process: runs checks, notifications and housekeeping.

It is RQ's `SimpleWorker` (no fork per job) inside one app context: forking
a work horse for every job would cost more than the job itself, and a
forked child must not share the parent's database connections. Each job gets
a fresh SQLAlchemy session, removed when the job ends.

The worker owns a `CheckRunner` (runner.py): check batches hand their
endpoints to it and return at once, so one process keeps many checks in
flight while it goes on taking jobs.
"""

from __future__ import annotations

import contextlib
import logging

from flask import current_app
from rq import SimpleWorker

from monitorapp.extensions import db
from monitorapp.monitoring.jobs import RUNNER_KEY, CheckFailed
from monitorapp.monitoring.runner import CheckRunner
from monitorapp.queues import CHECKS_QUEUE, DEFAULT_QUEUE, NOTIFY_QUEUE, REDIS_UNAVAILABLE, get_queue, get_redis

log = logging.getLogger(__name__)

# Notifications first, then the scheduler's tick and housekeeping, then checks:
# a long backlog of checks must never starve the tick that reports the heartbeat.
WORKER_QUEUES = (NOTIFY_QUEUE, DEFAULT_QUEUE, CHECKS_QUEUE)


class AppWorker(SimpleWorker):
    """A SimpleWorker with a check runner; returns the job's session after each job.

    It outlives a Redis restart. RQ's loop retries only its wait for the next
    job and quits on a Redis error anywhere else (after a job, in a heartbeat),
    and RQ's scheduler process (which starts retries and look-ahead checks)
    dies with the connection and is restarted by RQ only in its periodic
    maintenance. Here those errors are waited out, and the scheduler process
    is started again after the next job (the tick comes every few seconds).
    """

    # A restarting Redis is back within seconds: look again every 5 s at most, not RQ's 60.
    max_connection_wait_time = 5.0
    # RQ's maintenance is also where a worker tries again for the scheduler lock that a
    # killed worker held (it expires about a minute after the kill). At RQ's default of
    # every 10 minutes, no retry or look-ahead check left the scheduled registry meanwhile.
    maintenance_seconds = 30

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("maintenance_interval", self.maintenance_seconds)
        super().__init__(*args, **kwargs)
        self.app = current_app._get_current_object()
        self.runner: CheckRunner | None = None

    def work(self, *args, **kwargs) -> bool:
        self.runner = CheckRunner(self.app)
        self.app.extensions[RUNNER_KEY] = self.runner
        try:
            return super().work(*args, **kwargs)
        finally:
            self.app.extensions.pop(RUNNER_KEY, None)
            self.runner.close()  # finishes and records the checks in flight
            self.runner = None

    def dequeue_job_and_maintain_ttl(self, timeout, max_idle_time=None):
        found = super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
        # Burst mode (no timeout) stops on an empty queue; checks still in
        # flight may yet hand retries to it, so wait for them and look again.
        while found is None and timeout is None and self.runner is not None and self.runner.busy:
            self.runner.wait_idle()
            found = super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
        return found

    def execute_job(self, job, queue):
        try:
            super().execute_job(job, queue)
        except REDIS_UNAVAILABLE as exc:
            # What the job did is in the database; only RQ's record of the job is lost.
            log.warning("worker: Redis went away while finishing job %s: %s", job.id, type(exc).__name__)
        self._revive_scheduler()

    def _revive_scheduler(self) -> None:
        """Start RQ's scheduler process again if a Redis outage ended it."""
        if self._stop_requested:
            return  # shutting down: a scheduler started now would outlive the worker
        process = self.scheduler._process if self.scheduler is not None else None
        if process is not None and not process.is_alive():
            with contextlib.suppress(*REDIS_UNAVAILABLE):
                self.scheduler.acquire_locks(auto_start=True)

    # The bookkeeping around the wait for the next job: with Redis away it is
    # skipped, and the wait itself (RQ's dequeue) retries until Redis is back.
    def check_for_suspension(self, burst: bool) -> None:
        with contextlib.suppress(*REDIS_UNAVAILABLE):
            super().check_for_suspension(burst)

    def run_maintenance_tasks(self) -> None:
        with contextlib.suppress(*REDIS_UNAVAILABLE):
            super().run_maintenance_tasks()

    def heartbeat(self, *args, **kwargs) -> None:
        with contextlib.suppress(*REDIS_UNAVAILABLE):
            super().heartbeat(*args, **kwargs)

    def set_state(self, *args, **kwargs) -> None:
        with contextlib.suppress(*REDIS_UNAVAILABLE):
            super().set_state(*args, **kwargs)

    def handle_exception(self, job, *exc_info):
        # A monitored URL that is down is the job's expected news, already on
        # `monitors.checks`: no traceback in the log, no report to Sentry.
        if isinstance(exc_info[1], CheckFailed):
            return
        super().handle_exception(job, *exc_info)

    def perform_job(self, job, queue):
        try:
            return super().perform_job(job, queue)
        finally:
            db.session.remove()


def run_worker(queue_names: list[str] | None = None, *, burst: bool = False) -> bool:
    names = queue_names or list(WORKER_QUEUES)
    worker = AppWorker([get_queue(name) for name in names], connection=get_redis())
    current_app.logger.info("worker listening on %s", ", ".join(names))
    return worker.work(burst=burst, with_scheduler=True, logging_level=current_app.config["LOG_LEVEL"])
