"""RQ job functions for checks. (First version; the check-engine work replaces it.)"""

from __future__ import annotations

from monitorapp.monitoring.scheduler import Claim
from monitorapp.queues import CHECKS_QUEUE, get_queue


def enqueue_checks(claims: list[Claim]) -> None:
    """Enqueue one check per claim. Raises if Redis is unreachable."""
    queue = get_queue(CHECKS_QUEUE)
    queue.enqueue_many(
        [
            queue.prepare_data(ping_endpoint, args=(str(claim.endpoint_id), claim.claimed_at.isoformat()))
            for claim in claims
        ]
    )


def ping_endpoint(endpoint_id: str, claimed_at: str | None = None) -> None:
    """Check one endpoint (not yet implemented: the check engine fills this in)."""
    return None
