"""Start one queue's ``huey_consumer`` with the flags our settings call for.

    python -m orders.worker orders|payments|notifications|scheduler

It prints and then ``exec``s the plain command, e.g.
``huey_consumer tasks.payments_queue -k thread -w 3 -g TERM -t 30``: SIGTERM is a
graceful stop (running steps finish, up to the shutdown timeout). On SQLite the
consumer polls, so its poll delay is kept short.
"""

from __future__ import annotations

import json
import os
import shutil
import sys

from orders.config import ConfigError, Settings

INSTANCES = {
    "orders": "tasks.orders_queue",
    "payments": "tasks.payments_queue",
    "notifications": "tasks.notifications_queue",
    "scheduler": "tasks.scheduler",
}


def consumer_argv(queue: str, settings: Settings, shutdown_timeout: int = 30) -> list[str]:
    workers = {
        "orders": settings.orders_concurrency,
        "payments": settings.payments_concurrency,
        "notifications": settings.notifications_concurrency,
        "scheduler": 1,
    }[queue]
    argv = [
        "huey_consumer",
        INSTANCES[queue],
        "-k",
        "thread",
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
    if os.environ.get("HUEY_QUIET"):
        argv.append("-q")
    if os.environ.get("LOG_FORMAT", "").lower() == "json":
        argv += ["-l", os.devnull]  # huey's own text handler; records still reach our JSON one
    return argv


def settings_for_start() -> Settings:
    """The settings, or exit with status 1 and the reason (an unsafe production setting)."""
    try:
        settings = Settings.from_env()
        settings.require_safe_start()
    except ConfigError as exc:
        sys.exit(f"shop: {exc}")
    return settings


def main(args: list[str]) -> None:
    if len(args) != 1 or args[0] not in INSTANCES:
        sys.exit(f"usage: python -m orders.worker {{{','.join(INSTANCES)}}}")
    shutdown = int(os.environ.get("WORKER_SHUTDOWN_SECONDS", "30"))
    argv = consumer_argv(args[0], settings_for_start(), shutdown)
    executable = shutil.which("huey_consumer") or os.path.join(
        os.path.dirname(sys.executable), "huey_consumer"
    )
    started = f"starting: {' '.join(argv)}"
    json_logs = os.environ.get("LOG_FORMAT", "").lower() == "json"
    print(json.dumps({"message": started}) if json_logs else started, flush=True)
    os.execv(executable, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
