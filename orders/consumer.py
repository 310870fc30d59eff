"""Huey's consumer with its jobs in flight as greenlets, in a bounded pool.

    python -m orders.consumer tasks.payments_queue --in-flight 500 -k greenlet -w 2 ...

:mod:`orders.worker` starts this on PostgreSQL + Redis. gevent's patching comes
first, before anything imports ``socket`` or ``threading``: a job waiting on the
gateway, the mail server, Redis or PostgreSQL then yields to the others (psycopg 3
cooperates with gevent by itself since 3.1.14, see ``bench/pg_gevent_check.py``;
redis-py and ``smtplib`` use the patched sockets; the simulated latencies the patched
``time.sleep``). Huey 3.5's own ``huey_consumer`` does not patch (its greenlet
environment only warns).

The ``-w`` workers only fetch: each takes a message when one of the ``--in-flight``
runner greenlets (``*_CONCURRENCY``) is free, and hands it over. So a consumer keeps
hundreds of jobs in flight on a couple of Redis connections (with ``-k greenlet -w
500``, Huey's own, each of the 500 workers would hold one in its blocking pop, and
wake every second to pop again), and the messages it has no room for stay in Redis,
in priority order, for any consumer.
A graceful stop (SIGTERM with ``-g TERM``) stops fetching, then lets the jobs in
flight finish, up to the shutdown timeout (``-t``); past it they are interrupted
and their leases re-drive them, as with threads.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import logging  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
from gevent.lock import Semaphore  # noqa: E402
from gevent.queue import Queue  # noqa: E402
from huey import Huey  # noqa: E402
from huey.bin.huey_consumer import load_huey  # noqa: E402
from huey.consumer import Consumer, Worker  # noqa: E402
from huey.consumer_options import ConsumerConfig, OptionParserHandler  # noqa: E402

from orders.heap import freeze_startup_objects  # noqa: E402
from orders.pool import job_started  # noqa: E402


class PooledWorker(Worker):  # type: ignore[misc]  # huey ships no types: Worker is Any
    """Fetches a message only while a runner is free, and hands it over."""

    slots: Semaphore
    jobs: Queue[tuple[Any, Any]]

    def loop(self, now: Any = None) -> None:
        if not self.slots.acquire(timeout=1):
            return  # every runner busy: look at the stop flag, then wait again
        if self.stop_flag.is_set():
            self.slots.release()
            return
        try:
            task = self.huey.dequeue()
        except Exception:
            self.slots.release()
            self._logger.exception("Error reading from queue")
            self.sleep()
            return
        if task is None:
            self.slots.release()
            if not self.huey.storage.blocking:
                self.sleep()
            return
        self.delay = self.default_delay
        self.jobs.put((task, now))


class PooledConsumer(Consumer):  # type: ignore[misc]  # huey ships no types: Consumer is Any
    """Huey's consumer: ``-w`` :class:`PooledWorker` fetchers feeding ``in_flight``
    long-lived runner greenlets (long-lived, so what a job keeps per thread, such as
    the gateway's connection or its circuit breaker's sibling, serves the next)."""

    worker_class = PooledWorker

    def __init__(self, huey: Huey, in_flight: int, **options: Any) -> None:
        self.in_flight = in_flight
        self.slots = Semaphore(in_flight)
        self.jobs: Queue[tuple[Any, Any]] = Queue()
        self.runners: list[gevent.Greenlet[..., None]] = []
        super().__init__(huey, **options)

    def _create_worker(self) -> PooledWorker:
        worker = super()._create_worker()
        assert isinstance(worker, PooledWorker)
        worker.slots, worker.jobs = self.slots, self.jobs
        return worker

    def start(self) -> None:
        self.runners = [gevent.spawn(self._run_jobs) for _ in range(self.in_flight)]
        super().start()

    def _run_jobs(self) -> None:
        try:
            while True:
                task, now = self.jobs.get()
                job_started()  # its claim waits for a connection; its later steps do not
                try:
                    self.huey.execute(task, now)
                except Exception:
                    self._logger.exception("Unhandled error during execution of task %s.", task.id)
                finally:
                    self.slots.release()
        except (KeyboardInterrupt, gevent.GreenletExit):
            return  # stopping; a job cut short is re-driven once its lease expires

    def _join_workers(self) -> bool:
        """The fetchers stop first (within Huey's 1 s blocking read); then the jobs in
        flight finish, within what is left of the shutdown timeout."""
        deadline = None
        if self.shutdown_timeout is not None:
            deadline = time.monotonic() + self.shutdown_timeout
        fetchers_stopped = super()._join_workers()
        while self.slots.counter < self.in_flight:
            if deadline is not None and time.monotonic() >= deadline:
                return False
            gevent.sleep(0.05)
        return bool(fetchers_stopped)

    def _interrupt_workers(self) -> None:
        super()._interrupt_workers()
        gevent.killall(self.runners, KeyboardInterrupt, block=True, timeout=2)


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    in_flight = 1
    if "--in-flight" in args:
        at = args.index("--in-flight")
        in_flight = int(args[at + 1])
        del args[at : at + 2]
    sys.argv = ["-m", "orders.consumer", *(sys.argv[1:] if argv is None else argv)]  # SIGHUP
    options, positional = OptionParserHandler().get_option_parser().parse_args(args)
    if len(positional) != 1:
        sys.exit("usage: python -m orders.consumer module.huey_instance --in-flight N [options]")
    config = ConsumerConfig(**{k: v for k, v in options.__dict__.items() if v is not None})
    config.validate()
    huey = load_huey(positional[0])
    config.setup_logger(logging.getLogger("huey"))
    freeze_startup_objects()  # the shop is loaded: keep it out of full collections
    PooledConsumer(huey, in_flight, **config.values).run()


if __name__ == "__main__":
    main()
