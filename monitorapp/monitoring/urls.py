"""Monitored URLs: the one place they are parsed, checked and normalised.

The dashboard form, the JSON API and the probe (for every redirect hop) call
these functions, so a URL means the same thing everywhere:

- `normalise_url(raw)` checks the shape of a URL without touching the
  network and returns its normal form: lower-case scheme and host, the host
  in IDNA (punycode) form, default port dropped, an empty path written `/`,
  the fragment dropped (it never reaches the server) and non-ASCII in the
  path or query percent-encoded. Two spellings of one URL normalise equal,
  which is what the per-team uniqueness check compares.
- `validate_url(raw, ...)` also applies the outbound-request policy: the
  host is resolved once and every address must be allowed.

Both raise `UrlError` with a message meant for the person who typed the URL.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

import idna

from monitorapp.monitoring.policy import (
    BlockedAddress,
    IPNetwork,
    ResolutionFailed,
    Resolver,
    resolve_allowed,
    system_resolver,
)

MAX_URL_LENGTH = 2048
SCHEMES = {"http": 80, "https": 443}
# RFC 3986 characters that may stay as they are in a path or query.
_SAFE = "/?#[]@!$&'()*+,;=-._~:%"
_WHITESPACE_OR_CONTROL = re.compile(r"[\x00-\x20\x7f-\x9f\s]")
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$", re.IGNORECASE)


class UrlError(ValueError):
    """A URL that cannot be monitored; the message says why, for the user."""

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else "Enter a valid URL."


@dataclass(frozen=True)
class ParsedUrl:
    """A normalised URL and the parts the probe connects with."""

    url: str
    scheme: str
    host: str  # ASCII: a lower-case IDNA name, or an IP address without brackets
    port: int
    is_ip_literal: bool


def parse_url(raw: str) -> ParsedUrl:
    """Check the shape of `raw` (no DNS) and return it normalised, in parts."""
    if not isinstance(raw, str):
        raise UrlError("Enter the URL as text.")
    text = raw.strip()
    if not text:
        raise UrlError("Enter a URL.")
    if len(raw) > MAX_URL_LENGTH:
        raise UrlError(f"A URL can be at most {MAX_URL_LENGTH} characters long.")
    if _WHITESPACE_OR_CONTROL.search(text):
        raise UrlError("A URL cannot contain spaces or control characters.")
    try:
        parts = urlsplit(text)
    except ValueError:
        raise UrlError("Enter a valid URL, for example https://example.com/health.") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        if not parts.scheme:
            raise UrlError("Start the URL with http:// or https://.")
        raise UrlError(f"Only http and https URLs can be monitored, not {parts.scheme[:20]}.")
    if "@" in parts.netloc:
        raise UrlError("A URL with a user name or password in it cannot be monitored.")
    host, is_ip = _normal_host(parts.netloc, parts.hostname)
    port = _port(parts, scheme)
    netloc = f"[{host}]" if ":" in host else host
    if port != SCHEMES[scheme]:
        netloc += f":{port}"
    path = quote(parts.path, safe=_SAFE) or "/"
    query = quote(parts.query, safe=_SAFE)
    url = urlunsplit((scheme, netloc, path, query, ""))
    if len(url) > MAX_URL_LENGTH:
        raise UrlError(f"A URL can be at most {MAX_URL_LENGTH} characters long.")
    return ParsedUrl(url=url, scheme=scheme, host=host, port=port, is_ip_literal=is_ip)


def normalise_url(raw: str) -> str:
    """The normal form of `raw`, or `UrlError` (no DNS lookup)."""
    return parse_url(raw).url


def validate_url(
    raw: str,
    *,
    allowed_networks: Iterable[IPNetwork] = (),
    resolver: Resolver = system_resolver,
) -> str:
    """The normal form of `raw` if the server may monitor it, else `UrlError`.

    The host is resolved once; every address it names must pass the
    outbound-request policy, with `allowed_networks` opened.
    """
    parsed = parse_url(raw)
    check_destination(parsed, allowed_networks=allowed_networks, resolver=resolver)
    return parsed.url


def check_destination(
    parsed: ParsedUrl,
    *,
    allowed_networks: Iterable[IPNetwork] = (),
    resolver: Resolver = system_resolver,
) -> list[str]:
    """Resolve the host once and return its addresses, or `UrlError` if any is blocked."""
    try:
        return resolve_allowed(parsed.host, parsed.port, tuple(allowed_networks), resolver)
    except BlockedAddress:
        raise UrlError(
            f"{parsed.host} is a private, local or reserved address; monitors may only reach public addresses."
        ) from None
    except ResolutionFailed:
        raise UrlError(f"The host name {parsed.host} could not be resolved. Check the spelling.") from None


def _normal_host(netloc: str, hostname: str | None) -> tuple[str, bool]:
    """The host in normal form and whether it is an IP address."""
    if not hostname:
        raise UrlError("The URL has no host name.")
    if netloc.startswith("["):
        try:
            address = ipaddress.IPv6Address(hostname.split("%", 1)[0])
        except ValueError:
            raise UrlError("The IPv6 address in the URL is not valid.") from None
        if "%" in hostname:
            raise UrlError("An IPv6 address with a zone cannot be monitored.")
        return address.compressed, True
    try:
        # Map first (UTS #46: case, full-width and circled digits, ideographic dots), so the
        # checks below see the host a resolver would: "①②⑦.①" is 127.1, "example.com。" has a root dot.
        host = idna.uts46_remap(hostname, std3_rules=False)
    except (idna.IDNAError, UnicodeError):
        raise UrlError("The host name in the URL is not valid.") from None
    host = host[:-1] if host.endswith(".") else host  # "example.com." is example.com
    labels = host.split(".")
    if not labels[-1]:  # "example.com..", "."
        raise UrlError("The host name in the URL is not valid.")
    if _NUMERIC_LABEL.match(labels[-1]):
        # Browsers and resolvers read "127.1", "2130706433" and "0x7f.0.0.1" as
        # IPv4 addresses; accept only the plain dotted form, so what the user
        # sees is what the server connects to.
        try:
            return str(ipaddress.IPv4Address(host)), True
        except ValueError:
            raise UrlError(
                "The IP address in the URL is not valid; write it as four numbers, like 192.0.2.1."
            ) from None
    try:
        ascii_host = idna.encode(host, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        raise UrlError("The host name in the URL is not valid.") from None
    if len(ascii_host) > 253:
        raise UrlError("The host name in the URL is too long.")
    return ascii_host.lower(), False


def _port(parts, scheme: str) -> int:
    try:
        port = parts.port
    except ValueError:
        raise UrlError("The port in the URL must be a number from 1 to 65535.") from None
    if port is None:  # none given, or an empty one ("example.com:")
        return SCHEMES[scheme]
    if not 1 <= port <= 65535:
        raise UrlError("The port in the URL must be a number from 1 to 65535.")
    return port
