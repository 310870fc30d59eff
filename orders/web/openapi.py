"""The OpenAPI 3.1 document of the JSON API (``GET /api/openapi.json``), written by hand.

tests/test_openapi.py fuzzes the real API against it with schemathesis: no 5xx,
every documented status and schema respected, every error problem+json.
"""

from __future__ import annotations

from typing import Any

from orders.web.openapi_schemas import SCHEMAS, Schema, ref, string


def _problem(description: str, retry_after: bool = False) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/problem+json": {"schema": ref("Problem")}},
    }
    if retry_after:
        response["headers"] = {
            "Retry-After": {"schema": {"type": "string"}, "description": "seconds"}
        }
    return response


def _json(schema: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": ref(schema)}},
    }


def _body(schema: str) -> dict[str, Any]:
    """A required JSON request body of the component schema ``schema``."""
    return {"required": True, "content": {"application/json": {"schema": ref(schema)}}}


def _param(name: str, where: str, schema: Schema) -> dict[str, Any]:
    """A parameter ``where`` (path, query or header); only a path parameter is required."""
    return {"name": name, "in": where, "required": where == "path", "schema": schema}


SESSION_ID = _param("X-Session-Id", "header", string(maxLength=255))
CHECKOUT_HEADERS = [
    _param("Idempotency-Key", "header", string(minLength=1, maxLength=255)),
    SESSION_ID,
]
CHECKOUT_BODY = _body("CheckoutRequest")

JOB_ID = _param("jobId", "path", string(minLength=1, maxLength=64))


CHECKOUT_ERRORS = {
    "400": _problem("Malformed JSON"),
    "409": _problem("Same Idempotency-Key, claimed without a checkout by an older release"),
    "413": _problem("Body over the size limit"),
    "415": _problem("Not JSON"),
    "422": _problem("Validation failed, or Idempotency-Key reused with another body"),
    "429": _problem("Rate limited (CHECKOUT_RATE_LIMIT)", retry_after=True),
    "503": _problem(
        "Overloaded (OVERLOAD_POLICY=shed), or no database connection within DB_POOL_TIMEOUT",
        retry_after=True,
    ),
}


def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Shop API",
            "version": "1.0.0",
            "description": "Checkout in milliseconds; the slow work in the background. "
            "Every error is application/problem+json.",
        },
        "paths": {
            "/api/products": {
                "get": {
                    "operationId": "listProducts",
                    "responses": {"200": _json("Products", "The catalogue")},
                }
            },
            "/api/checkout": {
                "post": {
                    "operationId": "placeCheckout",
                    "parameters": CHECKOUT_HEADERS,
                    "requestBody": CHECKOUT_BODY,
                    "responses": {
                        "202": _json("Accepted", "Recorded; processing in the background"),
                        "200": _json("Accepted", "Processed inline (OVERLOAD_POLICY=sync)"),
                        **CHECKOUT_ERRORS,
                    },
                }
            },
            "/api/checkout/sync": {
                "post": {
                    "operationId": "placeCheckoutSync",
                    "description": "The seed's synchronous checkout, for benchmarks: the "
                    "steps run in the request.",
                    "parameters": CHECKOUT_HEADERS,
                    "requestBody": CHECKOUT_BODY,
                    "responses": {
                        "201": _json("SyncResult", "The order exists"),
                        "200": _json("SyncResult", "The checkout failed, or is still running"),
                        **CHECKOUT_ERRORS,
                        "404": _problem(
                            "Not served here (SYNC_CHECKOUT_ENABLED; unset: development only)"
                        ),
                        "429": _problem(
                            "Rate limited (SYNC_CHECKOUT_RATE_LIMIT)", retry_after=True
                        ),
                    },
                }
            },
            "/api/orders/status/{jobId}/stream": {
                "get": {
                    "operationId": "checkoutProgressStream",
                    "parameters": [
                        JOB_ID,
                        _param("Last-Event-ID", "header", string()),
                        _param("lastEventId", "query", string()),
                    ],
                    "responses": {
                        "200": {
                            "description": "Server-Sent Events: the current state, then each "
                            "step; ends after completed or failed",
                            "content": {"text/event-stream": {"schema": {"type": "string"}}},
                        },
                        "204": {"description": "The checkout is final and nothing is left"},
                        "404": _problem("Job not found"),
                        "422": _problem("Malformed Last-Event-ID (1-18 ASCII digits)"),
                        "429": _problem(
                            "Too many open streams (SSE_MAX_STREAMS, SSE_MAX_STREAMS_PER_CLIENT)",
                            retry_after=True,
                        ),
                    },
                }
            },
            "/api/payments": {
                "post": {
                    "operationId": "retryPayment",
                    "requestBody": _body("PaymentRetry"),
                    "responses": {
                        "202": _json("Accepted", "Queued again with the new card"),
                        "400": _problem("Malformed JSON"),
                        "404": _problem("Unknown job"),
                        "409": _problem(
                            "Not retryable, or MAX_PAYMENT_ATTEMPTS cards already tried "
                            "(code payment_attempts_exhausted)"
                        ),
                        "413": _problem("Body over the size limit"),
                        "415": _problem("Not JSON"),
                        "422": _problem("Validation failed"),
                        "429": _problem(
                            "Rate limited (PAYMENT_RETRY_RATE_LIMIT)", retry_after=True
                        ),
                    },
                }
            },
            "/api/orders/status/{jobId}": {
                "get": {
                    "operationId": "checkoutStatus",
                    "parameters": [JOB_ID],
                    "responses": {
                        "200": _json("Status", "The checkout's status"),
                        "404": _problem("Job not found"),
                    },
                }
            },
            "/api/orders/{orderNumber}": {
                "get": {
                    "operationId": "orderDetail",
                    "description": "The order number alone gives the public view; the "
                    "checkout's jobId (X-Job-Id or ?jobId=) or the session it was placed "
                    "from (X-Session-Id) gives the full view.",
                    "parameters": [
                        _param("orderNumber", "path", string(minLength=1, maxLength=64)),
                        _param("X-Job-Id", "header", string(maxLength=64)),
                        _param("jobId", "query", string(maxLength=64)),
                        SESSION_ID,
                    ],
                    "responses": {
                        "200": _json("OrderDetail", "The order: public or full view"),
                        "404": _problem("Order not found"),
                    },
                }
            },
            "/api/health/queues": {
                "get": {
                    "operationId": "queueHealth",
                    "description": "The seed's health shape; 503 carries the same body "
                    "(not problem+json) so monitors read the numbers either way.",
                    "responses": {
                        "200": _json("QueueHealth", "Healthy"),
                        "503": _json("QueueHealth", "Unhealthy"),
                    },
                }
            },
            "/api/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "responses": {
                        "200": {
                            "description": "This document",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
        },
        "components": {"schemas": SCHEMAS},
    }
