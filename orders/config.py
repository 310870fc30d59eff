"""One typed settings object, read from the environment, shared by web and workers.

Every value has an embedded default that runs on a laptop (SQLite + SqliteHuey under
``DATA_DIR``). ``SHOP_ENV`` unset means production, which refuses to start on a weak
secret, a weak bootstrap password or the simulated gateway
(:func:`orders.production.require_safe_start`); ``SHOP_ENV=development`` (``make run``, the
tests) asks for the laptop defaults. Production sets ``DATABASE_URL`` and
``REDIS_URL``; the seed's variables (``REDIS_HOST``/``PORT``/``PASSWORD``/``DB``,
``MAX_JOB_CONCURRENCY``, ``JOB_CLEANUP_INTERVAL``) are honoured too. How a variable's
string becomes a value, and the Redis URL, are :mod:`orders.environ`'s.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from orders.environ import (
    ConfigError,
    database_url_for_sqlalchemy,
    integer,
    number,
    parse_range_ms,
    redis_url,
    switch,
)

DEV_SECRET_KEY = "dev-secret-key-change-me"
DEV_OPS_PASSWORD = "ops-dev-password"
ENVIRONMENTS = ("development", "production")
# Thread workers (the embedded SQLite mode) per consumer: SQLite takes one writer at a
# time, so more threads only wait for its lock.
THREAD_WORKERS_MAX = 4


@dataclass(frozen=True)
class Settings:
    """Everything configurable. Built by :meth:`from_env`; tests use ``replace``."""

    environment: str = "production"
    data_dir: Path = Path("instance")
    database_url: str = ""
    redis_url: str | None = None
    queue_prefix: str = "shop"
    secret_key: str = ""
    ops_username: str = "ops"
    # The optional bootstrap admin's password (None: no bootstrap admin).
    ops_password: str | None = None
    allow_simulated_gateway: bool = False
    trusted_proxy_hops: int = 0
    ops_session_idle_minutes: int = 30
    ops_session_max_hours: int = 12
    login_attempts_per_address: int = 5
    login_attempts_per_account: int = 10
    login_window_seconds: int = 300
    smtp_url: str | None = None
    mail_from: str = "Shop <shop@example.com>"
    gateway_url: str | None = None
    # the ops pages link trace ids here, e.g. https://jaeger.example/trace/{trace_id}
    trace_url_template: str = ""
    public_url: str = "http://127.0.0.1:8000"
    sim_gateway_latency_ms: tuple[int, int] = (300, 800)
    sim_step_latency_ms: tuple[int, int] = (100, 300)
    # Per-step overrides of sim_step_latency_ms (None: use it) and one factor for all.
    sim_validate_latency_ms: tuple[int, int] | None = None
    sim_order_latency_ms: tuple[int, int] | None = None
    sim_inventory_latency_ms: tuple[int, int] | None = None
    sim_email_latency_ms: tuple[int, int] | None = None
    sim_time_factor: float = 1.0
    # Jobs in flight per consumer process (MAX_JOB_CONCURRENCY, per-queue overrides):
    # greenlets on PostgreSQL + Redis, where a job waiting on the gateway or the mail
    # server costs a few kilobytes; threads (at most THREAD_WORKERS_MAX) on SQLite.
    orders_concurrency: int = 500
    payments_concurrency: int = 500
    notifications_concurrency: int = 500
    # "greenlet" or "thread"; empty: greenlet on PostgreSQL + Redis, else thread
    worker_class: str = ""
    # database connections each consumer keeps: its transactions are short and its
    # jobs hold none while they wait, so a few serve hundreds of jobs in flight. Under
    # greenlets, transactions on one process's connections take turns on its CPU at
    # every round trip: two at a time finish sooner than four (docs/consumers.md)
    worker_db_pool: int = 2
    max_attempts: int = 5
    retry_delay_seconds: float = 2.0
    retry_backoff: float = 2.0
    lease_seconds: int = 30
    pipeline_batch: int = 50
    # how long a batch waits for more of its jobs: a message close behind another of
    # its type, before its claim; a group of returned calls, before its write (a job
    # alone costs a consumer several times its share of a batch; docs/performance.md)
    pipeline_gather_ms: int = 100
    checkout_write_batch: int = 50
    sweep_interval_seconds: int = 10
    requeue_after_seconds: int = 60
    stock_hold_seconds: int = 900
    checkout_rate_limit: str = "20/second;300/minute"
    # POST /api/checkout/sync: None means on in development only (it runs the pipeline in
    # the request, holding a server thread for seconds)
    sync_checkout_enabled: bool | None = None
    sync_checkout_rate_limit: str = "2/second;30/minute"
    # shop form POSTs and cart writes, and card retries (POST /api/payments), per client
    shop_rate_limit: str = "10/second;120/minute"
    payment_retry_rate_limit: str = "10/minute;30/hour"
    max_payment_attempts: int = 5
    metrics_token: str | None = None
    overload_policy: str = "accept"
    overload_queue_depth: int = 10_000
    gateway_timeout_seconds: float = 10.0
    breaker_fail_max: int = 5
    breaker_reset_seconds: float = 30.0
    payments_rate_limit: int = 1000
    payments_rate_seconds: int = 60
    job_cleanup_interval_ms: int = 3_600_000
    keep_completed_jobs: int = 50
    keep_failed_jobs: int = 100
    heartbeat_seconds: int = 5
    health_max_wait_seconds: int = 300
    max_item_quantity: int = 20
    max_cart_lines: int = 50
    max_body_bytes: int = 64 * 1024
    low_stock_threshold: int = 5
    db_pool_size: int = 8
    db_max_overflow: int = 0
    db_pool_timeout: float = 30.0
    autoscale_min: int = 1
    autoscale_max: int = 4
    autoscale_interval_seconds: float = 10.0
    autoscale_up_depth: int = 100
    autoscale_down_depth: int = 10
    sse_heartbeat_seconds: float = 15.0
    sse_poll_seconds: float = 1.0
    sse_db_pool: int = 4
    sse_max_seconds: float = 300.0
    sse_max_streams: int = 0  # per web process; 0: sized from the worker class
    sse_max_streams_per_client: int = 20  # per web process; 0: no cap
    cart_abandon_minutes: int = 60
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    @property
    def sync_checkout_on(self) -> bool:
        """``POST /api/checkout/sync`` is served (``SYNC_CHECKOUT_ENABLED``; unset: in
        development only)."""
        if self.sync_checkout_enabled is None:
            return not self.is_production
        return self.sync_checkout_enabled

    @property
    def gateway_call_timeout(self) -> float:
        """A gateway call is cut at half the lease, so a running charge never outlives it."""
        return min(self.gateway_timeout_seconds, self.lease_seconds / 2)

    @property
    def uses_redis(self) -> bool:
        return bool(self.redis_url)

    @property
    def consumer_worker_class(self) -> str:
        """``greenlet`` where every driver cooperates with gevent (psycopg 3, redis-py);
        ``thread`` on SQLite, whose driver blocks the whole process while it waits for
        the write lock, and whose queue (SqliteHuey) is polled."""
        if self.worker_class:
            return self.worker_class
        postgres = self.sqlalchemy_url.startswith("postgresql")
        return "greenlet" if postgres and self.uses_redis else "thread"

    def jobs_in_flight(self, queue: str) -> int:
        """The most jobs a consumer of ``queue`` holds at once (``*_CONCURRENCY``), the
        jobs its batches take included."""
        return int(getattr(self, f"{queue}_concurrency", 1))

    def consumer_workers(self, queue: str) -> int:
        """Huey's ``-w`` for a queue's consumer: its jobs in flight (greenlets), or as
        many threads, at most :data:`THREAD_WORKERS_MAX`."""
        if queue not in ("orders", "payments", "notifications"):
            return 1  # the scheduler: its sweeper and periodic tasks
        in_flight = self.jobs_in_flight(queue)
        if self.consumer_worker_class == "greenlet":
            return in_flight
        return min(in_flight, THREAD_WORKERS_MAX)

    @property
    def sqlalchemy_url(self) -> str:
        return database_url_for_sqlalchemy(self.database_url)

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None
    ) -> Settings:
        """Read the environment (``os.environ`` by default), then apply ``overrides``."""
        env = os.environ if env is None else env
        data_dir = Path(env.get("DATA_DIR", "instance"))
        max_concurrency = env.get("MAX_JOB_CONCURRENCY")

        def concurrency(queue: str, default: int) -> int:
            value = env.get(f"{queue.upper()}_CONCURRENCY") or max_concurrency
            return integer(value, f"{queue.upper()}_CONCURRENCY") if value else default

        environment = env.get("SHOP_ENV") or "production"
        development = environment == "development"
        values: dict[str, Any] = {
            "environment": environment,
            "data_dir": data_dir,
            "database_url": env.get("DATABASE_URL") or f"sqlite:///{data_dir.resolve()}/shop.db",
            "redis_url": redis_url(env),
            "queue_prefix": env.get("QUEUE_PREFIX", "shop"),
            "secret_key": env.get("SECRET_KEY") or (DEV_SECRET_KEY if development else ""),
            "ops_username": env.get("OPS_USERNAME") or "ops",
            "ops_password": env.get("OPS_PASSWORD", DEV_OPS_PASSWORD if development else None),
            "allow_simulated_gateway": env.get("SHOP_ALLOW_SIMULATED_GATEWAY") == "1",
            "smtp_url": env.get("SMTP_URL") or None,
            "mail_from": env.get("MAIL_FROM", "Shop <shop@example.com>"),
            "gateway_url": env.get("GATEWAY_URL") or None,
            "trace_url_template": env.get("TRACE_URL_TEMPLATE", ""),
            "public_url": env.get("PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/"),
            "orders_concurrency": concurrency("orders", cls.orders_concurrency),
            "payments_concurrency": concurrency("payments", cls.payments_concurrency),
            "notifications_concurrency": concurrency(
                "notifications", cls.notifications_concurrency
            ),
            "worker_class": env.get("WORKER_CLASS", "").strip().lower(),
            "checkout_rate_limit": env.get("CHECKOUT_RATE_LIMIT", "20/second;300/minute"),
            "overload_policy": env.get("OVERLOAD_POLICY", "accept"),
            "metrics_token": env.get("METRICS_TOKEN") or None,
        }
        for name in ("SYNC_CHECKOUT_RATE_LIMIT", "SHOP_RATE_LIMIT", "PAYMENT_RETRY_RATE_LIMIT"):
            if env.get(name):
                values[name.lower()] = env[name]
        if env.get("SYNC_CHECKOUT_ENABLED"):
            values["sync_checkout_enabled"] = switch(
                env["SYNC_CHECKOUT_ENABLED"], "SYNC_CHECKOUT_ENABLED"
            )
        for step in ("GATEWAY", "STEP", "VALIDATE", "ORDER", "INVENTORY", "EMAIL"):
            name = f"SIM_{step}_LATENCY_MS"
            if env.get(name):
                values[name.lower()] = parse_range_ms(env[name], name)
        for name, key in (
            ("MAX_ATTEMPTS", "max_attempts"),
            ("LEASE_SECONDS", "lease_seconds"),
            ("PIPELINE_BATCH", "pipeline_batch"),
            ("PIPELINE_GATHER_MS", "pipeline_gather_ms"),
            ("CHECKOUT_WRITE_BATCH", "checkout_write_batch"),
            ("SWEEP_INTERVAL_SECONDS", "sweep_interval_seconds"),
            ("REQUEUE_AFTER_SECONDS", "requeue_after_seconds"),
            ("STOCK_HOLD_SECONDS", "stock_hold_seconds"),
            ("JOB_CLEANUP_INTERVAL", "job_cleanup_interval_ms"),
            ("KEEP_COMPLETED_JOBS", "keep_completed_jobs"),
            ("KEEP_FAILED_JOBS", "keep_failed_jobs"),
            ("HEARTBEAT_SECONDS", "heartbeat_seconds"),
            ("HEALTH_MAX_WAIT_SECONDS", "health_max_wait_seconds"),
            ("MAX_ITEM_QUANTITY", "max_item_quantity"),
            ("DB_POOL_SIZE", "db_pool_size"),
            ("DB_MAX_OVERFLOW", "db_max_overflow"),
            ("WORKER_DB_POOL", "worker_db_pool"),
            ("AUTOSCALE_MIN", "autoscale_min"),
            ("AUTOSCALE_MAX", "autoscale_max"),
            ("AUTOSCALE_UP_DEPTH", "autoscale_up_depth"),
            ("AUTOSCALE_DOWN_DEPTH", "autoscale_down_depth"),
            ("CART_ABANDON_MINUTES", "cart_abandon_minutes"),
            ("SSE_DB_POOL", "sse_db_pool"),
            ("SSE_MAX_STREAMS", "sse_max_streams"),
            ("SSE_MAX_STREAMS_PER_CLIENT", "sse_max_streams_per_client"),
            ("MAX_PAYMENT_ATTEMPTS", "max_payment_attempts"),
            ("OVERLOAD_QUEUE_DEPTH", "overload_queue_depth"),
            ("BREAKER_FAIL_MAX", "breaker_fail_max"),
            ("PAYMENTS_RATE_LIMIT", "payments_rate_limit"),
            ("PAYMENTS_RATE_SECONDS", "payments_rate_seconds"),
            ("TRUSTED_PROXY_HOPS", "trusted_proxy_hops"),
            ("OPS_SESSION_IDLE_MINUTES", "ops_session_idle_minutes"),
            ("OPS_SESSION_MAX_HOURS", "ops_session_max_hours"),
            ("LOGIN_ATTEMPTS_PER_ADDRESS", "login_attempts_per_address"),
            ("LOGIN_ATTEMPTS_PER_ACCOUNT", "login_attempts_per_account"),
            ("LOGIN_WINDOW_SECONDS", "login_window_seconds"),
        ):
            if env.get(name):
                values[key] = integer(env[name], name)
        if not env.get("PAYMENTS_RATE_LIMIT") and not values["gateway_url"]:
            # the seed's 1000 charges per 60 s is a payment provider's contract: it binds
            # calls to a real gateway (GATEWAY_URL), not to the simulated one
            values["payments_rate_limit"] = 0
        for name, key in (
            ("RETRY_DELAY_SECONDS", "retry_delay_seconds"),
            ("RETRY_BACKOFF", "retry_backoff"),
            ("AUTOSCALE_INTERVAL_SECONDS", "autoscale_interval_seconds"),
            ("SSE_HEARTBEAT_SECONDS", "sse_heartbeat_seconds"),
            ("SSE_POLL_SECONDS", "sse_poll_seconds"),
            ("SSE_MAX_SECONDS", "sse_max_seconds"),
            ("SIM_TIME_FACTOR", "sim_time_factor"),
            ("GATEWAY_TIMEOUT_SECONDS", "gateway_timeout_seconds"),
            ("BREAKER_RESET_SECONDS", "breaker_reset_seconds"),
            ("DB_POOL_TIMEOUT", "db_pool_timeout"),
        ):
            if env.get(name):
                values[key] = number(env[name], name)
        settings = cls(**values)
        if overrides:
            known = {f.name for f in fields(cls)}
            settings = replace(
                settings,
                **{k: v for k, v in overrides.items() if k in known},
                extra={**settings.extra, **{k: v for k, v in overrides.items() if k not in known}},
            )
        settings.check()
        return settings

    def step_latency_ms(self, step: str | None = None) -> tuple[float, float]:
        """Simulated latency of a step (validate, order, inventory, email, gateway),
        scaled by ``SIM_TIME_FACTOR``; steps without their own setting use
        ``SIM_STEP_LATENCY_MS``."""
        own = getattr(self, f"sim_{step}_latency_ms", None) if step else None
        low, high = own or self.sim_step_latency_ms
        return low * self.sim_time_factor, high * self.sim_time_factor

    def check(self) -> None:
        """Refuse settings that must never run (in any environment)."""
        if self.environment not in ENVIRONMENTS:
            raise ConfigError(
                f"SHOP_ENV must be 'development' or 'production' (unset: production), "
                f"got {self.environment!r}"
            )
        if self.trusted_proxy_hops < 0:
            raise ConfigError("TRUSTED_PROXY_HOPS must be >= 0 (0: no proxy is trusted)")
        if min(self.ops_session_idle_minutes, self.ops_session_max_hours) < 1:
            raise ConfigError("OPS_SESSION_IDLE_MINUTES and OPS_SESSION_MAX_HOURS must be >= 1")
        if min(self.login_attempts_per_address, self.login_attempts_per_account) < 1:
            raise ConfigError("LOGIN_ATTEMPTS_PER_ADDRESS/ACCOUNT must be >= 1")
        if self.login_window_seconds < 1:
            raise ConfigError("LOGIN_WINDOW_SECONDS must be >= 1")
        if self.overload_policy not in ("accept", "shed", "sync"):
            raise ConfigError("OVERLOAD_POLICY must be one of accept, shed, sync")
        if self.sim_time_factor < 0:
            raise ConfigError("SIM_TIME_FACTOR must be >= 0")
        if self.max_attempts < 1:
            raise ConfigError("MAX_ATTEMPTS must be at least 1")
        if self.max_payment_attempts < 1:
            raise ConfigError("MAX_PAYMENT_ATTEMPTS must be at least 1 (the first card)")
        if (
            self.sse_max_seconds <= 0
            or min(self.sse_max_streams, self.sse_max_streams_per_client) < 0
        ):
            raise ConfigError(
                "SSE_MAX_SECONDS must be > 0; SSE_MAX_STREAMS(_PER_CLIENT) >= 0 (0: default/none)"
            )
        if min(self.pipeline_batch, self.checkout_write_batch) < 1:
            raise ConfigError("PIPELINE_BATCH and CHECKOUT_WRITE_BATCH must be >= 1 (1: none)")
        if self.pipeline_gather_ms < 0:
            raise ConfigError("PIPELINE_GATHER_MS must be >= 0 (0: never wait)")
        if not 0 <= self.autoscale_min <= self.autoscale_max or self.autoscale_max < 1:
            raise ConfigError("AUTOSCALE_MIN/MAX must satisfy 0 <= min <= max, max >= 1")
        if self.autoscale_down_depth >= self.autoscale_up_depth:
            raise ConfigError("AUTOSCALE_DOWN_DEPTH must be below AUTOSCALE_UP_DEPTH")
        if self.worker_class not in ("", "greenlet", "thread"):
            raise ConfigError("WORKER_CLASS must be greenlet or thread (empty: chosen)")
        if (
            self.worker_db_pool < 1
            or min(
                self.orders_concurrency, self.payments_concurrency, self.notifications_concurrency
            )
            < 1
        ):
            raise ConfigError("WORKER_DB_POOL and the *_CONCURRENCY settings must be >= 1")
        if not 0 < self.sse_heartbeat_seconds <= 15 or self.sse_poll_seconds <= 0:
            raise ConfigError("SSE_HEARTBEAT_SECONDS must be in (0, 15]; SSE_POLL_SECONDS > 0")
