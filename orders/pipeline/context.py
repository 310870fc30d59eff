"""What a job needs from the outside world, handed in (so tests can swap the externals)."""

from __future__ import annotations

import os
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from orders.config import Settings
from orders.infra.gateway import PaymentGateway
from orders.infra.mail import Mailer
from orders.pipeline.calls import Callers
from orders.pipeline.jobs import Dispatch


def _no_publish(_public_id: str) -> None:
    return None


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class PipelineContext:
    settings: Settings
    gateway: PaymentGateway
    dispatch: Dispatch
    mailer: Mailer | None = None
    publish: Callable[[str], None] = _no_publish
    sleep: Callable[[float], None] = time.sleep
    # where a batch's calls run at once (orders.pipeline.calls); None: one after another
    callers: Callers | None = None
    worker: str = field(default_factory=worker_name)

    def simulate_step_latency(self, step: str | None = None) -> None:
        """The seed's simulated work for a non-payment step: ``validate``, ``order``,
        ``inventory`` or ``email`` (``SIM_<STEP>_LATENCY_MS``, else ``SIM_STEP_LATENCY_MS``),
        scaled by ``SIM_TIME_FACTOR``."""
        low, high = self.settings.step_latency_ms(step)
        if high > 0:
            self.sleep(random.uniform(low, high) / 1000)
