"""Start one queue's ``huey_consumer`` with the flags our settings call for.

    python -m orders.worker orders|payments|notifications|scheduler

It prints and then ``exec``s the plain command, e.g.
``python -m orders.consumer tasks.payments_queue --in-flight 500 -k greenlet -w 2 -g TERM
-t 30 -n -q``: on PostgreSQL + Redis each consumer runs its jobs in flight as greenlets
(``*_CONCURRENCY``, hundreds: a job waiting on the gateway costs a few kilobytes, not
a thread), fed by two fetchers (:mod:`orders.consumer`); on SQLite it runs
``huey_consumer`` with a few threads, and polls, so its poll delay is kept short.
SIGTERM is a graceful stop (running steps finish, up to the shutdown timeout).
Huey's own per-task lines are off (``-q``) unless ``HUEY_QUIET=0``: the job runner
logs each job, with its checkout id.
"""

from __future__ import annotations

import json
import os
import shutil
import sys

from orders.config import Settings
from orders.environ import ConfigError
from orders.production import require_safe_start

FETCHERS = 2  # greenlet mode: workers that take messages for the pool of jobs in flight
INSTANCES = {
    "orders": "tasks.orders_queue",
    "payments": "tasks.payments_queue",
    "notifications": "tasks.notifications_queue",
    "scheduler": "tasks.scheduler",
}


def consumer_argv(queue: str, settings: Settings, shutdown_timeout: int = 30) -> list[str]:
    kind = settings.consumer_worker_class
    if kind == "greenlet":  # gevent's patching before Huey loads; a pool of jobs in flight
        in_flight = str(settings.consumer_workers(queue))
        program = ["python", "-m", "orders.consumer", INSTANCES[queue], "--in-flight", in_flight]
        workers = FETCHERS
    else:
        program = ["huey_consumer", INSTANCES[queue]]
        workers = settings.consumer_workers(queue)
    argv = [
        *program,
        "-k",
        kind,
        "-w",
        str(workers),
        "-g",
        "TERM",
        "-t",
        str(shutdown_timeout),
    ]
    if queue != "scheduler":
        argv.append("-n")  # periodic tasks run on the scheduler consumer only
    if not settings.uses_redis:
        argv += ["-d", "0.05", "-m", "0.5"]  # SqliteHuey polls; keep pickup latency low
    if os.environ.get("HUEY_QUIET", "1") != "0":
        argv.append("-q")  # huey's two lines per task: ~20 % of a consumer's throughput
    if os.environ.get("LOG_FORMAT", "").lower() == "json":
        argv += ["-l", os.devnull]  # huey's own text handler; records still reach our JSON one
    return argv


def settings_for_start() -> Settings:
    """The settings, or exit with status 1 and the reason (an unsafe production setting)."""
    try:
        settings = Settings.from_env()
        require_safe_start(settings)
    except ConfigError as exc:
        sys.exit(f"shop: {exc}")
    return settings


def main(args: list[str]) -> None:
    if len(args) != 1 or args[0] not in INSTANCES:
        sys.exit(f"usage: python -m orders.worker {{{','.join(INSTANCES)}}}")
    shutdown = int(os.environ.get("WORKER_SHUTDOWN_SECONDS", "30"))
    argv = consumer_argv(args[0], settings_for_start(), shutdown)
    if argv[0] == "python":
        executable = sys.executable
    else:
        executable = shutil.which("huey_consumer") or os.path.join(
            os.path.dirname(sys.executable), "huey_consumer"
        )
    started = f"starting: {' '.join(argv)}"
    json_logs = os.environ.get("LOG_FORMAT", "").lower() == "json"
    print(json.dumps({"message": started}) if json_logs else started, flush=True)
    os.execv(executable, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
