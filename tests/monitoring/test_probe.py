"""The probe against real local servers: answers, redirects, failures, limits, TLS."""

from __future__ import annotations

import ssl
import time

import pytest
import trustme

from monitorapp.monitoring.probe import probe
from tests.monitoring.conftest import probe_settings


def test_it_reports_a_200_as_up_with_latency(server):
    result = probe(server.url("/ok"), probe_settings())
    assert result.ok is True
    assert result.status_code == 200
    assert result.error_kind is None
    assert 0 <= result.latency_ms < 1000


def test_it_sends_the_configured_user_agent_and_the_host_name(server):
    probe(server.url("/ok", host="monitor.test"), probe_settings(resolver=lambda host, port: ["127.0.0.1"]))
    path, headers = server.requests[-1]
    assert headers["User-Agent"] == "monitorapp-test/1"
    assert headers["Host"] == f"monitor.test:{server.port}"


def test_it_follows_a_redirect_to_the_final_answer(server):
    result = probe(server.url("/moved"), probe_settings())
    assert result.ok is True
    assert result.status_code == 200
    assert [path for path, _ in server.requests] == ["/moved", "/ok"]


def test_it_stops_a_redirect_loop_after_the_configured_hops(server):
    result = probe(server.url("/loop"), probe_settings(max_redirects=3))
    assert result.ok is False
    assert result.error_kind == "too_many_redirects"
    assert len(server.requests) == 4  # the URL and three redirects


def test_it_reports_a_500_as_down_with_its_status(server):
    result = probe(server.url("/error"), probe_settings())
    assert result.ok is False
    assert result.status_code == 500
    assert result.error_kind == "http_status"
    assert result.message == "HTTP 500 Internal Server Error."


def test_it_gives_up_on_a_slow_server_at_the_deadline(server):
    started = time.monotonic()
    result = probe(server.url("/slow"), probe_settings(timeout=1.0))
    assert result.error_kind == "timeout"
    assert result.is_network_failure
    assert time.monotonic() - started < 2


def test_it_reports_a_refused_connection(refused_port):
    result = probe(f"http://127.0.0.1:{refused_port}/", probe_settings())
    assert result.ok is False
    assert result.error_kind == "connect"
    assert result.is_network_failure


def test_it_tries_the_next_checked_address_when_one_refuses(server, refused_port):
    # The name resolves to two allowed addresses; the first refuses.
    resolver = lambda host, port: ["127.0.0.2", "127.0.0.1"]  # noqa: E731
    result = probe(server.url("/ok", host="monitor.test"), probe_settings(resolver=resolver))
    assert result.ok is True


def test_it_reports_a_dns_failure(server):
    from monitorapp.monitoring.policy import ResolutionFailed

    def no_such_host(host, port):
        raise ResolutionFailed("NXDOMAIN")

    result = probe("http://no-such-host.test/", probe_settings(resolver=no_such_host))
    assert result.error_kind == "dns"
    assert result.is_network_failure


@pytest.mark.parametrize("path", ["/huge", "/huge-unannounced"])
def test_it_refuses_a_body_over_the_cap(server, path):
    result = probe(server.url(path), probe_settings(max_body_bytes=1024 * 1024))
    assert result.ok is False
    assert result.error_kind == "body_too_large"
    assert result.message == "The response body is larger than 1 MiB."


@pytest.mark.parametrize("path", ["/trickle-headers", "/trickle-body"])
def test_it_bounds_a_server_that_trickles_forever_by_the_deadline(server, path):
    started = time.monotonic()
    result = probe(server.url(path), probe_settings(timeout=1.0))
    elapsed = time.monotonic() - started
    assert result.error_kind == "timeout"
    assert elapsed < 2.0, elapsed


def test_it_rejects_a_redirect_to_a_url_it_cannot_monitor(server):
    result = probe(server.url("/to-ftp"), probe_settings())
    assert result.error_kind == "invalid_url"


def test_it_keeps_urls_secrets_out_of_the_message(refused_port):
    result = probe(f"http://127.0.0.1:{refused_port}/?token=s3cret", probe_settings())
    assert "s3cret" not in (result.message or "")
    assert "127.0.0.1" not in (result.message or "")


def test_it_opens_a_new_connection_for_every_check(make_server):
    # The server keeps connections alive; a probe that reused one would not measure a connect.
    ports = []
    server = make_server({"/ok": lambda h: (ports.append(h.client_address[1]), h.reply(200))})
    for _ in range(3):
        assert probe(server.url("/ok"), probe_settings()).ok is True
    assert len(set(ports)) == 3, ports


def test_it_reports_a_body_cut_short_as_a_closed_connection(make_server):
    def short(handler):
        handler.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\nonly this")
        handler.close_connection = True

    result = probe(make_server({"/short": short}).url("/short"), probe_settings())
    assert (result.ok, result.error_kind) == (False, "connect")
    assert result.message == "The connection was closed before a complete response."


def test_it_reports_an_answer_that_is_not_http(make_server):
    def not_http(handler):
        handler.wfile.write(b"SSH-2.0-OpenSSH_9.6\r\n")
        handler.close_connection = True

    result = probe(make_server({"/": not_http}).url("/"), probe_settings())
    assert (result.ok, result.error_kind) == (False, "protocol")
    assert not result.is_network_failure


def test_it_refuses_a_redirect_whose_location_is_not_utf8(make_server):
    def bad_location(handler):
        handler.wfile.write(b"HTTP/1.1 302 Found\r\nLocation: /\xff\xfe\r\nContent-Length: 0\r\n\r\n")
        handler.close_connection = True

    result = probe(make_server({"/moved": bad_location}).url("/moved"), probe_settings())
    assert (result.ok, result.error_kind) == (False, "invalid_url")


# -- TLS ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


def tls_server(make_server, ca, hostname: str):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert(hostname).configure_cert(context)
    return make_server(ssl_context=context)


def test_it_refuses_a_self_signed_or_unknown_certificate(make_server, ca):
    # The test CA is self-signed and, unconfigured, trusted by nobody.
    tls = tls_server(make_server, ca, "monitor.test")
    result = probe(tls.url("/ok", host="monitor.test"), probe_settings(resolver=lambda host, port: ["127.0.0.1"]))
    assert result.ok is False
    assert result.error_kind == "tls"


def test_it_accepts_a_certificate_from_a_ca_trusted_by_configuration(make_server, ca, tmp_path):
    tls = tls_server(make_server, ca, "monitor.test")
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    settings = probe_settings(resolver=lambda host, port: ["127.0.0.1"], ca_bundle=str(bundle))
    result = probe(tls.url("/ok", host="monitor.test"), settings)
    assert result.ok is True, result
    assert result.status_code == 200


def test_it_verifies_the_certificate_against_the_host_name_not_the_address(make_server, ca, tmp_path):
    tls = tls_server(make_server, ca, "other.test")
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    settings = probe_settings(resolver=lambda host, port: ["127.0.0.1"], ca_bundle=str(bundle))
    result = probe(tls.url("/ok", host="monitor.test"), settings)
    assert result.error_kind == "tls"


@pytest.mark.parametrize("path", ["/trickle-headers", "/trickle-body"])
def test_it_bounds_a_tls_server_that_trickles_forever_by_the_deadline(make_server, ca, tmp_path, path):
    # The watchdog must cut the TLS socket, not only the TCP one it was made from.
    tls = tls_server(make_server, ca, "monitor.test")
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    settings = probe_settings(resolver=lambda host, port: ["127.0.0.1"], ca_bundle=str(bundle), timeout=1.0)
    started = time.monotonic()
    result = probe(tls.url(path, host="monitor.test"), settings)
    elapsed = time.monotonic() - started
    assert result.error_kind == "timeout"
    assert elapsed < 2.0, elapsed
