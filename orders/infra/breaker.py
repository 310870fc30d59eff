"""The payment gateway behind a circuit breaker (pybreaker).

Every gateway call goes through one breaker. Failures are exceptions only (a
:class:`~orders.errors.GatewayError`, a timeout, a dropped connection); a decline is
a result, so it never trips the breaker. While the breaker is open the call is not
made and :class:`~orders.errors.GatewayCircuitOpen` is raised: the job runner then
reschedules the step without using an attempt and says so in the timeline. A call
that is made and fails (including the one that opens the circuit, and a failed
half-open trial) is an ordinary :class:`~orders.errors.GatewayError`: it uses an
attempt, so a gateway that never recovers still ends the checkout
``payment_unavailable`` after ``MAX_ATTEMPTS`` real calls.

With Redis configured the breaker's state lives in Redis, shared by every worker
process, under ``{QUEUE_PREFIX}:payment-gateway:pybreaker:{state,fail_counter,
success_counter,opened_at}``. Embedded (no Redis) each process keeps its own
in-memory breaker.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import pybreaker
from redis.exceptions import RedisError

from orders.errors import GatewayCircuitOpen, GatewayError
from orders.infra.gateway import ChargeResult, PaymentGateway

log = logging.getLogger(__name__)
T = TypeVar("T")
BREAKER_NAME = "payment-gateway"


def breaker_namespace(queue_prefix: str) -> str:
    return f"{queue_prefix}:{BREAKER_NAME}"


def breaker_state_key(queue_prefix: str) -> str:
    """The Redis key holding the breaker's state (``closed``, ``open``, ``half-open``)."""
    return f"{breaker_namespace(queue_prefix)}:pybreaker:state"


class _LogStateChanges(pybreaker.CircuitBreakerListener):
    def state_change(self, cb: pybreaker.CircuitBreaker, old_state: Any, new_state: Any) -> None:
        old = old_state.name if old_state is not None else "none"
        log.warning("payment gateway circuit: %s -> %s", old, new_state.name)


class SharedStorage(pybreaker.CircuitRedisStorage):
    """pybreaker's Redis storage in one round trip per successful call instead of two.

    pybreaker reads the state before every call and, on success, sets the failure
    counter to zero: a write per charge, and a round trip each (a sixth of a payments
    consumer's work). Here the state is read with the counter (one MGET), and a
    success writes the zero only if the counter it read was not zero. A failure
    counted elsewhere while this call ran is then left standing; with hundreds of
    calls in flight "consecutive failures" is already approximate, and the breaker
    still opens only after ``fail_max`` failures with no success read between."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._read = threading.local()  # per caller: the counter its call read
        super().__init__(*args, **kwargs)

    @property
    def state(self) -> str:
        try:
            state, failures = self._redis.mget(
                self._namespace("state"), self._namespace("fail_counter")
            )
        except RedisError:
            self.logger.exception("RedisError: falling back to default circuit state")
            self._read.failures = None
            return str(self._fallback_circuit_state)
        self._read.failures = int(failures or 0)
        if state is None:  # gone from Redis: start again closed, as pybreaker does
            self._initialize_redis_state(self._fallback_circuit_state)
            return str(self._fallback_circuit_state)
        return state.decode("utf-8") if isinstance(state, bytes) else str(state)

    @state.setter
    def state(self, state: str) -> None:  # pybreaker's: a property is redefined whole
        try:
            self._redis.set(self._namespace("state"), str(state))
        except RedisError:
            self.logger.exception("RedisError")

    def reset_counter(self) -> None:
        if getattr(self._read, "failures", None) == 0:
            return  # read as zero when this call began
        super().reset_counter()
        self._read.failures = 0


def make_breaker(
    fail_max: int, reset_seconds: float, redis_client: Any | None = None, namespace: str = ""
) -> pybreaker.CircuitBreaker:
    storage: pybreaker.CircuitBreakerStorage
    if redis_client is not None:
        storage = SharedStorage(pybreaker.STATE_CLOSED, redis_client, namespace=namespace)
    else:
        storage = pybreaker.CircuitMemoryStorage(pybreaker.STATE_CLOSED)
    return pybreaker.CircuitBreaker(
        fail_max=fail_max,
        reset_timeout=reset_seconds,
        state_storage=storage,
        listeners=[_LogStateChanges()],
        name=BREAKER_NAME,
    )


class BreakerGateway:
    """A :class:`PaymentGateway` whose calls all pass through one circuit breaker.

    The breaker is built on first use (building the Redis storage talks to Redis),
    so a worker starts even while Redis is away.
    """

    def __init__(self, inner: PaymentGateway, build: Callable[[], pybreaker.CircuitBreaker]):
        self.inner = inner
        self._build = build
        self._breaker: pybreaker.CircuitBreaker | None = None
        self._lock = threading.Lock()
        self._local = threading.local()

    @property
    def breaker(self) -> pybreaker.CircuitBreaker:
        with self._lock:
            if self._breaker is None:
                try:
                    self._breaker = self._build()
                except Exception as exc:  # Redis away: a transient gateway failure
                    raise GatewayError(f"circuit breaker state unavailable: {exc}") from exc
            return self._breaker

    def charge(self, *, amount_cents: int, token: str, idempotency_key: str) -> ChargeResult:
        return self._call(
            lambda: self.inner.charge(
                amount_cents=amount_cents, token=token, idempotency_key=idempotency_key
            )
        )

    def refund(self, *, gateway_ref: str, amount_cents: int, idempotency_key: str) -> str:
        return self._call(
            lambda: self.inner.refund(
                gateway_ref=gateway_ref, amount_cents=amount_cents, idempotency_key=idempotency_key
            )
        )

    def find_charge(self, *, idempotency_key: str) -> ChargeResult | None:
        return self._call(lambda: self.inner.find_charge(idempotency_key=idempotency_key))

    def _thread_breaker(self) -> pybreaker.CircuitBreaker:
        """This thread's breaker: a sibling of :attr:`breaker` over the same storage.

        ``pybreaker.CircuitBreaker.call`` holds the breaker's lock for the whole
        guarded call, so one breaker shared by a consumer's threads would let only one
        gateway call run at a time per process. Siblings share the state and counters
        (the same storage object, or the same Redis keys) but not the lock.
        """
        mine: pybreaker.CircuitBreaker | None = getattr(self._local, "breaker", None)
        if mine is None:
            shared = self.breaker
            # (pybreaker annotates the property with an unbound TypeVar; this is its type)
            listeners: Sequence[pybreaker.CircuitBreakerListener] = shared.listeners
            mine = pybreaker.CircuitBreaker(
                fail_max=shared.fail_max,
                reset_timeout=shared.reset_timeout,
                success_threshold=shared.success_threshold,
                listeners=listeners,
                state_storage=shared._state_storage,
                name=shared.name,
            )
            self._local.breaker = mine
        return mine

    def _call(self, call: Callable[[], T]) -> T:
        """Run ``call`` through this thread's breaker: a closure over one of the inner
        gateway's methods, so its arguments are type-checked where they are written."""
        breaker = self._thread_breaker()
        try:
            return breaker.call(call)
        except pybreaker.CircuitBreakerError as exc:
            failed = exc.__context__
            if failed is not None:  # this call was made, failed, and (re)opened the circuit
                raise GatewayError(f"{failed} (the circuit is now open)") from failed
            raise GatewayCircuitOpen(
                f"payment gateway circuit open after {breaker.fail_max} failures; "
                f"next trial within {breaker.reset_timeout:g} s"
            ) from exc
