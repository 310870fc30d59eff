"""One trace per checkout across real gunicorn and huey_consumer processes, exported over
OTLP/HTTP to a receiver in this test (protobuf, decoded with opentelemetry-proto)."""

from __future__ import annotations

import gzip
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from tests.e2e.conftest import STACKS, open_stack
from tests.stack import Stack, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

CHECKOUT_STEPS = (
    "reserve-stock",
    "process-payment",
    "create-order",
    "update-inventory",
    "send-order-confirmation",
)
SQL = ("SELECT", "UPDATE", "INSERT", "DELETE", "WITH")


@dataclass(frozen=True)
class Span:
    name: str
    trace_id: str
    span_id: str
    parent_id: str | None
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    process: str  # the exporting process's shop.process: web or worker


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


@dataclass
class Receiver:
    """An OTLP/HTTP trace receiver: ``POST /v1/traces`` with a protobuf body."""

    spans: list[Span] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, request: ExportTraceServiceRequest) -> None:
        received = []
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    received.append(
                        Span(
                            span.name,
                            span.trace_id.hex(),
                            span.span_id.hex(),
                            span.parent_span_id.hex() or None,
                            span.start_time_unix_nano,
                            span.end_time_unix_nano,
                            {a.key: _value(a.value) for a in span.attributes},
                            str(resource.get("shop.process")),
                        )
                    )
        with self.lock:
            self.spans += received

    def trace(self, trace_id: str) -> list[Span]:
        with self.lock:
            return [span for span in self.spans if span.trace_id == trace_id]

    def wait(
        self, trace_id: str, done: Callable[[list[Span]], bool], timeout: float = 60
    ) -> list[Span]:
        deadline = time.monotonic() + timeout
        while True:
            spans = self.trace(trace_id)
            if done(spans):
                return spans
            if time.monotonic() > deadline:
                raise AssertionError(f"trace incomplete: {sorted(s.name for s in spans)}")
            time.sleep(0.1)


def serve(receiver: Receiver) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the http.server spelling)
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            if self.path != "/v1/traces":
                self.send_error(404)
                return
            receiver.add(ExportTraceServiceRequest.FromString(body))
            reply = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *_args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append(envelope)
        return "250 OK"


@pytest.fixture(scope="module", params=STACKS)
def traced(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Stack, Receiver]]:
    """The whole shop with tracing on, exporting to a receiver here, mailing to an SMTP
    server here."""
    receiver = Receiver()
    with ExitStack() as exits:
        server = serve(receiver)
        exits.callback(server.server_close)
        exits.callback(server.shutdown)
        smtp = Controller(Inbox(), hostname="127.0.0.1", port=free_port())
        smtp.start()
        exits.callback(smtp.stop)
        shop = open_stack(
            request.param,
            tmp_path_factory,
            exits,
            OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{server.server_address[1]}",
            OTEL_SERVICE_NAME="shop-e2e",
            OTEL_BSP_SCHEDULE_DELAY="100",
            SMTP_URL=f"smtp://127.0.0.1:{smtp.port}",
        )
        exits.callback(shop.close)
        yield shop.up(), receiver


def new_trace() -> tuple[str, str, str]:
    """(trace id, the caller's span id, its traceparent header)."""
    trace_id, span_id = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    return trace_id, span_id, f"00-{trace_id}-{span_id}-01"


def one(spans: list[Span], name: str) -> Span:
    found = [span for span in spans if span.name == name]
    assert len(found) == 1, (name, [s.name for s in spans])
    return found[0]


def children(spans: list[Span], parent: Span) -> list[Span]:
    return [span for span in spans if span.parent_id == parent.span_id]


def render(spans: list[Span]) -> str:
    """The trace as a tree: start (from the first span) and duration, in ms."""
    origin = min(span.start_ns for span in spans)
    ids = {span.span_id for span in spans}
    under: dict[str | None, list[Span]] = {}
    for span in spans:  # the caller's span is not here: its children are the roots
        under.setdefault(span.parent_id if span.parent_id in ids else None, []).append(span)
    lines = ["    start     took  span [process]"]

    def walk(parent: str | None, depth: int) -> None:
        for span in sorted(under.get(parent, []), key=lambda s: s.start_ns):
            start, took = (span.start_ns - origin) / 1e6, (span.end_ns - span.start_ns) / 1e6
            lines.append(f"{start:9.1f} {took:8.1f}  {'  ' * depth}{span.name} [{span.process}]")
            walk(span.span_id, depth + 1)

    walk(None, 0)
    return "\n".join(lines)


def test_every_step_of_a_checkout_is_a_span_in_the_callers_trace(traced):  # type: ignore[no-untyped-def]
    stack, receiver = traced
    item = f"TRC-{uuid.uuid4().hex[:8]}"
    stack.add_product(item, stock=5, price_cents=1500)
    trace_id, caller, traceparent = new_trace()

    job_id = stack.checkout(item, 1, traceparent=traceparent)
    assert stack.wait_final([job_id])[job_id]["status"] == "completed"
    stack.wait_idle()

    def complete(spans: list[Span]) -> bool:
        names = {span.name for span in spans}
        return {
            "POST /api/checkout",
            "payment-gateway charge",
            "smtp send",
            *CHECKOUT_STEPS,
        } <= names

    spans = receiver.wait(trace_id, complete)
    print(f"\ntrace {trace_id} ({stack.env['DATABASE_URL'].split(':')[0]}):\n{render(spans)}")

    request = one(spans, "POST /api/checkout")
    assert request.parent_id == caller and request.process == "web"
    assert request.attributes["http.response.status_code"] == 202
    steps = {span.name: span for span in children(spans, request)}
    assert set(CHECKOUT_STEPS) <= set(steps), sorted(steps)
    for name in CHECKOUT_STEPS:
        step = steps[name]
        assert step.process == "worker" and step.attributes["job.outcome"] == "completed"
        inside = [span.name for span in children(spans, step)]
        assert any(n.startswith(SQL) for n in inside), (name, inside)  # its database work
    assert "payment-gateway charge" in {s.name for s in children(spans, steps["process-payment"])}
    assert "smtp send" in {s.name for s in children(spans, steps["send-order-confirmation"])}
    # the trace id is stored with the checkout's jobs, and the ops job page shows it
    stored = stack.scalar(
        "SELECT j.trace_context FROM jobs j JOIN checkouts c ON c.id = j.checkout_id "
        "WHERE c.public_id = :p AND j.type = 'create-order'",
        p=job_id,
    )
    assert stored == f"00-{trace_id}-{request.span_id}-01"


def test_a_retried_step_is_two_spans_in_the_same_trace(traced):  # type: ignore[no-untyped-def]
    stack, receiver = traced
    item = f"TRC-{uuid.uuid4().hex[:8]}"
    stack.add_product(item, stock=5)
    trace_id, _caller, traceparent = new_trace()

    job_id = stack.checkout(item, 1, token="tok_flaky", traceparent=traceparent)  # fails once
    assert stack.wait_final([job_id])[job_id]["status"] == "completed"

    def both(spans: list[Span]) -> bool:
        outcomes = {s.attributes.get("job.outcome") for s in spans if s.name == "process-payment"}
        return {"retrying", "completed"} <= outcomes

    spans = receiver.wait(trace_id, both)
    payments = sorted(
        (s.attributes["job.attempt"], s.attributes["job.outcome"])
        for s in spans
        if s.name == "process-payment"
    )
    # (the first attempt, in a batch, may also show the batch's span: "ran alone")
    assert {(1, "retrying"), (2, "completed")} <= set(payments), payments
    request = one(spans, "POST /api/checkout")
    assert {s.parent_id for s in spans if s.name == "process-payment"} == {request.span_id}
