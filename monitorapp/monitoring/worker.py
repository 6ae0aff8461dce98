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

from flask import current_app
from rq import SimpleWorker

from monitorapp.extensions import db
from monitorapp.monitoring.jobs import RUNNER_KEY, CheckFailed
from monitorapp.monitoring.runner import CheckRunner
from monitorapp.queues import CHECKS_QUEUE, DEFAULT_QUEUE, NOTIFY_QUEUE, get_queue, get_redis

# Notifications first, then the scheduler's tick and housekeeping, then checks:
# a long backlog of checks must never starve the tick that reports the heartbeat.
WORKER_QUEUES = (NOTIFY_QUEUE, DEFAULT_QUEUE, CHECKS_QUEUE)


class AppWorker(SimpleWorker):
    """A SimpleWorker with a check runner; returns the job's session after each job."""

    def __init__(self, *args, **kwargs) -> None:
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
