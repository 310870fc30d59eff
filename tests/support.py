"""Test helpers (not fixtures): migrations, a recording dispatcher, an in-process drain,
source run in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from orders.config import Settings
from orders.infra.gateway import SimulatedGateway
from orders.infra.mail import Mailer
from orders.pipeline.context import PipelineContext
from orders.pipeline.jobs import JobRef
from orders.pipeline.leases import Claim, claim
from orders.pipeline.runner import run


def migrate_database(url: str, data_dir: Path) -> None:
    """Apply the real Alembic migrations (the same ones the release step runs)."""
    from flask_migrate import upgrade

    from app import create_app

    app = create_app({"database_url": url, "data_dir": data_dir, "DISPATCH": RecordingDispatch()})
    with app.app_context():
        upgrade()
        from orders.web.extensions import db

        db.engine.dispose()


class RecordingDispatch:
    """A dispatcher that remembers what would have gone to the broker."""

    def __init__(self, fail: bool = False) -> None:
        self.refs: list[JobRef] = []
        self.fail = fail
        self._lock = threading.Lock()

    def __call__(self, refs: Sequence[JobRef]) -> list[str]:
        if self.fail:
            return [r.id for r in refs]
        with self._lock:
            self.refs.extend(refs)
        return []

    def take(self) -> list[JobRef]:
        with self._lock:
            refs, self.refs = self.refs, []
        return refs

    def types(self) -> list[str]:
        return [r.type for r in self.refs]


class Drain:
    """Run dispatched jobs in this process, as a consumer would (delays ignored)."""

    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        dispatched: RecordingDispatch,
        mailer: Mailer | None = None,
        *,
        batched: bool = False,
    ) -> None:
        self.sessions = sessions
        self.batched = batched  # the jobs run as the consumers run them
        if batched:  # the payments rate limit is the task's (never here): off, charges batch
            settings = replace(settings, payments_rate_limit=0)
        self.dispatched = dispatched
        self.gateway = SimulatedGateway(Path(settings.extra["SIM_GATEWAY_LEDGER"]))
        self.ctx = PipelineContext(
            settings=settings,
            gateway=self.gateway,
            dispatch=dispatched,
            mailer=mailer,
            sleep=lambda _s: None,
            worker="test-worker",
        )
        self.outcomes: list[tuple[str, str]] = []

    def run(self, job_id: str, job_type: str | None = None) -> str:
        """Run one message; a batch's outcomes are joined by commas ("": none claimed)."""
        with self.sessions() as session:
            batch_type = job_type if self.batched else None
            outcomes = run(session, [job_id], self.ctx, job_type=batch_type)
            return ",".join(outcomes) if outcomes else ("" if batch_type else "skipped")

    def __call__(self, limit: int = 200) -> list[tuple[str, str]]:
        """Run until nothing is left to run; return (job type, outcome) pairs."""
        ran: list[tuple[str, str]] = []
        for _ in range(limit):
            refs = self.dispatched.take()
            if not refs:
                break
            for ref in refs:
                ran.append((ref.type, self.run(ref.id, ref.type)))
        self.outcomes += ran
        return ran


def take(
    session: Session, job_id: str, worker: str, lease_seconds: int, *, unless_paused: bool = False
) -> Claim | None:
    """Claim one job as a consumer would, and commit the claim (None: not claimable)."""
    claims = claim(session, [job_id], worker, lease_seconds, unless_paused=unless_paused)
    session.commit()
    return claims[0] if claims else None


def run_python(source: str, *args: str) -> str:
    """Run ``source`` in a fresh interpreter at the project's root (one that gevent may
    patch, as the web and the consumers are); its output, stripped. Fails on an error."""
    out = subprocess.run(
        [sys.executable, "-c", source, *args],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()
