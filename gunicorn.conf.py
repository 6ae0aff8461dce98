"""gunicorn's settings for `gunicorn wsgi:app`: the Procfile, `flask dev` and the benchmarks.

gunicorn reads this file from the working directory by itself; options on
the command line override it.

One thread per worker process (gunicorn's sync worker) unless WEB_THREADS
says otherwise. The pages are CPU-bound — a dashboard page costs about 6 ms
of Python and 1.5 ms of PostgreSQL — so threads in one process only take
turns at the GIL: with 4 threads a page that needs 6 ms of CPU took 23–27 ms
inside the server (p50), and a keep-alive connection stayed with whichever
worker accepted it, however busy. The web benchmark (bench/web.py, 100,000
endpoints, 16 connections, 2 workers) measured p99 108–251 ms (median 213)
with 4 threads and 97–167 ms (median 110) with the sync worker, at the same
CPU per request. A sync worker serves one request at a time, so it
wants a proxy in front that buffers slow clients — a Heroku-style router
buffers requests and responses up to 1 MB, far more than any page here — and
when the database is far away (several milliseconds a round trip) raise
WEB_CONCURRENCY, or WEB_THREADS to 2–4, so the waits overlap.
"""

import gc

from monitorapp.config import env_int

workers = env_int("WEB_CONCURRENCY", 2, minimum=1)
threads = env_int("WEB_THREADS", 1, minimum=1)

# Garbage collection in a long-lived worker. The app's modules, models and
# templates are 145,000 objects that live as long as the process, and every
# full collection walked them all: 63 ms, on whichever request triggered it
# (bench/web.py, measured in one worker). Frozen after start-up they are
# skipped (16 ms). Young collections ran about once a request at the default
# threshold of 700 allocations; at 7,000 they cost a third as much in all.
GC_YOUNG_THRESHOLD = 7000


def post_worker_init(worker) -> None:
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
