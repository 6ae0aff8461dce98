"""The transport interface, the registry of kinds, and what a notification says."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from monitorapp.models import NotificationChannel


class TransportError(Exception):
    """A send failed. `permanent` says a retry cannot help (a bad URL, a refused token)."""

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent


@dataclass(frozen=True)
class Notification:
    """What one event says, in words and as data; the same for every channel."""

    event: str  # opened, resolved, reminder, check_failed, test
    title: str
    body: str
    endpoint_name: str = ""
    endpoint_url: str = ""
    link: str = ""
    error: str | None = None
    since: str | None = None  # ISO 8601 UTC
    duration_seconds: int | None = None

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Notification:
        return cls(**{key: data.get(key) for key in cls.__dataclass_fields__ if key in data})


class Transport:
    """One kind of channel. Subclasses send; they never log the target."""

    kind: ClassVar[str]
    label: ClassVar[str]
    has_target: ClassVar[bool] = True  # a URL kept encrypted in the channel

    def validate_target(self, target: str) -> str:
        """Return the target to store, or raise ValueError with a message for the form."""
        return target

    def notify(self, channel: NotificationChannel, notification: Notification) -> None:
        raise NotImplementedError


KINDS: dict[str, Transport] = {}


def register(cls: type[Transport]) -> type[Transport]:
    """Class decorator: make `cls` the transport of its kind."""
    KINDS[cls.kind] = cls()
    return cls


def transport_for(kind: str) -> Transport:
    from monitorapp.notify import transports  # noqa: F401  (registers the built-in kinds)

    try:
        return KINDS[kind]
    except KeyError:
        raise TransportError(f"unknown channel kind {kind!r}", permanent=True) from None
