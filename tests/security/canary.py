"""Witnesses that a refused URL really made no connection.

`Canary` listens where the hostile URLs point (127.0.0.1 and ::1 at one
port) and counts what reaches it. `ConnectionGuard` sees every outgoing
connect of the process through Python's audit hook (`socket.connect`), so
it also witnesses attempts the canary could not see (10.0.0.1,
169.254.169.254, …); it lets loopback through and refuses anything else, so
a policy bug can never send a packet off this machine.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass


class Canary:
    """Listens on 127.0.0.1 and ::1 at one port and counts every connection."""

    def __init__(self) -> None:
        self.connections = 0
        self.sockets = []
        v4 = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        v4.bind(("127.0.0.1", 0))
        self.port = v4.getsockname()[1]
        self.sockets.append(v4)
        try:
            v6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            v6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            v6.bind(("::1", self.port))
            self.sockets.append(v6)
        except OSError:
            pass
        self.threads = []
        self.running = True
        for sock in self.sockets:
            sock.listen(64)
            sock.settimeout(0.05)
            thread = threading.Thread(target=self._accept, args=(sock,), daemon=True)
            thread.start()
            self.threads.append(thread)

    def _accept(self, sock) -> None:
        while self.running:
            try:
                connection, _ = sock.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            connection.close()

    def close(self) -> None:
        self.running = False
        for thread in self.threads:
            thread.join(timeout=2)
        for sock in self.sockets:
            sock.close()


@dataclass(frozen=True)
class Attempt:
    host: str
    port: int
    thread: int

    @property
    def is_loopback(self) -> bool:
        try:
            return ipaddress.ip_address(self.host.split("%", 1)[0]).is_loopback
        except ValueError:
            return False


class OutboundConnectionRefused(PermissionError):
    """The guard stopped a connection that would have left the machine."""


class ConnectionGuard:
    """Records every TCP/UDP connect of the process while active; refuses non-loopback ones."""

    def __init__(self) -> None:
        self.attempts: list[Attempt] = []
        self._lock = threading.Lock()

    def seen(self, address) -> None:
        host, port = str(address[0]), int(address[1])
        attempt = Attempt(host, port, threading.get_ident())
        with self._lock:
            self.attempts.append(attempt)
        if not attempt.is_loopback:
            raise OutboundConnectionRefused(f"the test guard refused a connection to {host}:{port}")

    def to_port(self, port: int) -> list[Attempt]:
        return [attempt for attempt in self.attempts if attempt.port == port]

    def from_this_thread(self) -> list[Attempt]:
        me = threading.get_ident()
        return [attempt for attempt in self.attempts if attempt.thread == me]

    @property
    def off_loopback(self) -> list[Attempt]:
        return [attempt for attempt in self.attempts if not attempt.is_loopback]


_ACTIVE: list[ConnectionGuard] = []
_INSTALLED = False


def _audit(event: str, args: tuple) -> None:
    if event != "socket.connect" or not _ACTIVE:
        return
    address = args[1]
    if isinstance(address, tuple) and len(address) >= 2:  # AF_INET / AF_INET6, not unix sockets
        for guard in list(_ACTIVE):
            guard.seen(address)


@contextlib.contextmanager
def guarded() -> Iterator[ConnectionGuard]:
    """A guard active for the block. Audit hooks cannot be removed, so one hook serves all guards."""
    global _INSTALLED
    if not _INSTALLED:
        sys.addaudithook(_audit)
        _INSTALLED = True
    guard = ConnectionGuard()
    _ACTIVE.append(guard)
    try:
        yield guard
    finally:
        _ACTIVE.remove(guard)
