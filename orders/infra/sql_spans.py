"""A span for each SQL statement run inside a job's or a request's span (the SQLAlchemy
engine events), named by its operation and first table: ``UPDATE jobs``.

:mod:`orders.infra.tracing` installs the hooks when it switches tracing on; with it off
they are not there at all.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

_SPAN_KEY = "_shop_trace_span"
_TABLE = re.compile(r"\b(?:FROM|INTO|UPDATE|JOIN)\s+\"?(\w+)", re.IGNORECASE)

_tracer: Tracer | None = None


def install(tracer: Tracer) -> None:
    """Trace every statement run inside a recording span, with ``tracer``."""
    global _tracer
    _tracer = tracer
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    event.listen(Engine, "before_cursor_execute", _before_execute)
    event.listen(Engine, "after_cursor_execute", _after_execute)
    event.listen(Engine, "handle_error", _on_error)


def remove() -> None:
    """Stop tracing statements (tracing switched off)."""
    global _tracer
    _tracer = None
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    event.remove(Engine, "before_cursor_execute", _before_execute)
    event.remove(Engine, "after_cursor_execute", _after_execute)
    event.remove(Engine, "handle_error", _on_error)


def sql_span_name(statement: str) -> str:
    """``SELECT jobs``: the statement's operation and its first table."""
    operation = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else "SQL"
    table = _TABLE.search(statement)
    return f"{operation} {table.group(1)}" if table else operation


def _before_execute(
    conn: Any, _cursor: Any, statement: str, _params: Any, context: Any, _many: bool
) -> None:
    tracer = _tracer
    if tracer is None or context is None:
        return
    from opentelemetry.trace import SpanKind, get_current_span

    if not get_current_span().is_recording():
        return  # SQL outside a job or request (the sweeper, heartbeats) starts no trace
    span = tracer.start_span(
        sql_span_name(statement),
        kind=SpanKind.CLIENT,
        attributes={
            "db.system.name": conn.dialect.name,
            "db.namespace": str(conn.engine.url.database or ""),
            "db.query.text": statement[:2000],
        },
    )
    setattr(context, _SPAN_KEY, span)


def _after_execute(
    _conn: Any, _cursor: Any, _statement: str, _params: Any, context: Any, _many: bool
) -> None:
    span = getattr(context, _SPAN_KEY, None)
    if span is not None:
        setattr(context, _SPAN_KEY, None)
        span.end()


def _on_error(exception_context: Any) -> None:
    context = exception_context.execution_context
    span = getattr(context, _SPAN_KEY, None) if context is not None else None
    if span is None:
        return
    from opentelemetry.trace import Status, StatusCode

    setattr(context, _SPAN_KEY, None)
    error = exception_context.original_exception
    span.record_exception(error)
    span.set_status(Status(StatusCode.ERROR, type(error).__name__))
    span.end()
