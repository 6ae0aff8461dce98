"""`flask` commands: the dev runner, the worker, the scheduler, the self-check.

`FLASK_APP=monitorapp.cli:app_for_cli` (set in `.flaskenv`) builds the app
for every command.
"""

from __future__ import annotations

import os
import sys

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from monitorapp import ROOT, create_app


def app_for_cli() -> Flask:
    # `flask check-deploy` must list every problem instead of refusing to start.
    skip = len(sys.argv) > 1 and "check-deploy" in sys.argv[1:]
    return create_app({"SKIP_DEPLOY_CHECK": True} if skip else None)


@click.command("check-deploy")
@with_appcontext
def check_deploy() -> None:
    """List every reason the current settings are unsafe for production."""
    from monitorapp.config import deploy_problems

    problems = deploy_problems(current_app.config)
    if not problems:
        click.echo("check-deploy: no problems found")
        return
    click.echo(f"check-deploy: {len(problems)} problem(s):", err=True)
    for problem in problems:
        click.echo(f"  - {problem}", err=True)
    sys.exit(1)


@click.command("worker")
@click.option("--burst", is_flag=True, help="Stop when the queues are empty.")
@click.option("--queues", default=None, help="Comma-separated queue names (default: all of the app's).")
@with_appcontext
def worker(burst: bool, queues: str | None) -> None:
    """Run an RQ worker on the app's queues, with its scheduler for retries."""
    from monitorapp.monitoring.worker import run_worker

    names = [name.strip() for name in queues.split(",")] if queues else None
    run_worker(names, burst=burst)


@click.command("scheduler")
@with_appcontext
def scheduler() -> None:
    """Run rq-scheduler with the check tick registered under a stable id."""
    from monitorapp.monitoring.scheduler import run_scheduler

    run_scheduler()


@click.command("dev")
@click.option("--port", default=lambda: os.environ.get("PORT", "5000"), show_default="$PORT or 5000")
@click.option("--host", default="127.0.0.1", show_default=True)
@with_appcontext
def dev(port: str, host: str) -> None:
    """Start web, worker and scheduler (and the embedded Redis) in one terminal.

    Each line of output is prefixed with its process name; Ctrl-C, or any one
    process ending, stops all of them.
    """
    from monitorapp.devrunner import DevRunner
    from monitorapp.queues import stop_embedded_redis

    env = dict(os.environ)
    env["REDIS_URL"] = current_app.config["REDIS_URL"]
    env["FLASK_APP"] = "monitorapp.cli:app_for_cli"
    env["PYTHONUNBUFFERED"] = "1"
    bin_dir = os.path.dirname(sys.executable)
    runner = DevRunner(env, cwd=str(ROOT))
    runner.add(
        "web",
        [
            os.path.join(bin_dir, "gunicorn"), "wsgi:app",
            "--bind", f"{host}:{int(port)}",
            "--access-logfile", "-", "--graceful-timeout", "5",
            "--no-control-socket",
        ],
    )
    runner.add("worker", [os.path.join(bin_dir, "flask"), "worker"])
    runner.add("scheduler", [os.path.join(bin_dir, "flask"), "scheduler"])
    click.echo(f"monitorapp is starting at http://{host}:{port}  (Ctrl-C stops everything)")
    try:
        code = runner.run()
    finally:
        if current_app.config.get("EMBEDDED_REDIS"):
            stop_embedded_redis(current_app.instance_path)
    sys.exit(code)


def register(app: Flask) -> None:
    for command in (check_deploy, worker, scheduler, dev):
        app.cli.add_command(command)
