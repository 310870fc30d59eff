"""How many progress streams this web process holds open, in all and per client.

An open stream holds a connection (and, with gthread workers, a thread) for as long
as it lasts; without a cap a few clients could hold every thread and the server
would answer nothing else. Past ``SSE_MAX_STREAMS`` (the process) or
``SSE_MAX_STREAMS_PER_CLIENT`` the stream is refused with 429; the client may poll
``GET /api/orders/status/<jobId>`` instead.
"""

from __future__ import annotations

import os
import sys
import threading

from orders.config import Settings
from orders.errors import RateLimited

RETRY_AFTER_SECONDS = 5


class StreamSlots:
    """Counts open streams; ``per_client`` 0 means no cap per client."""

    def __init__(self, per_process: int, per_client: int) -> None:
        self.per_process = per_process
        self.per_client = per_client
        self._open: dict[str, int] = {}
        self._total = 0
        self._lock = threading.Lock()

    def take(self, client: str) -> None:
        """Count one more stream for ``client``, or raise :class:`RateLimited`."""
        with self._lock:
            mine = self._open.get(client, 0)
            if self._total >= self.per_process:
                raise RateLimited(
                    f"this server holds its maximum of {self.per_process} live progress streams; "
                    "poll GET /api/orders/status/<jobId> or retry later",
                    RETRY_AFTER_SECONDS,
                    code="too_many_streams",
                )
            if self.per_client and mine >= self.per_client:
                raise RateLimited(
                    f"this client already has {mine} live progress streams, the most allowed; "
                    "close one, or poll GET /api/orders/status/<jobId>",
                    RETRY_AFTER_SECONDS,
                    code="too_many_streams",
                )
            self._open[client] = mine + 1
            self._total += 1

    def give_back(self, client: str) -> None:
        with self._lock:
            left = self._open.get(client, 0) - 1
            if left > 0:
                self._open[client] = left
            else:
                self._open.pop(client, None)
            self._total = max(0, self._total - 1)

    def open(self) -> int:
        with self._lock:
            return self._total


def default_per_process() -> int:
    """Under gevent, 1,000 (measured: 3,000 streams held at ~10 % of a core per 1,000);
    under threads, half of gunicorn's threads, so the other half still serve requests."""
    gevent = sys.modules.get("gevent.monkey")
    if gevent is not None and gevent.is_module_patched("threading"):
        return 1000
    threads = os.environ.get("GUNICORN_THREADS", "16")
    return max(1, int(threads) // 2) if threads.isascii() and threads.isdigit() else 8


def build_stream_slots(settings: Settings) -> StreamSlots:
    return StreamSlots(
        settings.sse_max_streams or default_per_process(), settings.sse_max_streams_per_client
    )
