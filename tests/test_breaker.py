"""The gateway's circuit breaker: what trips it, what it raises, where its state lives."""

from __future__ import annotations

import time
import uuid

import pytest

from orders.errors import GatewayCircuitOpen, GatewayError
from orders.infra.breaker import BreakerGateway, breaker_state_key, make_breaker
from orders.infra.gateway import SimulatedGateway
from tests.conftest import REDIS_URL


def gateway(tmp_path, client=None, namespace="", reset=60.0) -> BreakerGateway:
    inner = SimulatedGateway(tmp_path / "ledger.db")
    return BreakerGateway(inner, lambda: make_breaker(3, reset, client, namespace))


def charge(gw: BreakerGateway, token: str, key: str | None = None):
    return gw.charge(amount_cents=100, token=token, idempotency_key=key or uuid.uuid4().hex)


def test_declines_are_results_and_never_open_the_breaker(tmp_path):
    gw = gateway(tmp_path)
    for _ in range(10):
        assert charge(gw, "tok_declined").captured is False
    assert gw.breaker.current_state == "closed"
    assert charge(gw, "tok_visa").captured


def test_errors_open_the_breaker_then_calls_are_not_made(tmp_path):
    gw = gateway(tmp_path)
    for _ in range(3):  # the third failure opens it; each was a real call (an attempt)
        with pytest.raises(GatewayError) as raised:
            charge(gw, "tok_error")
        assert not isinstance(raised.value, GatewayCircuitOpen)
    with pytest.raises(GatewayCircuitOpen):  # open: the gateway is not even called
        charge(gw, "tok_visa", key="not-sent")
    assert gw.inner.ledger()["captures"] == 0
    assert gw.breaker.current_state == "open"


def test_half_open_trial_success_closes_it(tmp_path):
    gw = gateway(tmp_path, reset=0.3)
    gw.inner.set_outage(True)
    for _ in range(3):
        with pytest.raises(GatewayError):
            charge(gw, "tok_visa")
    assert gw.breaker.current_state == "open"
    gw.inner.set_outage(False)
    time.sleep(0.4)  # the reset timeout passes: the next call is the half-open trial
    assert charge(gw, "tok_visa").captured
    assert gw.breaker.current_state == "closed"


def test_a_slow_gateway_call_times_out(tmp_path):
    slow = SimulatedGateway(tmp_path / "slow.db", latency_ms=(500, 500), timeout_seconds=0.05)
    with pytest.raises(GatewayError, match="timeout"):
        slow.charge(amount_cents=100, token="tok_visa", idempotency_key="k")
    assert slow.ledger()["captures"] == 0


@pytest.mark.redis
def test_a_failed_half_open_trial_is_a_real_failure_and_reopens(tmp_path):
    gw = gateway(tmp_path, reset=0.3)
    for _ in range(3):
        with pytest.raises(GatewayError):
            charge(gw, "tok_error")
    time.sleep(0.4)
    with pytest.raises(GatewayError) as trial:
        charge(gw, "tok_error")
    assert not isinstance(trial.value, GatewayCircuitOpen)  # it was called: uses an attempt
    assert gw.breaker.current_state == "open"
    with pytest.raises(GatewayCircuitOpen):
        charge(gw, "tok_visa")


@pytest.mark.redis
def test_state_is_shared_through_redis(tmp_path):
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    prefix = f"t{uuid.uuid4().hex[:8]}"
    namespace = f"{prefix}:payment-gateway"
    try:
        one = gateway(tmp_path, client, namespace)
        two = BreakerGateway(
            SimulatedGateway(tmp_path / "other.db"), lambda: make_breaker(3, 60, client, namespace)
        )
        for _ in range(3):
            with pytest.raises(GatewayError):
                charge(one, "tok_error")
        assert client.get(breaker_state_key(prefix)) == b"open"
        with pytest.raises(GatewayCircuitOpen):  # another process sees it open
            charge(two, "tok_visa")
    finally:
        client.delete(*client.keys(f"{prefix}:*"))
        client.close()


def test_calls_from_several_threads_run_at_the_same_time(tmp_path):
    """pybreaker holds its lock for the whole call; our threads must not queue on it.

    Two charges meet at a barrier *inside* the gateway call: if the breaker
    serialized them, the first would wait at the barrier alone and break it.
    """
    import threading

    from orders.infra.gateway import SimulatedGateway

    meet = threading.Barrier(2, timeout=10)

    class Meeting(SimulatedGateway):
        def charge(self, **kwargs):  # type: ignore[no-untyped-def]
            meet.wait()
            return super().charge(**kwargs)

    gw = BreakerGateway(Meeting(tmp_path / "ledger.db"), lambda: make_breaker(3, 60))
    results: list[object] = []

    def pay(key: str) -> None:
        results.append(gw.charge(amount_cents=100, token="tok_visa", idempotency_key=key))

    threads = [threading.Thread(target=pay, args=(f"k{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert len(results) == 2 and all(r.captured for r in results)  # type: ignore[attr-defined]
    assert not meet.broken


def test_thread_breakers_share_one_state(tmp_path):
    import threading

    from orders.errors import GatewayError

    gw = gateway(tmp_path)
    failures: list[str] = []

    def fail(key: str) -> None:
        try:
            charge(gw, "tok_error", key)
        except GatewayError as exc:
            failures.append(str(exc))

    for i in range(3):
        thread = threading.Thread(target=fail, args=(f"e{i}",))
        thread.start()
        thread.join()
    assert len(failures) == 3
    assert gw.breaker.current_state == "open"  # three threads' failures, one circuit


@pytest.mark.redis
def test_a_success_costs_one_round_trip_and_still_clears_failures(tmp_path):
    import redis

    class Counting(redis.Redis):
        sent: list[str] = []

        def execute_command(self, *args, **options):
            self.sent.append(str(args[0]))
            return super().execute_command(*args, **options)

    client = Counting.from_url(REDIS_URL)
    namespace = f"t{uuid.uuid4().hex[:8]}:payment-gateway"
    counter = f"{namespace}:pybreaker:fail_counter"
    try:
        gw = gateway(tmp_path, client, namespace)
        charge(gw, "tok_visa")  # builds the breaker (its keys set once)
        client.sent.clear()
        charge(gw, "tok_visa")
        assert client.sent == ["MGET"]  # pybreaker's own: GET state, then SET the counter 0
        with pytest.raises(GatewayError):
            charge(gw, "tok_error")
        assert client.get(counter) == b"1"
        charge(gw, "tok_visa")  # a success after a failure clears it
        assert client.get(counter) == b"0"
        for _ in range(2):
            with pytest.raises(GatewayError):
                charge(gw, "tok_error")
        charge(gw, "tok_visa")
        for _ in range(2):
            with pytest.raises(GatewayError):
                charge(gw, "tok_error")
        assert gw.breaker.current_state == "closed"  # never 3 in a row
    finally:
        client.delete(*client.keys(f"{namespace}:*"))
        client.close()
