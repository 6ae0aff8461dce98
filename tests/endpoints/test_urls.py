"""monitoring/urls.py: the one place a monitored URL is checked and normalised."""

from __future__ import annotations

import ipaddress

import pytest

from monitorapp.monitoring.urls import UrlError, normalise_url, parse_url, validate_url


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("HTTPS://Example.COM", "https://example.com/"),
        ("https://example.com:443/a", "https://example.com/a"),
        ("http://example.com:80/", "http://example.com/"),
        ("http://example.com:8080/", "http://example.com:8080/"),
        ("https://example.com:/x", "https://example.com/x"),
        ("  https://example.com/health  ", "https://example.com/health"),
        ("https://example.com/path?b=2&a=1#section", "https://example.com/path?b=2&a=1"),
        ("https://Bücher.example/café?q=ü", "https://xn--bcher-kva.example/caf%C3%A9?q=%C3%BC"),
        ("https://example.com./", "https://example.com/"),
        ("http://[2001:4860:0:0::8888]:80/", "http://[2001:4860::8888]/"),
        ("https://example.com/a%20b", "https://example.com/a%20b"),
    ],
)
def test_it_normalises_without_dns(raw, normal):
    assert normalise_url(raw) == normal


def test_two_spellings_of_one_url_normalise_equal():
    assert normalise_url("HTTP://EXAMPLE.com:80") == normalise_url("http://example.com/#top")


def test_parse_gives_the_probe_its_parts():
    parsed = parse_url("https://Example.com:8443/x")
    assert (parsed.scheme, parsed.host, parsed.port, parsed.is_ip_literal) == ("https", "example.com", 8443, False)
    literal = parse_url("http://[::1]/")
    assert (literal.host, literal.port, literal.is_ip_literal) == ("::1", 80, True)


@pytest.mark.parametrize(
    "raw",
    [
        "", "   ", "example.com", "ftp://example.com/", "file:///etc/passwd", "https://user:pass@example.com/",
        "https://@example.com/", "https://example.com:65536/", "https://example.com:-1/", "http://exa mple.com/",
        "http://example.com/a\tb", "http://example.com/\x7f", "https://a..b/", "http://[::1/", "http://127.1/",
        "http://0177.0.0.1/", "http://[fe80::1%25eth0]/", "https://" + "a" * 64 + ".example/",
        "https://example.com/" + "x" * 2040,
    ],
)
def test_it_refuses_malformed_urls(raw):
    with pytest.raises(UrlError) as caught:
        normalise_url(raw)
    assert caught.value.message


def test_it_refuses_what_is_not_text():
    with pytest.raises(UrlError):
        normalise_url(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/", "http://10.1.2.3/", "http://172.16.0.1/", "http://192.168.0.1/",
        "http://169.254.169.254/", "http://100.64.0.1/", "http://0.0.0.0/", "http://224.0.0.1/",
        "http://255.255.255.255/", "http://[::1]/", "http://[fd00::1]/", "http://[fe80::1]/",
        "http://[::ffff:127.0.0.1]/", "http://[64:ff9b::a00:1]/", "http://localhost/",
    ],
)
def test_it_refuses_blocked_addresses(url):
    with pytest.raises(UrlError) as caught:
        validate_url(url)
    assert "private, local or reserved" in caught.value.message


def test_a_name_that_resolves_to_any_private_address_is_refused():
    def split_horizon(host, port):
        return ["93.184.216.34", "10.0.0.5"]

    with pytest.raises(UrlError):
        validate_url("https://mixed.example/", resolver=split_horizon)
    assert validate_url("https://public.example/", resolver=lambda host, port: ["93.184.216.34"]) == (
        "https://public.example/"
    )


def test_an_allowed_network_opens_only_itself():
    lan = (ipaddress.ip_network("192.168.1.0/24"),)
    assert validate_url("http://192.168.1.20:8080/", allowed_networks=lan) == "http://192.168.1.20:8080/"
    with pytest.raises(UrlError):
        validate_url("http://192.168.2.20/", allowed_networks=lan)
    with pytest.raises(UrlError):
        validate_url("http://[::ffff:192.168.1.20]/", allowed_networks=lan)


def test_a_name_that_does_not_resolve_is_refused():
    with pytest.raises(UrlError) as caught:
        validate_url("https://does-not-exist.invalid/")
    assert "could not be resolved" in caught.value.message
