"""The RQ worker process: runs checks, notifications and housekeeping.

It is RQ's `SimpleWorker` (no fork per job) inside one app context: forking
a work horse for every check would cost more than the check itself, and a
forked child must not share the parent's database connections. Each job gets
a fresh SQLAlchemy session, removed when the job ends.
"""

from __future__ import annotations

from flask import current_app
from rq import SimpleWorker

from monitorapp.extensions import db
from monitorapp.queues import QUEUE_NAMES, get_queue, get_redis


class AppWorker(SimpleWorker):
    """A SimpleWorker that returns the job's database session after each job."""

    def perform_job(self, job, queue):
        try:
            return super().perform_job(job, queue)
        finally:
            db.session.remove()


def run_worker(queue_names: list[str] | None = None, *, burst: bool = False) -> bool:
    names = queue_names or list(QUEUE_NAMES)
    worker = AppWorker([get_queue(name) for name in names], connection=get_redis())
    current_app.logger.info("worker listening on %s", ", ".join(names))
    return worker.work(burst=burst, with_scheduler=True, logging_level=current_app.config["LOG_LEVEL"])
