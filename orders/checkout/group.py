"""Checkouts written together: a web process's checkouts share statements under load.

Each web process has one :class:`~orders.infra.combiner.Combiner` per database: a
checkout placed while another is being written waits for that write to end, then is
written with every other checkout that arrived meanwhile, in one statement on one
connection (:func:`orders.checkout.statement.write_many`), and one commit.
Alone, a checkout is written at once; under load one round trip and one
commit serve many, which is most of what a checkout costs the database (measured:
docs/performance.md). ``CHECKOUT_WRITE_BATCH`` caps a statement's checkouts; 1
writes each alone.

Each checkout keeps its own outcome: its guard and its key are checked row by row, and
if the database refuses the statement (a value no checkout should carry), each is
written again alone, so only the one at fault fails. A lost connection fails the
batch: each of its requests answers 503, as it would have alone.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Sequence

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from orders.checkout.statement import Pending, Written, connection, write_many
from orders.errors import DatabaseUnavailable
from orders.infra.combiner import Combiner, WriterStopped

_writers: weakref.WeakKeyDictionary[Engine, Combiner[Pending, Written]] = (
    weakref.WeakKeyDictionary()
)
_lock = threading.Lock()


def write(engine: Engine, pending: Pending, limit: int) -> Written:
    """Write ``pending`` with whatever other checkouts this process is placing.

    If the request writing its batch was stopped first (killed mid-write), whether
    the batch committed is unknown: a 503, which the client retries (the same
    Idempotency-Key replays whatever was recorded), as after a lost connection."""
    try:
        return writer(engine, limit).submit(pending)
    except WriterStopped as exc:
        raise DatabaseUnavailable("the checkout's write did not finish; retry shortly") from exc


def writer(engine: Engine, limit: int) -> Combiner[Pending, Written]:
    """This process's writer for ``engine`` (its cap: ``limit`` at first use)."""
    found = _writers.get(engine)
    if found is None:
        with _lock:
            found = _writers.get(engine)
            if found is None:
                found = _writers[engine] = Combiner(_writing_to(weakref.ref(engine)), limit)
    return found


def _writing_to(
    engine: weakref.ref[Engine],
) -> Callable[[Sequence[Pending]], list[Written | BaseException]]:
    """The combiner's write (a weak reference: the engine keys the writers, so the
    writer must not keep it alive)."""

    def write(batch: Sequence[Pending]) -> list[Written | BaseException]:
        live = engine()
        if live is None:
            raise RuntimeError("the database engine was disposed of")
        return _write(live, batch)

    return write


def _write(engine: Engine, batch: Sequence[Pending]) -> list[Written | BaseException]:
    with connection(engine) as conn:
        try:
            return list(write_many(conn, batch))
        except DBAPIError as exc:
            if len(batch) == 1 or exc.connection_invalidated:
                raise
        outcomes: list[Written | BaseException] = []
        lost: DBAPIError | None = None
        for one in batch:
            if lost is not None:  # the ones written before it keep their answer
                outcomes.append(lost)
                continue
            try:
                outcomes += write_many(conn, [one])
            except DBAPIError as exc:
                outcomes.append(exc)
                lost = exc if exc.connection_invalidated else None
        return outcomes
