"""Component schemas of the OpenAPI document (``orders.web.openapi``), and the helpers
that write the JSON Schema they are made of."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Schema = dict[str, Any]


def ref(name: str) -> Schema:
    """A reference to the component schema ``name``."""
    return {"$ref": f"#/components/schemas/{name}"}


def string(**keywords: Any) -> Schema:
    return {"type": "string", **keywords}


def boolean() -> Schema:
    return {"type": "boolean"}


def integer(**keywords: Any) -> Schema:
    return {"type": "integer", **keywords}


def nullable(type_: str) -> Schema:
    return {"type": [type_, "null"]}


def enum(*values: str) -> Schema:
    return {"enum": list(values)}


def array(items: Schema, **keywords: Any) -> Schema:
    return {"type": "array", **keywords, "items": items}


def obj(required: Sequence[str] = (), properties: Schema | None = None, **keywords: Any) -> Schema:
    """An object: the names it requires, its properties, then any other ``keywords``."""
    schema: Schema = {"type": "object"}
    if required:
        schema["required"] = list(required)
    if properties is not None:
        schema["properties"] = properties
    return schema | keywords


CHECKOUT_STATUS = enum("queued", "processing", "completed", "failed")
# an order's public view carries none of the full view's properties; the full view all
_VIEWS = {
    "if": {"properties": {"view": {"const": "public"}}},
    "then": {
        "not": {
            "anyOf": [
                {"required": ["email"]},
                {"required": ["items"]},
                {"required": ["payments"]},
                {"required": ["timeline"]},
            ]
        }
    },
    "else": {"required": ["email", "totalCents", "items", "payments", "timeline"]},
}

SCHEMAS: dict[str, Schema] = {
    "Problem": obj(
        ["type", "title", "status", "detail"],
        {
            "type": string(),
            "title": string(),
            "status": integer(),
            "detail": string(),
            "code": string(),
            "errors": array(obj(["field", "message"], {"field": string(), "message": string()})),
        },
    ),
    "Product": obj(
        ["sku", "name", "priceCents", "stock"],
        {"sku": string(), "name": string(), "priceCents": integer(), "stock": integer()},
    ),
    "Products": obj(["products"], {"products": array(ref("Product"))}),
    "CheckoutRequest": obj(
        ["email"],
        {
            "email": string(format="email", maxLength=254),
            "items": array(
                obj(
                    ["sku", "quantity"],
                    {
                        "sku": string(minLength=1, maxLength=64),
                        "quantity": integer(minimum=1, maximum=20),
                    },
                ),
                minItems=1,
                maxItems=50,
            ),
            "cartId": string(maxLength=64),
            "customerId": string(maxLength=100),
            "discountCode": string(maxLength=64),
            "paymentToken": string(maxLength=100),
        },
    ),
    "PaymentRetry": obj(
        ["jobId", "paymentToken"],
        {"jobId": string(minLength=1, maxLength=64), "paymentToken": string(maxLength=100)},
    ),
    "Accepted": obj(
        ["success", "message", "data"],
        {
            "success": boolean(),
            "message": string(),
            "data": obj(
                ["jobId", "status", "trackingUrl", "streamUrl"],
                {
                    "jobId": string(),
                    "status": string(),
                    "estimatedProcessingTime": string(),
                    "trackingUrl": string(),
                    "streamUrl": string(),
                    "result": ref("Status"),
                },
            ),
        },
    ),
    "Status": obj(
        ["status"],
        {
            "status": CHECKOUT_STATUS,
            "progress": integer(minimum=0, maximum=100),
            "step": string(),
            "message": string(),
            "error": string(),
            "code": string(),
            "order": obj(
                properties={
                    "orderId": nullable("integer"),
                    "orderNumber": nullable("string"),
                    "totalCents": integer(),
                }
            ),
        },
    ),
    "SyncResult": obj(
        ["success", "data"],
        {
            "success": boolean(),
            "data": obj(
                ["jobId", "trackingUrl", "status"],
                {"jobId": string(), "trackingUrl": string(), "status": CHECKOUT_STATUS},
            ),
        },
    ),
    "QueueHealth": obj(
        ["status", "queues", "workers"],
        {
            "status": enum("healthy", "unhealthy"),
            "queues": obj(
                additionalProperties=obj(
                    [
                        "waiting",
                        "active",
                        "scheduled",
                        "completed",
                        "failed",
                        "oldestWaitingSeconds",
                    ]
                )
            ),
            "workers": obj(
                additionalProperties=obj(
                    ["alive", "dead", "concurrency"],
                    {"alive": integer(), "dead": integer(), "concurrency": integer()},
                    additionalProperties=False,
                )
            ),
        },
    ),
    "OrderDetail": obj(
        ["orderNumber", "status", "view"],
        {
            "orderNumber": string(),
            "status": string(),
            "view": enum("public", "full"),
            "email": string(),
            "totalCents": integer(),
            "subtotalCents": integer(),
            "discountCents": integer(),
            "jobId": string(),
            "createdAt": nullable("string"),
            "items": array(obj()),
            "payments": array(
                obj(
                    ["status", "amountCents"],
                    {
                        "status": enum("captured", "refunded", "declined", "failed"),
                        "amountCents": integer(),
                    },
                    additionalProperties=False,
                )
            ),
            "timeline": array(
                obj(
                    ["id", "type", "message", "at"],
                    {
                        "id": integer(),
                        "type": enum("progress", "completed", "failed"),
                        "message": string(),
                        "at": nullable("string"),
                    },
                )
            ),
        },
        **_VIEWS,
    ),
}
