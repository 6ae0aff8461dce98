"""Benchmark 4: the dashboard and the API at 100,000 endpoints in one team.

gunicorn with 2 workers serves the app; wrk (a separate process, 16
connections, 2 threads) requests a random mix of dashboard pages, searches,
htmx fragments, API list pages and endpoint pages. The baseline, on the same
server in the same run, is `/health/`, which touches nothing.

SQL statements per request come from the `X-Query-Count` header
(QUERY_COUNT_HEADER=1), sampled for each kind of request at 1,000 and at
100,000 endpoints: they must not grow with the number of endpoints.
"""

from __future__ import annotations

import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

from bench.common import (
    ROOT,
    Figure,
    bench_env,
    connect,
    copy_rows,
    database_url,
    median,
    redis_url,
    reset_database,
    seed_endpoints,
    seed_teams,
    vacuum,
)

RUNS = 3
DURATION = "15s"
CONNECTIONS = 16
HISTORY_ENDPOINTS = 100
PASSWORD = "bench password 1234"

WRK_SCRIPT = """
local paths = {}
for line in io.lines("%(paths)s") do paths[#paths + 1] = line end
local cookie = "%(cookie)s"
local token = "%(token)s"
math.randomseed(os.time())
request = function()
  local line = paths[math.random(#paths)]
  local kind, path = line:match("^(%%S+) (.+)$")
  local headers = {}
  if kind == "api" then headers["Authorization"] = "Bearer " .. token
  else headers["Cookie"] = cookie end
  if kind == "fragment" then headers["HX-Request"] = "true" end
  return wrk.format("GET", path, headers)
end
"""


def seed_user(team_id: uuid.UUID) -> tuple[str, str]:
    """A verified owner of the team and a read token; returns (email, token)."""
    import secrets

    from werkzeug.security import generate_password_hash

    from monitorapp.models import ApiToken

    email = "bench@example.com"
    user_id = uuid.uuid4()
    token = "mon_" + secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    with connect() as connection:
        connection.execute(
            "INSERT INTO user_account (id, email, password_hash, email_verified_at, session_version, created_at) "
            "VALUES (%s, %s, %s, %s, 1, %s)",
            (user_id, email, generate_password_hash(PASSWORD, method="scrypt"), now, now),
        )
        connection.execute(
            "INSERT INTO membership (id, tenant_id, user_id, role, created_at) VALUES (%s, %s, %s, 'owner', %s)",
            (uuid.uuid4(), team_id, user_id, now),
        )
        connection.execute(
            "INSERT INTO api_token (id, tenant_id, user_id, name, prefix, token_hash, scope, created_at) "
            "VALUES (%s, %s, %s, 'bench', %s, %s, 'read', %s)",
            (uuid.uuid4(), team_id, user_id, token[:10], ApiToken.hash_secret(token), now),
        )
        connection.commit()
    return email, token


def seed_history(team_id: uuid.UUID, endpoint_ids: list[uuid.UUID], days: int = 30) -> int:
    """One check a minute for `days` days for each endpoint (about 43,200 rows each)."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    minutes = days * 24 * 60
    rng = random.Random(7)

    def rows():
        for endpoint_id in endpoint_ids:
            for minute in range(minutes):
                ok = rng.random() > 0.01
                yield (endpoint_id, team_id, now - timedelta(minutes=minute), ok, 200 if ok else 503,
                       rng.randint(20, 400), None if ok else "http_status", 1)

    with connect() as connection:
        count = copy_rows(
            connection,
            "check_result",
            ["endpoint_id", "tenant_id", "checked_at", "ok", "status_code", "latency_ms", "error_kind", "attempt"],
            rows(),
        )
        connection.commit()
        connection.execute("ANALYZE check_result")
    return count


def roll_up_history(endpoint_ids: list[uuid.UUID], days: int) -> int:
    """Leave the history as the daily job leaves it: every finished day rolled up.

    A deployment with weeks of checks has run `maintain_check_history` every
    night; the endpoint page reads those rollups for past days and raw checks
    only since midnight. The job itself walks every endpoint of every team
    (100,000 here: minutes of work); this runs its per-endpoint step
    (monitoring/history.py) on the endpoints that have checks.
    """
    from monitorapp import create_app
    from monitorapp.config import database_url as normalised
    from monitorapp.config import engine_options
    from monitorapp.extensions import db
    from monitorapp.monitoring import history
    from monitorapp.tenancy import system_scope

    url = normalised(database_url(), str(ROOT / "instance"))
    app = create_app(
        {"SQLALCHEMY_DATABASE_URI": url, "SQLALCHEMY_ENGINE_OPTIONS": engine_options(url), "REDIS_URL": redis_url()}
    )
    written = 0
    today = datetime.now(UTC).date()
    with app.app_context(), system_scope():
        for offset in range(days, 0, -1):
            rows = history._rollup_rows(today - timedelta(days=offset), endpoint_ids)
            if rows:
                db.session.execute(history._upsert(rows))
                db.session.commit()
                written += len(rows)
        db.engine.dispose()
    return written


class Server:
    """gunicorn with 2 workers on a free port, otherwise as gunicorn.conf.py sets it up (the sync worker)."""

    def __init__(self, extra_env: dict[str, str] | None = None) -> None:
        from tests.conftest import free_port

        self.port = free_port()
        gunicorn = str(Path(sys.executable).parent / "gunicorn")
        self.process = subprocess.Popen(
            [gunicorn, "wsgi:app", "--bind", f"127.0.0.1:{self.port}", "--workers", "2",
             "--no-control-socket", "--log-level", "warning"],
            env={**bench_env(QUERY_COUNT_HEADER="1", RATELIMIT_ENABLED="0"), **(extra_env or {})},
            cwd=ROOT,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(self.url + "/health/", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                time.sleep(0.2)
        raise RuntimeError("gunicorn did not start")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=20)


def sign_in(server: Server, email: str) -> requests.Session:
    session = requests.Session()
    page = session.get(server.url + "/login").text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = session.post(server.url + "/login", data={"email": email, "password": PASSWORD, "csrf_token": csrf})
    response.raise_for_status()
    if "/login" in response.url:
        raise RuntimeError("benchmark sign-in failed")
    return session


def request_mix(endpoint_ids: list[uuid.UUID], history_ids: list[uuid.UUID], pages: int, has_endpoint_page: bool):
    rng = random.Random(11)
    lines = []
    for _ in range(400):
        lines.append(f"page /dashboard?page={rng.randint(1, pages)}")
        lines.append(f"fragment /dashboard?page={rng.randint(1, pages)}")
        lines.append(f"search /dashboard?q=svc-{rng.randint(0, len(endpoint_ids) - 1)}")
        lines.append(f"api /api/endpoints/?page={rng.randint(1, max(1, len(endpoint_ids) // 100))}&page_size=100")
        if has_endpoint_page:
            lines.append(f"endpoint /endpoints/{rng.choice(history_ids)}")
    return lines


def wrk(server: Server, script: str | None, path: str = "/") -> tuple[float, float, float]:
    """(p50 ms, p99 ms, requests/s) from one wrk run."""
    command = ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{DURATION}", "--latency", "--timeout", "10s"]
    if script:
        command += ["-s", script]
    output = subprocess.run([*command, server.url + path], capture_output=True, text=True, check=True).stdout

    def latency(label: str) -> float:
        match = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if errors:
        raise RuntimeError(f"wrk saw {errors.group(1)} error responses:\n{output}")
    return latency("50"), latency("99"), rps


def query_counts(server: Server, session: requests.Session, token: str, endpoint_id, has_endpoint_page: bool) -> dict:
    samples = {
        "dashboard page": (session, "/dashboard?page=2", {}),
        "dashboard fragment": (session, "/dashboard?page=3", {"HX-Request": "true"}),
        "dashboard search": (session, "/dashboard?q=svc-12", {}),
        "api list": (requests, "/api/endpoints/?page=2&page_size=100", {"Authorization": f"Bearer {token}"}),
    }
    if has_endpoint_page:
        samples["endpoint page"] = (session, f"/endpoints/{endpoint_id}", {})
    counts = {}
    for name, (client, path, headers) in samples.items():
        response = client.get(server.url + path, headers=headers, timeout=30)
        response.raise_for_status()
        counts[name] = int(response.headers["X-Query-Count"])
    return counts


def run(quick: bool = False) -> list[Figure]:
    if shutil.which("wrk") is None:
        raise SystemExit("the web benchmark needs wrk: apt-get install wrk")
    sizes = (1_000, 10_000 if quick else 100_000)
    history = 10 if quick else HISTORY_ENDPOINTS
    counts_by_size = {}
    figures: list[Figure] = []
    for size in sizes:
        reset_database()
        with connect() as connection:
            teams = seed_teams(connection, 1)
            ids = seed_endpoints(connection, teams, size, next_check_at=datetime.now(UTC) + timedelta(days=1))
            connection.commit()
        email, token = seed_user(teams[0])
        history_ids = ids[:history]
        if size == sizes[-1]:
            days = 3 if quick else 30
            seed_history(teams[0], history_ids, days=days)
            roll_up_history(history_ids, days)
        vacuum("endpoint", "check_result")
        server = Server()
        try:
            session = sign_in(server, email)
            has_endpoint_page = session.get(f"{server.url}/endpoints/{ids[0]}").status_code == 200
            counts_by_size[size] = query_counts(server, session, token, ids[0], has_endpoint_page)
            if size != sizes[-1]:
                continue
            with tempfile.TemporaryDirectory() as folder:
                paths = Path(folder) / "paths.txt"
                paths.write_text("\n".join(request_mix(ids, history_ids, size // 25, has_endpoint_page)) + "\n")
                script = Path(folder) / "mix.lua"
                cookie = "; ".join(f"{c.name}={c.value}" for c in session.cookies)
                script.write_text(WRK_SCRIPT % {"paths": paths, "cookie": cookie, "token": token})
                mixes, baselines = [], []
                for run in range(RUNS):
                    baselines.append(wrk(server, None, "/health/"))
                    mixes.append(wrk(server, str(script)))
                    print(
                        f"  run {run + 1}: mix p50 {mixes[-1][0]:.1f} ms, p99 {mixes[-1][1]:.1f} ms, "
                        f"{mixes[-1][2]:.0f} req/s; /health/ p99 {baselines[-1][1]:.1f} ms",
                        flush=True,
                    )
        finally:
            server.stop()
        p50, p99, rps = (median([m[i] for m in mixes]) for i in range(3))
        b50, b99, brps = (median([b[i] for b in baselines]) for i in range(3))
        figures += [
            Figure.make(f"web mix p50 at {size:,} endpoints", p50, "ms", b50, "reference", True),
            Figure.make(f"web mix p99 at {size:,} endpoints", p99, "ms", b99, "<= 100 ms", p99 <= 100),
            Figure.make(
                f"web mix p99 at {size:,} endpoints against /health/", p99, "ms", b99, "<= 4x baseline p99",
                p99 <= 4 * b99,
            ),
            Figure.make(f"web mix throughput at {size:,} endpoints", rps, "req/s", brps, "reference", True),
        ]
    small, large = counts_by_size[sizes[0]], counts_by_size[sizes[-1]]
    for name in large:
        figures.append(
            Figure.make(
                f"SQL statements per request: {name}", large[name], "queries", small[name],
                "same as at 1,000 and <= 10", large[name] == small[name] and large[name] <= 10,
            )
        )
    return figures
