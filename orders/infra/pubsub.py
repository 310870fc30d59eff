"""Wake-ups for live progress streams over Redis pub/sub.

Publishers (workers, and the web after its own commits) send a checkout's public id
on one channel (a batch of checkouts: their ids in one message, space-separated).
Each web process holds ONE subscription (a listener thread, or a greenlet under
gevent) and rings only the streams watching that checkout. A message carries no
state: a woken stream reads the timeline from the database, so a lost message only
delays a stream until its next safety poll.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


def progress_channel(queue_prefix: str) -> str:
    return f"{queue_prefix}:checkout-progress"


def redis_publisher(client: Any, channel: str) -> Callable[[str], None]:
    """A ``publish(public_id)`` callable for :class:`PipelineContext`."""

    def publish(public_id: str) -> None:
        client.publish(channel, public_id)

    return publish


class Waiter:
    """One stream's doorbell."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def ring(self) -> None:
        self._event.set()

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for a ring; True if rung. Clears the bell."""
        rung = self._event.wait(timeout)
        self._event.clear()
        return rung


class Hub:
    """Fans one subscription out to the waiters of this process, by public id.

    ``client_factory`` makes a Redis client for the subscription (None: no Redis, no
    wake-ups; streams poll). The listener starts on the first :meth:`watch`.
    """

    def __init__(self, client_factory: Callable[[], Any] | None, channel: str) -> None:
        self._factory = client_factory
        self.channel = channel
        self._waiters: dict[str, set[Waiter]] = {}
        self._lock = threading.Lock()
        self._listener: threading.Thread | None = None
        self.connected = threading.Event()
        self._closed = threading.Event()

    @property
    def wakes(self) -> bool:
        return self._factory is not None

    def watch(self, public_id: str) -> Waiter:
        waiter = Waiter()
        with self._lock:
            self._waiters.setdefault(public_id, set()).add(waiter)
            if self._factory is not None and self._listener is None:
                self._listener = threading.Thread(
                    target=self._listen, name="progress-listener", daemon=True
                )
                self._listener.start()
        return waiter

    def unwatch(self, public_id: str, waiter: Waiter) -> None:
        with self._lock:
            waiters = self._waiters.get(public_id)
            if waiters is not None:
                waiters.discard(waiter)
                if not waiters:
                    del self._waiters[public_id]

    def watching(self) -> int:
        with self._lock:
            return sum(len(w) for w in self._waiters.values())

    def ring(self, public_id: str) -> None:
        with self._lock:
            waiters = list(self._waiters.get(public_id, ()))
        for waiter in waiters:
            waiter.ring()

    def ring_all(self) -> None:
        with self._lock:
            waiters = [w for ws in self._waiters.values() for w in ws]
        for waiter in waiters:
            waiter.ring()

    def _listen(self) -> None:
        assert self._factory is not None
        while True:
            try:
                client = self._factory()
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(self.channel)
                self.ring_all()  # anything may have happened while we were away
                self.connected.set()
                while not self._closed.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is None:
                        continue
                    data = message.get("data")
                    if isinstance(data, bytes):
                        data = data.decode("utf-8", "replace")
                    if isinstance(data, str):
                        for public_id in data.split():
                            self.ring(public_id)
                pubsub.close()
                client.close()
                return
            except Exception as exc:  # Redis away: streams keep polling; reconnect
                self.connected.clear()
                if self._closed.wait(1.0):
                    return
                log.warning("progress subscription lost (%s); reconnecting", exc)

    def close(self) -> None:
        """Stop the listener (tests; a web process keeps it for life)."""
        self._closed.set()
        if self._listener is not None:
            self._listener.join(5)
