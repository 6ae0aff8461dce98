"""Fixtures for the fault tests: the app's real processes, killed in teardown whatever happened.

Every test here is slow (it starts real workers and schedulers, or simulates
minutes of ticks) and is marked so: CI runs this folder in its PostgreSQL run
only. The processes are the Procfile's commands from the virtualenv
(processes.py); `process_env(...)` gives them the test's database and Redis.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.faults.processes import ProcessGroup, app_env
from tests.faults.stores import RedisServer
from tests.monitoring.conftest import Server, standard_routes

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.slow)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def app_processes(request, tmp_path) -> Iterator[ProcessGroup]:
    """Start the app's processes with `.worker(env)`, `.scheduler(env)`, `.web(env)`; all killed at the end.

    When the test fails, the tail of every process's output is printed with it.
    """
    group = ProcessGroup(tmp_path)
    try:
        yield group
    finally:
        group.stop_all()
        call = getattr(request.node, "report_call", None)
        if call is not None and call.failed:
            print(group.outputs())


@pytest.fixture
def process_env(database_url: str, redis_url: str, test_instance_path: str) -> Callable[..., dict[str, str]]:
    """`process_env(CHECK_TIMEOUT_SECONDS=2, ...)`: the environment of a process over the test's stores."""

    def build(**settings: object) -> dict[str, str]:
        return app_env(database_url, redis_url, test_instance_path, **settings)

    return build


@pytest.fixture
def own_redis(tmp_path):
    """A redis-server of the test's own, which it may stop, flush and start again."""
    directory = tmp_path / "redis"
    directory.mkdir()
    server = RedisServer(directory).start()
    yield server
    server.stop()


@pytest.fixture
def target():
    """A local HTTP target answering the standard routes."""
    server = Server(standard_routes())
    yield server
    server.stop()
