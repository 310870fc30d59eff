"""The OpenAPI 3.1 document of the JSON API (``GET /api/openapi.json``), written by hand.

tests/test_openapi.py fuzzes the real API against it with schemathesis: no 5xx,
every documented status and schema respected, every error problem+json.
"""

from __future__ import annotations

from typing import Any

PROBLEM = {"$ref": "#/components/schemas/Problem"}


def _problem(description: str, retry_after: bool = False) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/problem+json": {"schema": PROBLEM}},
    }
    if retry_after:
        response["headers"] = {
            "Retry-After": {"schema": {"type": "string"}, "description": "seconds"}
        }
    return response


def _json(ref: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}},
    }


JOB_ID = {
    "name": "jobId",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "minLength": 1, "maxLength": 64},
}

SCHEMAS: dict[str, Any] = {
    "Problem": {
        "type": "object",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "code": {"type": "string"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["field", "message"],
                    "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                },
            },
        },
    },
    "Product": {
        "type": "object",
        "required": ["sku", "name", "priceCents", "stock"],
        "properties": {
            "sku": {"type": "string"},
            "name": {"type": "string"},
            "priceCents": {"type": "integer"},
            "stock": {"type": "integer"},
        },
    },
    "Products": {
        "type": "object",
        "required": ["products"],
        "properties": {
            "products": {"type": "array", "items": {"$ref": "#/components/schemas/Product"}}
        },
    },
    "CheckoutRequest": {
        "type": "object",
        "required": ["email"],
        "properties": {
            "email": {"type": "string", "format": "email", "maxLength": 254},
            "items": {
                "type": "array",
                "minItems": 1,
                "maxItems": 50,
                "items": {
                    "type": "object",
                    "required": ["sku", "quantity"],
                    "properties": {
                        "sku": {"type": "string", "minLength": 1, "maxLength": 64},
                        "quantity": {"type": "integer", "minimum": 1, "maximum": 20},
                    },
                },
            },
            "cartId": {"type": "string", "maxLength": 64},
            "customerId": {"type": "string", "maxLength": 100},
            "discountCode": {"type": "string", "maxLength": 64},
            "paymentToken": {"type": "string", "maxLength": 100},
        },
    },
    "PaymentRetry": {
        "type": "object",
        "required": ["jobId", "paymentToken"],
        "properties": {
            "jobId": {"type": "string", "minLength": 1, "maxLength": 64},
            "paymentToken": {"type": "string", "maxLength": 100},
        },
    },
    "Accepted": {
        "type": "object",
        "required": ["success", "message", "data"],
        "properties": {
            "success": {"type": "boolean"},
            "message": {"type": "string"},
            "data": {
                "type": "object",
                "required": ["jobId", "status", "trackingUrl", "streamUrl"],
                "properties": {
                    "jobId": {"type": "string"},
                    "status": {"type": "string"},
                    "estimatedProcessingTime": {"type": "string"},
                    "trackingUrl": {"type": "string"},
                    "streamUrl": {"type": "string"},
                    "result": {"$ref": "#/components/schemas/Status"},
                },
            },
        },
    },
    "Status": {
        "type": "object",
        "required": ["status"],
        "properties": {
            "status": {"enum": ["queued", "processing", "completed", "failed"]},
            "progress": {"type": "integer", "minimum": 0, "maximum": 100},
            "step": {"type": "string"},
            "message": {"type": "string"},
            "error": {"type": "string"},
            "code": {"type": "string"},
            "order": {
                "type": "object",
                "properties": {
                    "orderId": {"type": ["integer", "null"]},
                    "orderNumber": {"type": ["string", "null"]},
                    "totalCents": {"type": "integer"},
                },
            },
        },
    },
    "OrderDetail": {
        "type": "object",
        "required": ["orderNumber", "status", "totalCents", "items", "payments", "timeline"],
        "properties": {
            "orderNumber": {"type": "string"},
            "status": {"type": "string"},
            "email": {"type": "string"},
            "totalCents": {"type": "integer"},
            "subtotalCents": {"type": "integer"},
            "discountCents": {"type": "integer"},
            "jobId": {"type": "string"},
            "createdAt": {"type": ["string", "null"]},
            "items": {"type": "array", "items": {"type": "object"}},
            "payments": {"type": "array", "items": {"type": "object"}},
            "timeline": {"type": "array", "items": {"type": "object"}},
        },
    },
}

CHECKOUT_ERRORS = {
    "400": _problem("Malformed JSON"),
    "409": _problem("Same Idempotency-Key while the first request is still being recorded"),
    "413": _problem("Body over the size limit"),
    "415": _problem("Not JSON"),
    "422": _problem("Validation failed, or Idempotency-Key reused with another body"),
    "429": _problem("Rate limited (CHECKOUT_RATE_LIMIT)", retry_after=True),
    "503": _problem("Overloaded, with OVERLOAD_POLICY=shed", retry_after=True),
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
                    "parameters": [
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "required": False,
                            "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                        },
                        {
                            "name": "X-Session-Id",
                            "in": "header",
                            "required": False,
                            "schema": {"type": "string", "maxLength": 255},
                        },
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/CheckoutRequest"}
                            }
                        },
                    },
                    "responses": {
                        "202": _json("Accepted", "Recorded; processing in the background"),
                        "200": _json("Accepted", "Processed inline (OVERLOAD_POLICY=sync)"),
                        **CHECKOUT_ERRORS,
                    },
                }
            },
            "/api/payments": {
                "post": {
                    "operationId": "retryPayment",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/PaymentRetry"}
                            }
                        },
                    },
                    "responses": {
                        "202": _json("Accepted", "Queued again with the new card"),
                        "400": _problem("Malformed JSON"),
                        "404": _problem("Unknown job"),
                        "409": _problem("Not retryable"),
                        "413": _problem("Body over the size limit"),
                        "415": _problem("Not JSON"),
                        "422": _problem("Validation failed"),
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
                    "parameters": [
                        {
                            "name": "orderNumber",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "minLength": 1, "maxLength": 64},
                        }
                    ],
                    "responses": {
                        "200": _json("OrderDetail", "The order, its payments and timeline"),
                        "404": _problem("Order not found"),
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
