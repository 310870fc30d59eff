"""The request side of a checkout's trace: a span that continues the caller's W3C
``traceparent`` (see :mod:`orders.infra.tracing`; nothing when tracing is off)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from flask import request

from orders.errors import ShopError
from orders.infra import tracing

View = TypeVar("View", bound=Callable[..., Any])


def traced_request(view: View) -> View:
    """Run ``view`` in a server span named by its route (``POST /api/checkout``); the
    checkout it places stores that span's context for its jobs."""

    @functools.wraps(view)
    def traced(*args: Any, **kwargs: Any) -> Any:
        if not tracing.enabled():
            return view(*args, **kwargs)
        rule = request.url_rule.rule if request.url_rule is not None else request.path
        headers = request.headers
        name = f"{request.method} {rule}"
        with tracing.server_span(
            name, headers.get("traceparent"), headers.get("tracestate")
        ) as span:
            try:
                response = view(*args, **kwargs)
            except ShopError as exc:  # answered by the error handlers, as problem+json
                tracing.answered(span, exc.status, exc)
                raise
            except Exception as exc:
                tracing.answered(span, 500, exc)
                raise
            tracing.answered(span, getattr(response, "status_code", 200))
            return response

    return traced  # type: ignore[return-value]
