"""Record and read the autoscaler's decisions (the ops dashboard shows them)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from orders.models import ScalingDecision


def record_scaling_decision(
    session: Session, *, queue: str, depth: int, before: int, after: int, host: str, reason: str
) -> ScalingDecision:
    """Add a decision to the session; the caller commits."""
    decision = ScalingDecision(
        queue=queue,
        depth=depth,
        workers_before=before,
        workers_after=after,
        host=host[:100],
        reason=reason[:200],
    )
    session.add(decision)
    return decision


def recent_scaling_decisions(session: Session, limit: int = 20) -> list[ScalingDecision]:
    """The newest decisions first."""
    query = select(ScalingDecision).order_by(ScalingDecision.id.desc()).limit(limit)
    return list(session.scalars(query))
