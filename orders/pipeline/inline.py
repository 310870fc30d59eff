"""Run a checkout's jobs in the calling thread: the seed's synchronous flow.

Used by the ``sync`` overload policy (the seed's graceful degradation: process
inline when the queue can't take work) and by the sync-vs-async benchmark. It is
the same runner and the same steps as the workers use; only the dispatcher
differs: follow-up jobs are collected and run here, retries wait here.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session, sessionmaker

from orders.pipeline.context import PipelineContext
from orders.pipeline.jobs import JobRef
from orders.pipeline.runner import run_job


class InlineDispatch:
    def __init__(self) -> None:
        self.pending: list[JobRef] = []

    def __call__(self, refs: Sequence[JobRef]) -> list[str]:
        self.pending.extend(refs)
        return []


def run_inline(
    sessions: sessionmaker[Session],
    ctx: PipelineContext,
    refs: Sequence[JobRef],
    *,
    include: frozenset[str] | None = None,
    max_jobs: int = 100,
) -> list[JobRef]:
    """Run ``refs`` and their follow-ups here. Jobs whose type is not in ``include``
    (when given) are returned instead of run, for the caller to dispatch."""
    inline = InlineDispatch()
    local = PipelineContext(
        settings=ctx.settings,
        gateway=ctx.gateway,
        dispatch=inline,
        mailer=ctx.mailer,
        publish=ctx.publish,
        sleep=ctx.sleep,
        worker=ctx.worker,
    )
    inline.pending.extend(refs)
    leftover: list[JobRef] = []
    for _ in range(max_jobs):
        if not inline.pending:
            break
        ref = inline.pending.pop(0)
        if include is not None and ref.type not in include:
            leftover.append(ref)
            continue
        if ref.delay > 0:
            ctx.sleep(ref.delay)
        with sessions() as session:
            run_job(session, ref.id, local)
    return leftover + inline.pending
