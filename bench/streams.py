"""The progress-stream client: browsers on the shop's SSE endpoint, and their timing.

- :func:`follow`: one stream (``GET /api/orders/status/<jobId>/stream``) on an asyncio
  socket, HTTP/1.0, read until the server ends it; every event is stamped with the
  wall-clock time the client read it.
- :func:`watch`: a process of its own full of such browsers (:class:`Browsers` drives
  it from the bench): told over a pipe which checkouts to follow, it opens a stream on
  each and hands back every stream's events at the end. The streams are read apart
  from the load generator's event loop, so a busy generator cannot delay a read.
- :func:`event_delays`: from a step change (the event row's ``created_at``, written
  by the process that made the change) to the moment a client read that event;
  :class:`OpenStreams`: how many streams were open when; :func:`commit_split`: where
  that delay went, when the server records commit times.
"""

from __future__ import annotations

import asyncio
import bisect
import multiprocessing
import resource
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC
from multiprocessing.connection import Connection
from typing import Any

from sqlalchemy import Engine, TextClause, bindparam, text
from sqlalchemy.engine import Connection as DbConnection

from bench.report import percentile

OPEN_PACE_S = 0.002  # ~500 connects/s: a crowd of browsers, not a SYN flood


@dataclass
class StreamResult:
    job_id: str
    source: str | None = None  # the client address the stream came from
    events: list[tuple[int, str, float]] = field(default_factory=list)  # id, name, wall time
    opened_at: float | None = None  # wall time the server answered 200
    ended_at: float | None = None  # wall time the stream ended, failed or was cut
    closed: bool = False  # the server ended it
    error: str | None = None
    first: asyncio.Event = field(default_factory=asyncio.Event, repr=False)  # set on the
    # first event, or when the stream failed

    @property
    def completed(self) -> bool:
        return self.closed and bool(self.events) and self.events[-1][1] == "completed"

    @property
    def final(self) -> bool:
        """Ended by the server on a final status (completed or failed)."""
        return self.closed and bool(self.events) and self.events[-1][1] in ("completed", "failed")

    def plain(self) -> dict[str, Any]:
        """What crosses the pipe (no asyncio object)."""
        return {
            "job_id": self.job_id,
            "events": self.events,
            "opened_at": self.opened_at,
            "ended_at": self.ended_at,
            "closed": self.closed,
            "final": self.final,
            "error": self.error,
        }


async def follow(port: int, result: StreamResult) -> None:
    """Read one progress stream to its end (or until cancelled)."""
    writer = None
    try:
        local = (result.source, 0) if result.source else None
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=local)
        writer.write(
            f"GET /api/orders/status/{result.job_id}/stream HTTP/1.0\r\n"
            f"Host: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n".encode()
        )
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        status = head.split(b"\r\n", 1)[0]
        if b" 200 " not in status:
            result.error = status.decode(errors="replace")
            return
        result.opened_at = time.time()
        buffer = b""
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                result.closed = True
                break
            now = time.time()
            buffer += chunk
            while b"\n\n" in buffer:
                block, buffer = buffer.split(b"\n\n", 1)
                fields = dict(
                    line.split(": ", 1) for line in block.decode().split("\n") if ": " in line
                )
                if "id" in fields and "event" in fields:
                    result.events.append((int(fields["id"]), fields["event"], now))
                    result.first.set()
    except Exception as exc:  # counted as a stream that failed
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        result.ended_at = time.time()
        result.first.set()
        if writer is not None:
            writer.close()


def event_delays(engine: Engine, results: Iterable[dict[str, Any]]) -> list[tuple[float, float]]:
    """For every event after each stream's first (the first is the state at connect,
    not a change the client waited for): when its row was created (epoch seconds) and
    the milliseconds from then to the client's read."""
    read = _reads(results)
    with engine.connect() as conn:
        created = {
            event_id: at.replace(tzinfo=UTC).timestamp()
            for event_id, at in _rows(conn, _CREATED, [event_id for event_id, _ in read])
        }
    return [
        (created[event_id], (wall - created[event_id]) * 1000)
        for event_id, wall in read
        if event_id in created
    ]


def commit_split(
    engine: Engine, results: Iterable[dict[str, Any]], since: float, until: float
) -> dict[str, float] | None:
    """Where the delay of the events made from ``since`` to ``until`` (epoch seconds)
    went, when the PostgreSQL server records commit times (``track_commit_timestamp``,
    off by default; None then): from the row's ``created_at`` to its transaction's
    commit (the step's own transaction), and from the commit to the client's read (the
    wake-up, the stream's read, the socket). p50 and p99 of each, in ms."""
    read = _reads(results)
    with engine.connect() as conn:
        if conn.execute(text("SHOW track_commit_timestamp")).scalar() != "on":
            return None
        times = {
            event_id: (created.replace(tzinfo=UTC).timestamp(), committed.timestamp())
            for event_id, created, committed in _rows(
                conn, _COMMITTED, [event_id for event_id, _ in read]
            )
            if committed is not None  # committed before the setting was on: not known
        }
    return split(
        [(*times[event_id], wall) for event_id, wall in read if event_id in times], since, until
    )


_CREATED = text("SELECT id, created_at FROM checkout_events WHERE id IN :ids")
_COMMITTED = text(
    "SELECT id, created_at, pg_xact_commit_timestamp(xmin) FROM checkout_events WHERE id IN :ids"
)


def _reads(results: Iterable[dict[str, Any]]) -> list[tuple[int, float]]:
    """(event id, when the client read it) of every event after each stream's first."""
    return [(event_id, wall) for r in results for event_id, _name, wall in r["events"][1:]]


def _rows(conn: DbConnection, query: TextClause, ids: list[int]) -> Iterator[Any]:
    """``query``'s rows for these event ids, 5,000 ids a statement."""
    ordered = sorted(set(ids))
    expanding = query.bindparams(bindparam("ids", expanding=True))
    for at in range(0, len(ordered), 5000):
        yield from conn.execute(expanding, {"ids": ordered[at : at + 5000]})


def split(
    events: Iterable[tuple[float, float, float]], since: float, until: float
) -> dict[str, float] | None:
    """:func:`commit_split`'s figures from (created, committed, read) epoch seconds."""
    made = [(c, m, r) for c, m, r in events if since <= c <= until]
    if not made:
        return None
    to_commit = [(m - c) * 1000 for c, m, _ in made]
    to_read = [(r - m) * 1000 for _, m, r in made]
    return {
        "events": len(made),
        "commit_p50_ms": percentile(to_commit, 50),
        "commit_p99_ms": percentile(to_commit, 99),
        "read_p50_ms": percentile(to_read, 50),
        "read_p99_ms": percentile(to_read, 99),
    }


class OpenStreams:
    """How many streams were open (answered 200, not yet ended) when, from the
    streams' results (epoch seconds)."""

    def __init__(self, results: Iterable[dict[str, Any]]) -> None:
        changes: dict[float, int] = {}
        for r in results:
            if r["opened_at"] is not None:
                changes[r["opened_at"]] = changes.get(r["opened_at"], 0) + 1
                if r["ended_at"] is not None:
                    changes[r["ended_at"]] = changes.get(r["ended_at"], 0) - 1
        self.times = sorted(changes)
        self.counts: list[int] = []  # open from times[i] until times[i + 1]
        count = 0
        for at in self.times:
            count += changes[at]
            self.counts.append(count)

    def at(self, when: float) -> int:
        index = bisect.bisect_right(self.times, when)
        return self.counts[index - 1] if index else 0

    def over(self, since: float, until: float, at_least: int) -> dict[str, Any]:
        """Open at ``since``; the most and the fewest open at any moment until
        ``until``; and for how many of those seconds at least ``at_least`` were."""
        at_start = self.at(since)
        most = fewest = previous = at_start
        held, last = 0.0, since
        first = bisect.bisect_right(self.times, since)
        last_index = bisect.bisect_right(self.times, until)
        for at, count in zip(
            self.times[first:last_index], self.counts[first:last_index], strict=True
        ):
            held += at - last if previous >= at_least else 0.0
            most, fewest = max(most, count), min(fewest, count)
            previous, last = count, at
        held += until - last if previous >= at_least else 0.0
        return {"at_start": at_start, "most": most, "fewest": fewest, "held_s": held}


# --- the browsers' process ---------------------------------------------------------------


def watch(conn: Connection, port: int, sources: list[str]) -> None:
    """The browsers' process (:class:`Browsers`)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)  # a socket per stream
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(_watch(conn, port, sources))


async def _watch(conn: Connection, port: int, sources: list[str]) -> None:
    loop = asyncio.get_running_loop()
    results: list[StreamResult] = []
    tasks: list[asyncio.Task[None]] = []
    inbox: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()

    def receive() -> None:
        while conn.poll():
            inbox.put_nowait(conn.recv())

    def start(job_id: str) -> StreamResult:
        result = StreamResult(job_id, sources[len(results) % len(sources)] if sources else None)
        results.append(result)
        tasks.append(asyncio.create_task(follow(port, result)))
        return result

    async def watch_moving() -> None:
        while not any(len(r.events) > 1 for r in results):
            await asyncio.sleep(0.05)
        conn.send(("moving",))

    async def open_all(job_ids: list[str], timeout: float) -> None:
        batch = []
        for job_id in job_ids:
            batch.append(start(job_id))
            await asyncio.sleep(OPEN_PACE_S)
        try:
            await asyncio.wait_for(asyncio.gather(*(r.first.wait() for r in batch)), timeout)
        except TimeoutError:
            pass
        open_now = [r for r in batch if r.events and r.error is None and r.ended_at is None]
        conn.send(("opened", len(open_now)))

    loop.add_reader(conn.fileno(), receive)
    helpers = [asyncio.create_task(watch_moving())]
    while True:
        message = await inbox.get()
        if message[0] == "open":  # ("open", job ids, seconds to wait for their first events)
            helpers.append(asyncio.create_task(open_all(message[1], message[2])))
        elif message[0] == "follow":  # ("follow", job id): one stream, now
            start(message[1])
        elif message[0] == "close":  # ("close", seconds): wait for the streams, then report
            if tasks:
                await asyncio.wait(tasks, timeout=message[1])
            break
    loop.remove_reader(conn.fileno())
    for task in [*tasks, *helpers]:
        task.cancel()
    await asyncio.gather(*tasks, *helpers, return_exceptions=True)
    conn.send(("results", [r.plain() for r in results]))
    conn.close()


class Browsers:
    """The bench's side of :func:`watch`: a process of browsers following streams on
    the shop at ``port`` from the ``sources`` client addresses in turn."""

    def __init__(self, port: int, sources: list[str]) -> None:
        context = multiprocessing.get_context("spawn")  # nothing of the bench's state
        self.conn, child = context.Pipe()
        self.process = context.Process(target=watch, args=(child, port, sources), daemon=True)
        self.process.start()
        child.close()

    def open(self, job_ids: list[str], timeout: float) -> int:
        """Open a stream on each checkout (paced); returns how many got their first
        event within ``timeout`` seconds and were still open then (open at once)."""
        self.conn.send(("open", job_ids, timeout))
        return int(self._expect("opened", timeout + len(job_ids) * OPEN_PACE_S + 30)[1])

    def wait_moving(self, timeout: float) -> bool:
        """Whether a stream read a step change (not its opening state) within ``timeout``."""
        try:
            self._expect("moving", timeout)
        except TimeoutError:
            return False
        return True

    def follow(self, job_id: str) -> None:
        """A stream on this checkout, opened now (as the checkout page does after its 202)."""
        self.conn.send(("follow", job_id))

    def close(self, timeout: float) -> list[dict[str, Any]]:
        """Every stream's result, once all ended or ``timeout`` seconds passed (the rest
        are cut)."""
        self.conn.send(("close", timeout))
        results: list[dict[str, Any]] = self._expect("results", timeout + 60)[1]
        self.process.join(30)
        return results

    def stop(self) -> None:
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(10)
        self.conn.close()

    def _expect(self, kind: str, timeout: float) -> tuple[Any, ...]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self.conn.poll(left):
                raise TimeoutError(f"the browsers' process sent no {kind!r} in {timeout:g} s")
            message: tuple[Any, ...] = self.conn.recv()
            if message[0] == kind:
                return message
