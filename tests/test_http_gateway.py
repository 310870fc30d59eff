"""The Stripe-style HTTP client against the simulated gateway served over real HTTP."""

from __future__ import annotations

import threading

import pytest

from orders.errors import GatewayError
from orders.infra.gateway import SimulatedGateway
from orders.infra.http_gateway import HttpGateway
from orders.infra.sim_gateway_server import serve
from tests.stack import free_port


@pytest.fixture
def served(tmp_path):
    """(base URL, the ledger) of a gateway server running in a thread of this process."""

    def start(latency_ms=(0, 0)):
        server = serve(tmp_path / "ledger.db", free_port(), latency_ms)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}", SimulatedGateway(tmp_path / "ledger.db")

    servers = []
    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_a_charge_is_captured_once_per_idempotency_key(served):
    url, ledger = served()
    client = HttpGateway(url, timeout_seconds=5)
    first = client.charge(amount_cents=1999, token="tok_visa", idempotency_key="pay_1")
    again = client.charge(amount_cents=1999, token="tok_visa", idempotency_key="pay_1")
    assert first.captured and first.gateway_ref == again.gateway_ref
    assert ledger.ledger()["captures"] == 1 and ledger.ledger()["captured_cents"] == 1999


def test_a_decline_is_a_result_with_its_reason(served):
    url, _ = served()
    result = HttpGateway(url).charge(
        amount_cents=500, token="tok_insufficient_funds", idempotency_key="pay_2"
    )
    assert not result.captured and result.decline_reason == "insufficient_funds"


def test_a_refund_is_recorded_once(served):
    url, ledger = served()
    client = HttpGateway(url)
    charge = client.charge(amount_cents=700, token="tok_visa", idempotency_key="pay_3")
    one = client.refund(gateway_ref=charge.gateway_ref, amount_cents=700, idempotency_key="r3")
    two = client.refund(gateway_ref=charge.gateway_ref, amount_cents=700, idempotency_key="r3")
    assert one == two and ledger.ledger()["refunds"] == 1


def test_outage_timeout_and_unreachable_are_gateway_errors(served):
    url, ledger = served()
    ledger.set_outage(True)
    with pytest.raises(GatewayError, match="HTTP 503"):
        HttpGateway(url).charge(amount_cents=100, token="tok_visa", idempotency_key="pay_4")
    slow_url, _ = served(latency_ms=(1500, 1500))
    with pytest.raises(GatewayError, match="timeout"):
        HttpGateway(slow_url, timeout_seconds=0.2).charge(
            amount_cents=100, token="tok_visa", idempotency_key="pay_5"
        )
    with pytest.raises(GatewayError, match="unreachable"):
        HttpGateway(f"http://127.0.0.1:{free_port()}").charge(
            amount_cents=100, token="tok_visa", idempotency_key="pay_6"
        )


def test_find_charge_by_idempotency_key(served):
    url, _ = served()
    client = HttpGateway(url)
    assert client.find_charge(idempotency_key="pay_9") is None
    made = client.charge(amount_cents=900, token="tok_visa", idempotency_key="pay_9")
    found = client.find_charge(idempotency_key="pay_9")
    assert found is not None and found.captured and found.gateway_ref == made.gateway_ref
