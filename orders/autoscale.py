"""Run and scale the queue consumers on this machine from queue depth.

    python -m orders.autoscale [orders payments notifications]

Starts ``AUTOSCALE_MIN`` consumers per queue (each the Procfile's own
``python -m orders.worker <queue>``), then every ``AUTOSCALE_INTERVAL_SECONDS``
reads each queue's depth from the broker and applies the seed's rule
(:func:`orders.domain.scaling.recommend_workers`: depth > ``AUTOSCALE_UP_DEPTH``
adds two, depth < ``AUTOSCALE_DOWN_DEPTH`` removes one, within min..max). A surplus
consumer gets SIGTERM: it runs with ``-g TERM -t 30``, so it finishes its running
steps and exits. Each change is logged and recorded in ``scaling_decisions``.
SIGTERM/SIGINT to the supervisor stops every consumer the same graceful way.
Run the scheduler separately (exactly one in the deployment). Never imports Flask.
"""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from orders.config import Settings
from orders.db import make_engine, make_session_factory, session_scope
from orders.domain.scaling import recommend_workers
from orders.ops.scaling import record_scaling_decision
from orders.pipeline.jobtypes import QUEUES

log = logging.getLogger("orders.autoscale")


def consumer_command(queue: str) -> list[str]:
    return [sys.executable, "-m", "orders.worker", queue]


@dataclass
class Supervisor:
    settings: Settings
    queues: Sequence[str]
    depth_of: Callable[[str], int]
    sessions: sessionmaker[Session]
    command: Callable[[str], list[str]] = consumer_command
    host: str = field(default_factory=socket.gethostname)
    desired: dict[str, int] = field(default_factory=dict)
    running: dict[str, list[subprocess.Popen[bytes]]] = field(default_factory=dict)
    stopping: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self) -> None:
        for queue in self.queues:
            self.desired[queue] = self.settings.autoscale_min
            self.running[queue] = []
        self.converge()

    def tick(self) -> None:
        """Read every queue's depth, apply the rule, record changes, converge."""
        s = self.settings
        for queue in self.queues:
            try:
                depth = self.depth_of(queue)
            except Exception as exc:  # broker away: keep what we have
                log.warning("cannot read depth of %s: %s", queue, exc)
                continue
            before = self.desired[queue]
            after = recommend_workers(
                depth,
                before,
                s.autoscale_min,
                s.autoscale_max,
                up_at=s.autoscale_up_depth,
                down_at=s.autoscale_down_depth,
            )
            if after != before:
                self.record(queue, depth, before, after)
                self.desired[queue] = after
        self.converge()

    def record(self, queue: str, depth: int, before: int, after: int) -> None:
        s = self.settings
        if after > before:
            reason = f"depth {depth} > {s.autoscale_up_depth}: scale up"
        else:
            reason = f"depth {depth} < {s.autoscale_down_depth}: scale down"
        log.info("autoscale %s: %d -> %d consumers (%s)", queue, before, after, reason)
        try:
            with session_scope(self.sessions) as session:
                record_scaling_decision(
                    session,
                    queue=queue,
                    depth=depth,
                    before=before,
                    after=after,
                    host=self.host,
                    reason=reason,
                )
                session.commit()
        except Exception:  # the decision stands; only its record is lost
            log.exception("could not record the scaling decision for %s", queue)

    def converge(self) -> None:
        """Replace consumers that died; start or gracefully stop to match ``desired``."""
        self.stopping = [p for p in self.stopping if p.poll() is None]
        for queue, processes in self.running.items():
            for dead in [p for p in processes if p.poll() is not None]:
                log.warning("%s consumer %d exited with %s", queue, dead.pid, dead.returncode)
                processes.remove(dead)
            while len(processes) < self.desired[queue]:
                process = subprocess.Popen(self.command(queue))
                log.info("started %s consumer %d", queue, process.pid)
                processes.append(process)
            while len(processes) > self.desired[queue]:
                process = processes.pop()
                log.info("stopping %s consumer %d (SIGTERM, graceful)", queue, process.pid)
                process.send_signal(signal.SIGTERM)
                self.stopping.append(process)

    def shutdown(self, timeout: float = 40) -> None:
        for processes in self.running.values():
            for process in processes:
                process.send_signal(signal.SIGTERM)
            self.stopping += processes
            processes.clear()
        for process in self.stopping:
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
        self.stopping = []

    def counts(self) -> dict[str, int]:
        return {queue: len(processes) for queue, processes in self.running.items()}


def main(args: list[str]) -> None:
    from orders.wiring import configure_logging

    configure_logging()
    queues = args or list(QUEUES)
    unknown = sorted(set(queues) - set(QUEUES))
    if unknown:
        sys.exit(f"usage: python -m orders.autoscale [{' '.join(QUEUES)}]; unknown: {unknown}")
    settings = Settings.from_env()
    import tasks  # the Huey instances: depth comes from the broker itself

    supervisor = Supervisor(
        settings=settings,
        queues=queues,
        depth_of=lambda queue: int(tasks.QUEUES[queue].pending_count()),
        sessions=make_session_factory(make_engine(settings)),
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    supervisor.start()
    log.info("autoscaler running for %s: %s", ", ".join(queues), supervisor.counts())
    while not stop.wait(settings.autoscale_interval_seconds):
        supervisor.tick()
    log.info("autoscaler stopping; consumers get SIGTERM and finish their steps")
    supervisor.shutdown()


if __name__ == "__main__":
    main(sys.argv[1:])
