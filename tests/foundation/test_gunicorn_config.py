"""gunicorn.conf.py: what `gunicorn wsgi:app` runs with (the Procfile, `flask dev`, the benchmarks)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from monitorapp import ROOT

GUNICORN = str(Path(sys.executable).parent / "gunicorn")


def resolved(**env: str) -> subprocess.CompletedProcess:
    """gunicorn's settings as it resolves them from the repository root."""
    clean = {key: value for key, value in os.environ.items() if key not in ("WEB_CONCURRENCY", "WEB_THREADS")}
    return subprocess.run(
        [GUNICORN, "--print-config", "wsgi:app"],
        cwd=ROOT, env={**clean, **env}, capture_output=True, text=True, timeout=60,
    )


def settings(output: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in output.splitlines() if "=" in line)
    return {name.strip(): value.strip() for name, value in pairs}


def test_it_runs_two_sync_workers_by_default():
    found = settings(resolved().stdout)
    assert found["config"] == "./gunicorn.conf.py"
    assert (found["workers"], found["threads"], found["worker_class"]) == ("2", "1", "sync")


def test_the_platform_sets_processes_and_threads():
    found = settings(resolved(WEB_CONCURRENCY="3", WEB_THREADS="4").stdout)
    assert (found["workers"], found["threads"]) == ("3", "4")


def test_a_bad_setting_stops_it_naming_the_variable():
    result = resolved(WEB_THREADS="four")
    assert result.returncode != 0
    assert "WEB_THREADS must be an integer, got 'four'" in result.stderr


def test_a_worker_freezes_what_start_up_made_and_collects_young_objects_less_often():
    script = (
        "import gc, runpy\n"
        "conf = runpy.run_path('gunicorn.conf.py')\n"
        "before = gc.get_freeze_count()\n"
        "conf['post_worker_init'](None)\n"
        "print(before, gc.get_freeze_count(), gc.get_threshold()[0], conf['GC_YOUNG_THRESHOLD'])\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    before, after, threshold, wanted = (int(part) for part in result.stdout.split())
    assert before == 0 and after > 10_000
    assert threshold == wanted == 7000
