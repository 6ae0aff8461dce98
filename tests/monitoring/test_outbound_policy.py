"""The outbound-request policy, enforced by the probe at connect time."""

from __future__ import annotations

import pytest

from monitorapp.monitoring.policy import is_allowed_address
from monitorapp.monitoring.probe import probe
from tests.monitoring.conftest import LOOPBACK, probe_settings

# One address from every blocked range, by what it is.
BLOCKED = {
    "loopback": "127.0.0.1",
    "rfc1918-10": "10.1.2.3",
    "rfc1918-172": "172.16.5.4",
    "rfc1918-192": "192.168.1.1",
    "link-local": "169.254.10.10",
    "cloud-metadata": "169.254.169.254",
    "cgnat": "100.64.0.1",
    "multicast": "224.0.0.251",
    "reserved": "240.0.0.1",
    "broadcast": "255.255.255.255",
    "unspecified": "0.0.0.0",
    "this-network": "0.1.2.3",
    "test-net": "192.0.2.10",
    "benchmarking": "198.18.0.1",
    "ipv6-loopback": "::1",
    "ipv6-unspecified": "::",
    "ipv4-mapped": "::ffff:127.0.0.1",
    "ipv4-mapped-public": "::ffff:8.8.8.8",
    "ipv4-compatible": "::127.0.0.1",
    "nat64": "64:ff9b::a00:1",
    "6to4": "2002:a00:1::1",
    "ula": "fd12:3456::1",
    "ipv6-link-local": "fe80::1",
    "site-local": "fec0::1",
    "ipv6-multicast": "ff02::1",
    "documentation": "2001:db8::1",
}


@pytest.mark.parametrize("address", BLOCKED.values(), ids=BLOCKED.keys())
def test_it_refuses_a_host_name_resolving_to_a_blocked_address(address):
    calls = []

    def resolver(host, port):
        calls.append(host)
        return [address]

    result = probe("http://innocent.example/", probe_settings(allowed_networks=(), resolver=resolver))
    assert result.error_kind == "blocked"
    assert result.ok is False
    assert calls == ["innocent.example"]


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1/", "http://10.0.0.1/", "http://169.254.169.254/latest/", "http://[::1]/", "http://[fd00::1]/"]
)
def test_it_refuses_a_blocked_address_written_in_the_url(url):
    result = probe(url, probe_settings(allowed_networks=()))
    assert result.error_kind == "blocked"


def test_it_refuses_a_name_with_one_public_and_one_private_answer(server):
    # 127.0.0.1 is allowed here (the test's allow-list), 10.0.0.5 is not.
    resolver = lambda host, port: ["127.0.0.1", "10.0.0.5"]  # noqa: E731
    result = probe(server.url("/ok", host="mixed.example"), probe_settings(resolver=resolver))
    assert result.error_kind == "blocked"
    assert server.requests == []


def test_it_connects_to_the_address_it_checked_so_rebinding_fails(server):
    """A rebinding resolver answers an allowed address first, then a blocked one."""
    answers = [["127.0.0.1"], ["169.254.169.254"]]
    calls = []

    def rebinding(host, port):
        calls.append(host)
        return answers[min(len(calls) - 1, 1)]

    result = probe(server.url("/ok", host="rebind.example"), probe_settings(resolver=rebinding))
    assert result.ok is True
    assert calls == ["rebind.example"]  # resolved once; the connection used that answer
    assert len(server.requests) == 1


def test_it_refuses_a_redirect_to_a_blocked_address(server):
    result = probe(server.url("/to-metadata"), probe_settings())
    assert result.error_kind == "blocked"
    assert result.message.startswith("Redirected to a private or reserved address")


def test_it_opens_only_the_allow_listed_networks():
    assert is_allowed_address("127.0.0.1", LOOPBACK)
    assert not is_allowed_address("127.0.0.1")
    assert not is_allowed_address("10.0.0.1", LOOPBACK)
    # An allow-listed IPv4 network is not reachable through an IPv6 disguise.
    assert not is_allowed_address("::ffff:127.0.0.1", LOOPBACK)
    assert is_allowed_address("8.8.8.8")


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_it_ignores_proxy_variables_in_the_environment(server, listener, monkeypatch, scheme):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(name, listener.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    url = server.url("/ok") if scheme == "http" else server.url("/ok").replace("http://", "https://")
    result = probe(url, probe_settings())
    if scheme == "http":
        assert result.ok is True
    else:
        assert result.error_kind in {"tls", "connect"}  # the plain server cannot speak TLS, but no proxy saw it
    assert listener.accepted == 0
