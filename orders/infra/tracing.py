"""One trace per checkout (OpenTelemetry), switched on by the standard ``OTEL_*`` variables.

Off (no ``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or
``OTEL_TRACES_EXPORTER``; or ``OTEL_SDK_DISABLED=true``, ``OTEL_TRACES_EXPORTER=none``):
nothing of OpenTelemetry is imported, and every function here is one check of a
module global (a span is a shared do-nothing object).

On (:func:`setup`, once per process): the SDK's tracer provider with a batch span
processor and the exporter the variables name (``otlp``, over http/protobuf, or
``console``). The SDK reads the rest itself: ``OTEL_SERVICE_NAME`` and
``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER``, ``OTEL_BSP_*``, the endpoint, headers,
timeout and compression. Its batch processor restarts its thread in a forked child and
flushes at interpreter exit (and :func:`shutdown` flushes when a gunicorn worker exits).

How a checkout becomes one trace: the request's span continues the caller's W3C
``traceparent``; its context is stored as a string on the checkout row and on every job
row made for it (``jobs.trace_context``). Whichever process runs a job later (a retry,
a re-drive by the sweeper) opens the job's span (:func:`job_span`) as a child of that
stored context; the gateway and SMTP calls (:func:`call_span`) and the SQL statements
(:mod:`orders.infra.sql_spans`) run inside it.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING

from orders.infra import sql_spans

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, Tracer

log = logging.getLogger(__name__)

SWITCHES = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_TRACES_EXPORTER",
)
"""Any of these set (and tracing not disabled) switches tracing on."""

INSTRUMENTATION = "orders"
STORED_LIMIT = 600  # a traceparent (55) and a tracestate (at most 512), one line apart
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")

_tracer: Tracer | None = None
_provider: TracerProvider | None = None
_lock = threading.Lock()


def wanted(environ: Mapping[str, str]) -> bool:
    """Do these variables ask for tracing?"""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    return any(environ.get(name, "").strip() for name in SWITCHES)


def enabled() -> bool:
    return _tracer is not None


def setup(
    process: str,
    environ: Mapping[str, str] | None = None,
    *,
    exporter: SpanExporter | None = None,
) -> bool:
    """Switch tracing on if ``environ`` (default: the process's) asks; True if on.

    Idempotent. ``process`` (web, worker) is a resource attribute (``shop.process``).
    ``exporter`` (tests): export there, span by span, and leave the global provider
    alone; :func:`reset` switches tracing off again.
    """
    global _tracer, _provider
    env = os.environ if environ is None else environ
    with _lock:
        if _tracer is not None:
            return True
        if exporter is None and not wanted(env):
            return False
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

        attributes: dict[str, str] = {"shop.process": process}
        named = env.get("OTEL_SERVICE_NAME") or "service.name=" in env.get(
            "OTEL_RESOURCE_ATTRIBUTES", ""
        )
        if not named:
            attributes["service.name"] = "shop"
        provider = TracerProvider(resource=Resource.create(attributes))
        if exporter is not None:
            provider.add_span_processor(SimpleSpanProcessor(exporter))
        else:
            exporters = _exporters(env)
            if not exporters:
                provider.shutdown()
                return False
            for one in exporters:
                provider.add_span_processor(BatchSpanProcessor(one))
            trace.set_tracer_provider(provider)
        _provider = provider
        _tracer = provider.get_tracer(INSTRUMENTATION)
        sql_spans.install(_tracer)
    log.info("tracing on (%s)", process)
    return True


def _exporters(env: Mapping[str, str]) -> list[SpanExporter]:
    """The exporters ``OTEL_TRACES_EXPORTER`` names (default ``otlp``); none if it names
    one this shop cannot build (said in the log: the shop runs on, untraced)."""
    names = [n.strip().lower() for n in env.get("OTEL_TRACES_EXPORTER", "otlp").split(",")]
    exporters: list[SpanExporter] = []
    for name in filter(None, names):
        if name == "otlp":
            protocol = (
                env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
                or "http/protobuf"
            ).strip()
            if protocol != "http/protobuf":
                log.error(
                    "tracing stays off: OTLP protocol %r is not installed (this shop exports "
                    "http/protobuf; set OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf and a 4318 "
                    "endpoint)",
                    protocol,
                )
                return []
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporters.append(OTLPSpanExporter())
        elif name == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            exporters.append(ConsoleSpanExporter())
        else:
            log.error("tracing stays off: unknown OTEL_TRACES_EXPORTER %r", name)
            return []
    return exporters


def shutdown() -> None:
    """Export what is buffered and stop (a gunicorn worker's exit; atexit does it too)."""
    if _provider is not None:
        _provider.shutdown()


def reset() -> None:
    """Switch tracing off again (tests): the SQL hooks go, the provider shuts down."""
    global _tracer, _provider
    with _lock:
        provider, _provider, _tracer = _provider, None, None
        if provider is not None:
            sql_spans.remove()
            provider.shutdown()


# --- stored context ---------------------------------------------------------------------


def current_context() -> str | None:
    """The active span's context as the string stored on rows (W3C ``traceparent``, and
    ``tracestate`` on a second line when there is one); None when off or outside a span."""
    if _tracer is None:
        return None
    from opentelemetry import trace

    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None
    stored = (
        f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}"
        f"-{int(span_context.trace_flags):02x}"
    )
    state = span_context.trace_state.to_header()
    if state and len(stored) + 1 + len(state) <= STORED_LIMIT:
        stored += "\n" + state
    return stored


def context_for_new_job(inherited: str | None, job_type: str) -> str | None:
    """The context a new job row stores: its checkout's (``inherited``); else the active
    span's; else, when on, that of a one-off ``enqueue`` span, so that every attempt of a
    job made outside any trace (a recovery email) still shares one trace."""
    if inherited is not None or _tracer is None:
        return inherited
    stored = current_context()
    if stored is not None:
        return stored
    from opentelemetry.trace import SpanKind, use_span

    span = _tracer.start_span(f"enqueue {job_type}", kind=SpanKind.PRODUCER)
    with use_span(span, end_on_exit=True):
        return current_context()


def extract(stored: str | None) -> Context | None:
    """The OpenTelemetry context a stored string names (None: none, or not readable)."""
    if not stored:
        return None
    from opentelemetry.trace import get_current_span
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    parent, _, state = stored.partition("\n")
    carrier = {"traceparent": parent}
    if state:
        carrier["tracestate"] = state
    context = TraceContextTextMapPropagator().extract(carrier)
    return context if get_current_span(context).get_span_context().is_valid else None


def trace_id(stored: str | None) -> str | None:
    """The trace id (32 hex digits) in a stored context; works with tracing off too."""
    if not stored:
        return None
    match = _TRACEPARENT.match(stored.partition("\n")[0])
    return match.group(1) if match else None


def trace_url(stored: str | None, template: str) -> tuple[str, str | None] | None:
    """(trace id, link) for the ops pages: the link from ``template`` (``TRACE_URL_TEMPLATE``,
    with ``{trace_id}``), None without one; None at all when nothing is stored."""
    found = trace_id(stored)
    if found is None:
        return None
    return found, template.replace("{trace_id}", found) if template else None


# --- spans ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TracedJob:
    """A job a run of the runner is about to step: what its span needs."""

    job_id: str
    job_type: str
    queue: str
    attempt: int
    stored_context: str | None


class RunSpans:
    """The spans of one run of the runner: one per job, each a child of the context
    stored with its job (so every attempt, by whichever consumer, joins its checkout's
    trace). ``of(job_id)`` makes a job's span current (its outside calls and SQL are
    its children); ``shared(job_ids)`` does so for a set-wise write of one job (with
    more, the write belongs to many traces and is in none)."""

    def __init__(self, spans: Mapping[str, Span] | None = None) -> None:
        self.spans = dict(spans or {})

    def of(self, job_id: str) -> AbstractContextManager[object]:
        span = self.spans.get(job_id)
        if span is None:
            return nullcontext()
        from opentelemetry.trace import use_span

        return use_span(span, end_on_exit=False)

    def shared(self, job_ids: Sequence[str]) -> AbstractContextManager[object]:
        if len(job_ids) != 1:
            return nullcontext()
        return self.of(job_ids[0])

    def done(self, outcomes: Mapping[str, str]) -> None:
        """Record the outcome of each job in ``outcomes`` and end its span."""
        if not self.spans:
            return
        from opentelemetry.trace import Status, StatusCode

        for job_id, outcome in outcomes.items():
            span = self.spans.pop(job_id, None)
            if span is None:
                continue
            span.set_attribute("job.outcome", outcome)
            if outcome in ("failed", "retrying"):
                span.set_status(Status(StatusCode.ERROR, outcome))
            span.end()


OFF_SPANS = RunSpans()


def run_spans(jobs: Sequence[TracedJob]) -> RunSpans:
    """Start the spans of a run's jobs (:data:`OFF_SPANS`, doing nothing, when off)."""
    if _tracer is None or not jobs:
        return OFF_SPANS
    from opentelemetry.trace import SpanKind

    return RunSpans(
        {
            job.job_id: _tracer.start_span(
                job.job_type,
                context=extract(job.stored_context),
                kind=SpanKind.CONSUMER,
                attributes={
                    "job.type": job.job_type,
                    "job.id": job.job_id,
                    "job.attempt": job.attempt,
                    "messaging.destination.name": job.queue,
                    **({"job.batch_size": len(jobs)} if len(jobs) > 1 else {}),
                },
            )
            for job in jobs
        }
    )


class _Off:
    """What :func:`call_span` and :func:`server_span` return when tracing is off:
    shared, stateless, nothing to allocate."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


_OFF = _Off()


def call_span(name: str, **attributes: str | int) -> AbstractContextManager[object]:
    """A span around one call to the outside world (the gateway, SMTP), a child of the
    active span; nothing outside a span (a stray call starts no trace of its own)."""
    if _tracer is None:
        return _OFF
    from opentelemetry.trace import SpanKind, get_current_span

    if not get_current_span().is_recording():
        return _OFF
    return _tracer.start_as_current_span(name, kind=SpanKind.CLIENT, attributes=attributes)


def server_span(
    name: str, traceparent: str | None, tracestate: str | None = None
) -> AbstractContextManager[object]:
    """A request's span, continuing the caller's W3C ``traceparent`` (if it sent one)."""
    if _tracer is None:
        return _OFF
    from opentelemetry.trace import SpanKind
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier = {"traceparent": traceparent or ""}
    if tracestate:
        carrier["tracestate"] = tracestate
    return _tracer.start_as_current_span(
        name,
        context=TraceContextTextMapPropagator().extract(carrier),
        kind=SpanKind.SERVER,
        record_exception=False,
        set_status_on_exception=False,
    )


def answered(span: object, status: int, error: BaseException | None = None) -> None:
    """Record a request's answer on its :func:`server_span` (5xx: an error)."""
    if _tracer is None or span is None:
        return
    from opentelemetry.trace import Span, Status, StatusCode

    assert isinstance(span, Span)
    span.set_attribute("http.response.status_code", status)
    if error is not None and status >= 500:
        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, type(error).__name__))
