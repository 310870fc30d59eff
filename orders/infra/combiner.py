"""Natural batching: requests that arrive while a write is in flight share the next one.

The first caller finds nobody writing and writes its own item at once (no wait, no
timer: alone, a request costs what it did unbatched). Callers that arrive meanwhile
queue; when the write in flight ends, the oldest of them takes every queued item (up to
``limit``) into one write, and so on. Under load the batches grow by themselves, and
one round trip, one statement and one commit serve many requests; idle, every batch is
one item. (The "smart batching" of Martin Thompson's mechanical-sympathy blog; the
group commit of databases.)

Thread-safe with :mod:`threading`'s lock and events, which gevent's monkey-patching
makes cooperative: a greenlet waiting for its batch yields to the others.

``gather``: callers that are woken together (one message ringing many progress
streams) reach ``submit`` one after the other, so the first would write alone and the
rest share a second write. With ``gather`` the writer first yields once (a zero-length
sleep, no timer) so that the callers already runnable join its batch: one write for
the whole wake-up. Alone, a request still costs one write and a yield.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class WriterStopped(RuntimeError):
    """The caller that was writing this item's batch stopped before it could answer."""


class _Slot(Generic[Item, Result]):
    __slots__ = ("item", "done", "leads", "outcome")
    outcome: Result | BaseException  # set by the batch's writer before it answers

    def __init__(self, item: Item) -> None:
        self.item = item
        self.done = threading.Event()
        self.leads = False  # woken to write the next batch, not with an answer


class Combiner(Generic[Item, Result]):
    """``submit(item)`` runs ``write(items)`` for a batch that holds ``item``.

    ``write`` returns one outcome per item, in order: a result, or an exception that
    is raised to that item's caller only. If ``write`` itself raises, every caller of
    the batch gets the exception.
    """

    def __init__(
        self,
        write: Callable[[Sequence[Item]], Sequence[Result | BaseException]],
        limit: int = 50,
        wait_s: float = 60,
        *,
        gather: bool = False,
    ) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.write = write
        self.limit = limit
        self.wait_s = wait_s  # a safety net only: a batch ends long before
        self.gather = gather
        self._lock = threading.Lock()
        self._queued: list[_Slot[Item, Result]] = []
        self._writing = False
        self.batches = 0  # written so far, and the items in them (for tests and logs)
        self.items = 0

    def submit(self, item: Item) -> Result:
        slot: _Slot[Item, Result] = _Slot(item)
        with self._lock:
            self._queued.append(slot)
            leads = not self._writing
            self._writing = True
        if not leads:
            if not slot.done.wait(self.wait_s):
                with self._lock:  # give up only if no batch took it, nor the writing
                    if slot in self._queued and not slot.leads:
                        self._queued.remove(slot)
                        raise WriterStopped("no batch wrote this item in time")
                slot.done.wait()  # taken just now: its batch answers, or it leads
            if not slot.leads:
                return self._answer(slot)
        self._write_next(slot)
        return self._answer(slot)

    def _write_next(self, own: _Slot[Item, Result]) -> None:
        """Write the queued items (``own`` is the oldest), then hand the writing on."""
        if self.gather:
            time.sleep(0)  # the callers already woken queue first (gevent: they run now)
        with self._lock:
            batch = self._queued[: self.limit]
            del self._queued[: self.limit]
        stopped: BaseException | None = None
        try:
            outcomes: Sequence[Result | BaseException] = self.write([slot.item for slot in batch])
            if len(outcomes) != len(batch):
                raise RuntimeError(f"{len(outcomes)} outcomes for a batch of {len(batch)}")
        except Exception as exc:
            outcomes = [exc] * len(batch)
        except BaseException as exc:  # this caller is being stopped (e.g. GreenletExit)
            stopped = exc
            outcomes = [WriterStopped("the batch's writer stopped")] * len(batch)
        finally:
            with self._lock:
                self.batches += 1
                self.items += len(batch)
                upnext = self._queued[0] if self._queued else None
                if upnext is None:
                    self._writing = False
            for slot, outcome in zip(batch, outcomes, strict=True):
                slot.outcome = outcome
                if slot is not own:
                    slot.done.set()
            if upnext is not None:
                upnext.leads = True
                upnext.done.set()
        if stopped is not None:
            raise stopped

    @staticmethod
    def _answer(slot: _Slot[Item, Result]) -> Result:
        if isinstance(slot.outcome, BaseException):
            raise slot.outcome
        return slot.outcome
