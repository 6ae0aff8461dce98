"""The outbound-request policy at check time: the probe itself refuses.

Validation at create/update time (test_outbound_corpus.py) is the first wall;
these tests knock on the second. The probe is called directly with settings
read from a real app's configuration, and rows that never passed validation
(saved before a policy change) are checked by the real scheduler and worker.

Two witnesses count what got through: the canary listens on 127.0.0.1 and
::1 at the port every hostile URL names, and the connection guard sees every
connect of the process (canary.py). The one server these tests may reach
listens on 127.0.0.2, opened by `ALLOWED_PRIVATE_NETWORKS=127.0.0.2/32`;
127.0.0.1 — the canary — stays closed.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_network
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from monitorapp.extensions import db
from monitorapp.models import CheckResult, Endpoint
from monitorapp.monitoring.policy import ResolutionFailed, system_resolver
from monitorapp.monitoring.probe import ProbeResult, ProbeSettings, probe
from monitorapp.monitoring.urls import MAX_URL_LENGTH, validate_url
from monitorapp.tenancy import system_scope
from tests.conftest import fresh, make_team, make_token
from tests.figures import record
from tests.security.canary import Canary, ConnectionGuard
from tests.security.corpus import IPV6, LOOPBACK_SPELLINGS, NAMES, RANGE_EDGES, RESOLVED_NAMES, corpus

SERVER_HOST = "127.0.0.2"
SERVER_NETWORK = ip_network("127.0.0.2/32")
POLICY_KINDS = {"blocked", "invalid_url"}
REDIRECT_CODES = (301, 302, 303, 307, 308)
REDIRECT_PATH = re.compile(r"^/go/(\d{3})/(\d+)$")


# -- the one server the probe may reach ------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    """`/go/<code>/<n>` answers `code` with the n-th Location, written as raw UTF-8; anything else 200."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802  (http.server's naming)
        self.server.requests.append(self.path)
        if match := REDIRECT_PATH.match(self.path):
            code, number = match.groups()
            location = self.server.locations[int(number)]
            head = f"HTTP/1.1 {code} Moved\r\nContent-Length: 0\r\nConnection: close\r\nLocation: "
            reply = head.encode() + location.encode("utf-8") + b"\r\n\r\n"
        else:
            reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
        with contextlib.suppress(OSError):
            self.wfile.write(reply)
        self.close_connection = True

    def log_message(self, format, *args) -> None:
        pass


class AllowedServer:
    """A real HTTP server on 127.0.0.2, the only address the settings open."""

    def __init__(self) -> None:
        self.httpd = ThreadingHTTPServer((SERVER_HOST, 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.request_queue_size = 64
        self.httpd.requests = []
        self.httpd.locations = []
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def requests(self) -> list[str]:
        return self.httpd.requests

    def url(self, path: str = "/ok", host: str = SERVER_HOST) -> str:
        return f"http://{host}:{self.port}{path}"

    def redirecting(self, code: int, location: str) -> str:
        """A URL of this server that answers `code` with `Location: location`."""
        self.httpd.locations.append(location)
        return self.url(f"/go/{code}/{len(self.httpd.locations) - 1}")

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[AllowedServer]:
    started = AllowedServer()
    yield started
    started.stop()


@pytest.fixture
def config(make_app) -> dict:
    """A real app's configuration with exactly the server's address allow-listed."""
    return make_app(ALLOWED_PRIVATE_NETWORKS=(SERVER_NETWORK,), CHECK_TIMEOUT_SECONDS=3.0).config


def settings_for(config, resolver: Callable | None = None) -> ProbeSettings:
    return ProbeSettings.from_config(config, resolver or system_resolver)


def attackers_resolver(host: str, port: int) -> list[str]:
    """An attacker's DNS: every name is the canary's address."""
    return ["127.0.0.1"]


def refused(result: ProbeResult) -> bool:
    return result.ok is False and result.status_code is None and result.error_kind in POLICY_KINDS


def unresolvable_here(url: str) -> bool:
    """True if this machine's resolver has no address for the URL's host (ip6-localhost on some)."""
    host = urlsplit(url).hostname
    try:
        system_resolver(host, 80)
    except ResolutionFailed:
        return True
    return False


def assert_no_connection(guard: ConnectionGuard, canary: Canary) -> None:
    assert guard.from_this_thread() == [], guard.from_this_thread()
    assert guard.to_port(canary.port) == []
    assert canary.connections == 0


# -- every hostile URL, straight to the probe -----------------------------------------


def test_the_probe_refuses_every_hostile_url_before_connecting(config, canary, guard):
    settings = settings_for(config)
    names = {f"http://{name}:{canary.port}/" for name in NAMES}
    kinds: dict[str, int] = {}
    for url in corpus(canary.port):
        result = probe(url, settings)
        kinds[result.error_kind] = kinds.get(result.error_kind, 0) + 1
        if result.error_kind == "dns":
            # A name this machine cannot resolve never gets an address to connect to.
            assert url in names and unresolvable_here(url), url
            assert (result.ok, result.status_code) == (False, None)
        else:
            assert refused(result), (url, result)
    assert_no_connection(guard, canary)
    assert kinds["blocked"] > 50 and kinds["invalid_url"] > 50, kinds
    record("outbound corpus refused by the probe", len(corpus(canary.port)))


def test_an_attackers_resolver_opens_no_name_in_the_corpus(config, canary, guard):
    settings = settings_for(config, attackers_resolver)
    for url in corpus(canary.port):
        assert refused(probe(url, settings)), url
    assert_no_connection(guard, canary)


@pytest.mark.parametrize("name", RESOLVED_NAMES)
def test_a_name_resolving_to_a_blocked_address_is_refused(config, canary, guard, name):
    calls = []

    def resolver(host: str, port: int) -> list[str]:
        calls.append(host)
        return RESOLVED_NAMES[host]

    result = probe(f"http://{name}:{canary.port}/", settings_for(config, resolver))
    assert (result.ok, result.error_kind) == (False, "blocked")
    assert calls == [name]
    assert_no_connection(guard, canary)


# -- DNS rebinding -----------------------------------------------------------------------


class Rebinding:
    """Answers with `first` on the first lookup and `later` on every lookup after it."""

    def __init__(self, first: list[str], later: list[str]) -> None:
        self.first, self.later, self.calls = first, later, 0

    def __call__(self, host: str, port: int) -> list[str]:
        self.calls += 1
        return self.first if self.calls == 1 else self.later


def test_a_name_rebound_after_validation_is_refused_at_check_time(config, server, canary, guard):
    resolver = Rebinding([SERVER_HOST], ["127.0.0.1"])
    url = f"http://rebind.attacker.example:{server.port}/ok"
    # Saved while the name answered with an allowed address…
    assert validate_url(url, allowed_networks=(SERVER_NETWORK,), resolver=resolver) == url
    # …checked after it moved to the canary's.
    result = probe(url, settings_for(config, resolver))
    assert (result.ok, result.error_kind) == (False, "blocked")
    assert server.requests == []
    assert_no_connection(guard, canary)


def test_a_name_rebound_between_redirect_hops_is_refused(config, server, canary, guard):
    resolver = Rebinding([SERVER_HOST], ["127.0.0.1"])
    start = server.redirecting(302, f"http://rebind.attacker.example:{canary.port}/")
    url = start.replace(SERVER_HOST, "rebind.attacker.example")
    result = probe(url, settings_for(config, resolver))
    assert (result.ok, result.error_kind) == (False, "blocked")
    assert resolver.calls == 2
    assert server.requests == [urlsplit(start).path]
    assert {(a.host, a.port) for a in guard.from_this_thread()} == {(SERVER_HOST, server.port)}
    assert guard.to_port(canary.port) == [] and canary.connections == 0


@pytest.mark.parametrize(
    "answers",
    [
        [SERVER_HOST, "127.0.0.1"],
        ["127.0.0.1", SERVER_HOST],
        [SERVER_HOST, "::1"],
        [SERVER_HOST, "::ffff:127.0.0.2"],  # the allowed address in an IPv6 disguise is not allowed
        [SERVER_HOST, "169.254.169.254"],
        [SERVER_HOST, "10.0.0.1", SERVER_HOST],
    ],
)
def test_a_name_with_an_allowed_and_a_blocked_answer_is_refused_without_connecting(
    config, server, canary, guard, answers
):
    result = probe(f"http://mixed.attacker.example:{server.port}/ok", settings_for(config, lambda h, p: answers))
    assert (result.ok, result.error_kind) == (False, "blocked")
    assert server.requests == []
    assert_no_connection(guard, canary)


def test_the_probe_connects_only_to_the_address_it_checked(config, server, canary, guard):
    # The system resolver says localhost is 127.0.0.1 (the canary); the checked answer says
    # 127.0.0.2. A second lookup anywhere below the probe would connect to the canary.
    resolver = Rebinding([SERVER_HOST], ["127.0.0.1"])
    result = probe(f"http://localhost:{server.port}/ok", settings_for(config, resolver))
    assert result.ok is True, result
    assert resolver.calls == 1
    assert server.requests == ["/ok"]
    assert {(a.host, a.port) for a in guard.from_this_thread()} == {(SERVER_HOST, server.port)}
    assert canary.connections == 0


# -- the allow-list opens exactly its network -----------------------------------------


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "127.0.0.3", "127.0.0.0", "127.0.1.2", "127.255.255.255", "[::ffff:127.0.0.2]", "[::ffff:7f00:2]",
     "[::127.0.0.2]", "[64:ff9b::7f00:2]", "[2002:7f00:2::]", "[::1]"],
)
def test_the_allow_list_opens_only_the_servers_address(config, server, canary, guard, host):
    settings = settings_for(config)
    assert probe(server.url("/ok"), settings).ok is True
    result = probe(f"http://{host}:{server.port}/ok", settings)
    assert (result.ok, result.error_kind) == (False, "blocked")
    redirected = probe(server.redirecting(302, f"http://{host}:{canary.port}/"), settings)
    assert (redirected.ok, redirected.error_kind) == (False, "blocked")
    assert {(a.host, a.port) for a in guard.from_this_thread()} == {(SERVER_HOST, server.port)}
    assert canary.connections == 0


# -- redirects from the allowed server to every blocked form ------------------------------


def redirect_targets(port: int, server: AllowedServer) -> tuple[list[str], list[str]]:
    """Locations that must be refused, and relative ones that land back on the server itself."""
    header_safe = [url for url in corpus(port) if "\r" not in url and "\n" not in url]
    stays = [
        f"127.0.0.1:{port}",  # no "//": a relative path
        f"http:/127.0.0.1:{port}/",  # same scheme, no authority: a path on the same host
        f"http:127.0.0.1:{port}/",
        f"http:\\\\127.0.0.1:{port}\\",  # "\" is not "/" to a URL parser (browsers differ)
        f"///127.0.0.1:{port}/",
        f"/\\127.0.0.1:{port}/",
    ]
    hosts = LOOPBACK_SPELLINGS + RANGE_EDGES + IPV6 + NAMES + ["169.254.169.254", "0.0.0.0"]
    scheme_relative = [f"//{host}:{port}/" for host in hosts] + [
        "//169.254.169.254/latest/meta-data/iam/security-credentials/",
        f"//{SERVER_HOST}:{server.port}@127.0.0.1:{port}/",
        f"//user:secret@{SERVER_HOST}:{server.port}/ok",
    ]
    extra = [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        f"http://user:secret@{SERVER_HOST}:{server.port}/ok",  # credentials, even for the allowed server
        f"http://{SERVER_HOST}:{server.port}@127.0.0.1:{port}/",
        f"http://127.0.0.1:{port}#@{SERVER_HOST}:{server.port}/",
        f"https://{SERVER_HOST}:{server.port}@[::1]:{port}/",
        f"HTTP://127.0.0.1:{port}/",
        f"http://①②⑦.⓪.⓪.①:{port}/",
        f"http://①②⑦.①:{port}/",
        f"http://127。0。0。1:{port}/",
        f"http://ｌｏｃａｌｈｏｓｔ:{port}/",
        f"gopher://127.0.0.1:{port}/_GET%20/",
        "file:///etc/passwd",
        f"ftp://{SERVER_HOST}:{server.port}/",  # not http, even on the allowed server
        f"ws://{SERVER_HOST}:{server.port}/",
        f"https://{SERVER_HOST}:{server.port}@169.254.169.254/",
    ]
    refused_targets = list(dict.fromkeys(header_safe + scheme_relative + extra))
    return [url for url in refused_targets if url not in stays], stays


def test_every_redirect_to_a_blocked_form_is_refused(config, server, canary, guard):
    # Every name the redirect names resolves to the canary, as an attacker's DNS would have it.
    settings = settings_for(config, attackers_resolver)
    targets, _ = redirect_targets(canary.port, server)
    cases = 0
    for code, location in itertools.product(REDIRECT_CODES, targets):
        result = probe(server.redirecting(code, location), settings)
        assert refused(result), (code, location, result)
        cases += 1
    # The server saw each first hop and nothing else: no refused hop came back to it.
    assert len(server.requests) == cases
    assert all(REDIRECT_PATH.match(path) for path in server.requests)
    assert {(a.host, a.port) for a in guard.from_this_thread()} == {(SERVER_HOST, server.port)}
    assert guard.to_port(canary.port) == [] and canary.connections == 0
    assert cases >= 5 * 250
    record("redirect cases refused", cases)


def test_a_relative_redirect_that_looks_like_a_host_stays_on_the_server(config, server, canary, guard):
    settings = settings_for(config, attackers_resolver)
    _, stays = redirect_targets(canary.port, server)
    for location in stays:
        for code in REDIRECT_CODES:
            before = len(server.requests)
            result = probe(server.redirecting(code, location), settings)
            assert result.ok is True, (code, location, result)
            followed = server.requests[before + 1 :]
            assert len(followed) == 1 and not REDIRECT_PATH.match(followed[0]), (location, followed)
    assert {(a.host, a.port) for a in guard.from_this_thread()} == {(SERVER_HOST, server.port)}
    assert canary.connections == 0


# -- proxies from the environment ---------------------------------------------------------

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@pytest.fixture
def proxies_at_the_canary(monkeypatch, canary) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.setenv(name, f"http://127.0.0.1:{canary.port}")
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "nothing.example")  # set, but not covering the target


def test_the_probe_goes_direct_whatever_the_proxy_variables_say(config, server, canary, guard, proxies_at_the_canary):
    settings = settings_for(config)
    assert probe(server.url("/ok"), settings).ok is True
    assert probe(server.redirecting(302, "/after-redirect"), settings).ok is True
    # A request through a proxy would carry an absolute URL as its target, and reach the canary.
    assert server.requests[0] == "/ok" and server.requests[-1] == "/after-redirect"
    assert {(a.host, a.port) for a in guard.from_this_thread()} == {(SERVER_HOST, server.port)}
    assert canary.connections == 0


# -- the real check path: rows that never passed validation ---------------------------------


@pytest.fixture
def app(make_app, redis_url):
    """The app with the server's address allow-listed, quick retries and a small pool."""
    yield from fresh(
        make_app(
            ALLOWED_PRIVATE_NETWORKS=(SERVER_NETWORK,),
            CHECK_TIMEOUT_SECONDS=3.0,
            CHECK_RETRY_INTERVALS=(0, 0),
            CHECK_THREADS=8,
        ),
        redis_url,
    )


def save_unvalidated(team_id, urls: list[str]) -> dict:
    """Write endpoints straight to the database, as rows saved before a policy change would be."""
    with system_scope():
        rows = {url: Endpoint(tenant_id=team_id, url=url, name=f"legacy {n}", failure_threshold=1)
                for n, url in enumerate(urls)}
        db.session.add_all(rows.values())
        db.session.commit()
        return {url: row.id for url, row in rows.items()}


def run_checks() -> None:
    """The scheduler's tick, then a real worker in burst mode, as in production."""
    from monitorapp.monitoring.scheduler import schedule_endpoint_checks
    from tests.monitoring.conftest import run_worker

    schedule_endpoint_checks()
    run_worker()


def results_by_endpoint() -> dict:
    db.session.expire_all()
    rows = db.session.execute(select(CheckResult).execution_options(system_scope=True)).scalars()
    found: dict = {}
    for row in rows:
        found.setdefault(row.endpoint_id, []).append(row)
    return found


def test_rows_saved_before_a_policy_change_fail_their_check_without_connecting(
    ctx, server, canary, guard, proxies_at_the_canary
):
    team = make_team("Legacy")
    db.session.commit()
    hostile = [url for url in corpus(canary.port) if len(url) <= MAX_URL_LENGTH]
    ids = save_unvalidated(team.id, [*hostile, server.url("/ok")])
    run_checks()

    results = results_by_endpoint()
    control = results[ids[server.url("/ok")]]
    assert [(r.ok, r.status_code) for r in control] == [(True, 200)]  # the path really checks
    names = {f"http://{name}:{canary.port}/" for name in NAMES}
    for url in hostile:
        checks = results.get(ids[url])
        assert checks, f"no check recorded for {url!r}"
        last = checks[-1]
        assert (last.ok, last.status_code) == (False, None), url
        if last.error_kind == "dns":
            assert url in names and unresolvable_here(url), url
        else:
            assert last.error_kind in POLICY_KINDS and len(checks) == 1, (url, last.error_kind)  # not retried
    with system_scope():
        endpoints = db.session.execute(select(Endpoint).where(Endpoint.id.in_([ids[url] for url in hostile]))).scalars()
        assert {(e.status, e.last_error is not None) for e in endpoints} == {("down", True)}
    assert server.requests == ["/ok"]
    assert guard.to_port(canary.port) == [] and canary.connections == 0
    record("outbound corpus refused at check time", len(hostile))


def test_an_endpoint_is_refused_once_the_allow_list_no_longer_opens_it(
    ctx, make_app, client, alice, server, canary, guard
):
    url = server.url("/health")
    created = client.post(
        "/api/endpoints/", json={"url": url}, headers={"Authorization": f"Bearer {make_token(alice)}"}
    )
    assert created.status_code == 201, created.get_json()
    # The self-hoster takes 127.0.0.2/32 off the allow-list; the queued first check runs after that.
    later = make_app(ALLOWED_PRIVATE_NETWORKS=(), CHECK_RETRY_INTERVALS=(0, 0), CHECK_THREADS=4)
    with later.app_context():
        run_checks()
        [check] = [r for rows in results_by_endpoint().values() for r in rows]
    assert (check.ok, check.status_code, check.error_kind) == (False, None, "blocked")
    assert server.requests == []
    assert guard.to_port(server.port) == [] and canary.connections == 0
