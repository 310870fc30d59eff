"""One trace per checkout (orders.infra.tracing): the request, the stored context, the
job spans with their SQL and outside calls, in-process with an in-memory exporter; and
nothing at all when the OTEL_* variables are unset."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import select

from orders.infra import sql_spans, tracing
from orders.infra.traced import traced_gateway
from orders.models import Checkout, Job
from orders.pipeline.jobs import send_after_commit
from orders.pipeline.sweeper import sweep
from orders.shop.recovery import remind_abandoned_carts
from tests.factories import checkout_body, make_product
from tests.ops_support import login
from tests.test_recovery import make_cart

ROOT = Path(__file__).resolve().parent.parent
CALLER_TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN = "b7ad6b7169203331"
TRACEPARENT = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"
CHECKOUT_STEPS = (
    "reserve-stock",
    "process-payment",
    "create-order",
    "update-inventory",
    "send-order-confirmation",
)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on in this process, every span kept in memory; off again afterwards."""
    exporter = InMemorySpanExporter()
    assert tracing.setup("test", {}, exporter=exporter)
    yield exporter
    tracing.reset()


def hexid(value: int) -> str:
    return format(value, "016x")


def in_trace(exporter: InMemorySpanExporter, trace: str = CALLER_TRACE) -> list[ReadableSpan]:
    return [
        s
        for s in exporter.get_finished_spans()
        if s.context is not None and format(s.context.trace_id, "032x") == trace
    ]


def children(spans: list[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    assert parent.context is not None
    return [s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id]


def place(client, session, token: str = "tok_visa") -> str:  # type: ignore[no-untyped-def]
    product = make_product(session, stock=5)
    body = checkout_body((product.sku, 1), paymentToken=token)
    response = client.post("/api/checkout", json=body, headers={"traceparent": TRACEPARENT})
    assert response.status_code == 202, response.get_data(as_text=True)
    return str(response.get_json()["data"]["jobId"])


@pytest.mark.parametrize("batched", [False, True], ids=["one-by-one", "batched"])
def test_a_checkout_is_one_trace_under_the_callers_span(client, session, drain, spans, batched):  # type: ignore[no-untyped-def]
    drain.batched = batched  # as the consumers run them (the payments rate limit off)
    settings = replace(drain.ctx.settings, payments_rate_limit=0)
    drain.ctx = replace(drain.ctx, settings=settings, gateway=traced_gateway(drain.gateway))
    public_id = place(client, session)
    drain()

    checkout = session.scalar(select(Checkout).where(Checkout.public_id == public_id))
    assert checkout.status.value == "completed"
    found = in_trace(spans)
    (request,) = [s for s in found if s.name == "POST /api/checkout"]
    assert request.parent is not None and hexid(request.parent.span_id) == CALLER_SPAN
    assert request.attributes is not None
    assert request.attributes["http.response.status_code"] == 202
    steps = {s.name: s for s in children(found, request)}
    assert set(CHECKOUT_STEPS) <= set(steps), sorted(steps)
    for name in CHECKOUT_STEPS:
        assert steps[name].attributes is not None
        assert steps[name].attributes["job.type"] == name
    # the stored context is the request's span, on the checkout and on each of its jobs
    assert request.context is not None
    stored = f"00-{CALLER_TRACE}-{hexid(request.context.span_id)}-01"
    assert checkout.trace_context == stored
    jobs = session.scalars(select(Job).where(Job.checkout_id == checkout.id)).all()
    assert len(jobs) == len(CHECKOUT_STEPS)
    assert {job.trace_context for job in jobs} == {stored}
    # a batch of one is the single case: the step's SQL and gateway call are inside it
    charge = [s.name for s in children(found, steps["process-payment"])]
    assert "payment-gateway charge" in charge, charge
    for name in ("reserve-stock", "create-order", "update-inventory"):
        sql = [s.name for s in children(found, steps[name])]
        assert any(n.startswith(("UPDATE", "INSERT", "SELECT", "WITH")) for n in sql), (name, sql)


def test_a_retry_and_a_redrive_by_the_sweeper_stay_in_the_trace(
    client, session, drain, dispatched, spans
):  # type: ignore[no-untyped-def]
    dispatched.fail = True  # the broker is down: the first job's message never leaves
    public_id = place(client, session, token="tok_flaky")  # its first charge fails
    dispatched.fail = False
    assert drain() == []
    assert sweep(session, drain.ctx).resent == 1  # the sweeper re-drives it
    drain()

    checkout = session.scalar(select(Checkout).where(Checkout.public_id == public_id))
    assert checkout.status.value == "completed"
    found = in_trace(spans)
    outcomes = sorted(
        (s.attributes or {}).get("job.outcome", "") for s in found if s.name == "process-payment"
    )
    assert outcomes == ["completed", "retrying"]
    names = {s.name for s in found}
    assert set(CHECKOUT_STEPS) <= names, sorted(names)


def test_a_recovery_email_has_a_trace_of_its_own(session, settings, drain, dispatched, spans):  # type: ignore[no-untyped-def]
    make_cart(session, settings)
    (ref,) = remind_abandoned_carts(session, settings)
    session.commit()
    send_after_commit(session, [ref], dispatched)
    stored = session.get(Job, ref.id).trace_context
    trace = tracing.trace_id(stored)
    assert trace is not None
    drain()

    found = in_trace(spans, trace)
    (enqueue,) = [s for s in found if s.name == "enqueue send-recovery-email"]
    assert [s.name for s in children(found, enqueue)] == ["send-recovery-email"]


def test_off_stores_no_context_and_makes_no_span(client, session, drain):  # type: ignore[no-untyped-def]
    assert not tracing.enabled()
    public_id = place(client, session)
    drain()
    checkout = session.scalar(select(Checkout).where(Checkout.public_id == public_id))
    assert checkout.status.value == "completed"
    assert checkout.trace_context is None
    jobs = session.scalars(select(Job.trace_context).where(Job.checkout_id == checkout.id)).all()
    assert jobs and set(jobs) == {None}
    job = tracing.TracedJob("j", "reserve-stock", "orders", 1, TRACEPARENT)
    spans = tracing.run_spans([job])
    assert spans is tracing.OFF_SPANS
    with spans.of("j"):
        assert tracing.current_context() is None


def _probe(env: dict[str, str], tmp_path: Path) -> tuple[str, ...]:
    """Start the web app and a worker's module in a fresh interpreter with ``env``: is
    tracing on, are the tracing SDK and an exporter imported, which tracer provider is
    installed. (redis-py 8 imports OpenTelemetry's metrics API and SDK itself when they
    are installed, for its own opt-in metrics: only the tracing side is ours.)"""
    code = (
        "import sys, tasks, app\n"
        "app.create_app({'TESTING': True})\n"
        "from orders.infra import tracing\n"
        "from opentelemetry import trace\n"
        "sdk = 'opentelemetry.sdk.trace' in sys.modules\n"
        "exporter = any(m.startswith('opentelemetry.exporter') for m in sys.modules)\n"
        "provider = type(trace.get_tracer_provider()).__name__\n"
        "print(tracing.enabled(), sdk, exporter, provider)\n"
    )
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        cwd=ROOT,
        env={"DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin", "SHOP_ENV": "development", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return tuple(result.stdout.strip().splitlines()[-1].split())


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"OTEL_SERVICE_NAME": "shop", "OTEL_BSP_SCHEDULE_DELAY": "100"},  # no exporter asked
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_SDK_DISABLED": "true"},
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_TRACES_EXPORTER": "none"},
    ],
    ids=["unset", "service-name-only", "sdk-disabled", "exporter-none"],
)
def test_off_installs_no_tracing_sdk(env, tmp_path):  # type: ignore[no-untyped-def]
    assert _probe(env, tmp_path) == ("False", "False", "False", "ProxyTracerProvider")


def test_on_installs_the_sdk_provider_and_the_exporter(tmp_path):  # type: ignore[no-untyped-def]
    on = _probe({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}, tmp_path)
    assert on == ("True", "True", "True", "TracerProvider")


def test_an_otlp_protocol_not_installed_leaves_tracing_off(caplog):  # type: ignore[no-untyped-def]
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
    }
    with caplog.at_level(logging.ERROR, logger="orders.infra.tracing"):
        assert tracing.setup("test", env) is False
    assert not tracing.enabled()
    assert "'grpc' is not installed" in caplog.text


@pytest.mark.parametrize(
    ("env", "wanted"),
    [
        ({}, False),
        ({"OTEL_SERVICE_NAME": "shop"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
        ({"OTEL_SDK_DISABLED": "TRUE", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
    ],
)
def test_which_variables_switch_it_on(env, wanted):  # type: ignore[no-untyped-def]
    assert tracing.wanted(env) is wanted


def test_trace_ids_and_links_from_a_stored_context():  # type: ignore[no-untyped-def]
    stored = f"{TRACEPARENT}\nvendor=abc"
    assert tracing.trace_id(stored) == CALLER_TRACE
    assert tracing.trace_id("garbage") is None and tracing.trace_id(None) is None
    assert tracing.trace_url(stored, "") == (CALLER_TRACE, None)
    assert tracing.trace_url(stored, "https://jaeger.example/trace/{trace_id}") == (
        CALLER_TRACE,
        f"https://jaeger.example/trace/{CALLER_TRACE}",
    )


@pytest.mark.parametrize(
    ("statement", "name"),
    [
        ("SELECT jobs.id FROM jobs WHERE jobs.id = ?", "SELECT jobs"),
        ("  update checkouts SET stage=%(stage)s", "UPDATE checkouts"),
        ("INSERT INTO order_lines (a) VALUES (?)", "INSERT order_lines"),
        ("WITH i AS (SELECT 1) SELECT 2", "WITH"),
    ],
)
def test_sql_span_names(statement, name):  # type: ignore[no-untyped-def]
    assert sql_spans.sql_span_name(statement) == name


def test_the_ops_job_page_links_the_trace(settings, dispatched, session, spans):  # type: ignore[no-untyped-def]
    from app import create_app

    app = create_app(
        {
            "TESTING": True,
            "DISPATCH": dispatched,
            "data_dir": settings.data_dir,
            "database_url": settings.database_url,
            "checkout_rate_limit": "off",
            "trace_url_template": "https://jaeger.example/trace/{trace_id}",
        }
    )
    client = app.test_client()
    public_id = place(client, session)
    job = session.scalar(
        select(Job)
        .join(Checkout, Job.checkout_id == Checkout.id)
        .where(Checkout.public_id == public_id)
    )
    login(client)
    link = f'<a href="https://jaeger.example/trace/{CALLER_TRACE}"'
    assert link in client.get(f"/ops/jobs/{job.id}").get_data(as_text=True)
    assert link in client.get(f"/ops/checkouts/{public_id}").get_data(as_text=True)
    from orders.web.extensions import db

    with app.app_context():
        db.engine.dispose()


def test_the_ops_job_page_shows_the_plain_id_without_a_template(client, session, spans):  # type: ignore[no-untyped-def]
    public_id = place(client, session)
    job_id = session.scalar(
        select(Job.id)
        .join(Checkout, Job.checkout_id == Checkout.id)
        .where(Checkout.public_id == public_id)
    )
    login(client)
    page = client.get(f"/ops/jobs/{job_id}").get_data(as_text=True)
    assert f'<dd id="trace-id"><code>{CALLER_TRACE}</code></dd>' in page
