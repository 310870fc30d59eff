"""Component schemas of the OpenAPI document (``orders.web.openapi``)."""

from __future__ import annotations

from typing import Any

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
    "SyncResult": {
        "type": "object",
        "required": ["success", "data"],
        "properties": {
            "success": {"type": "boolean"},
            "data": {
                "type": "object",
                "required": ["jobId", "trackingUrl", "status"],
                "properties": {
                    "jobId": {"type": "string"},
                    "trackingUrl": {"type": "string"},
                    "status": {"enum": ["queued", "processing", "completed", "failed"]},
                },
            },
        },
    },
    "QueueHealth": {
        "type": "object",
        "required": ["status", "queues", "workers"],
        "properties": {
            "status": {"enum": ["healthy", "unhealthy"]},
            "queues": {
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "required": [
                        "waiting",
                        "active",
                        "scheduled",
                        "completed",
                        "failed",
                        "oldestWaitingSeconds",
                    ],
                },
            },
            "workers": {
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "required": ["alive", "dead", "concurrency"],
                    "properties": {
                        "alive": {"type": "integer"},
                        "dead": {"type": "integer"},
                        "concurrency": {"type": "integer"},
                    },
                    "additionalProperties": False,
                },
            },
        },
    },
    "OrderDetail": {
        "type": "object",
        "required": ["orderNumber", "status", "view"],
        "properties": {
            "orderNumber": {"type": "string"},
            "status": {"type": "string"},
            "view": {"enum": ["public", "full"]},
            "email": {"type": "string"},
            "totalCents": {"type": "integer"},
            "subtotalCents": {"type": "integer"},
            "discountCents": {"type": "integer"},
            "jobId": {"type": "string"},
            "createdAt": {"type": ["string", "null"]},
            "items": {"type": "array", "items": {"type": "object"}},
            "payments": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["status", "amountCents"],
                    "properties": {
                        "status": {"enum": ["captured", "refunded", "declined", "failed"]},
                        "amountCents": {"type": "integer"},
                    },
                    "additionalProperties": False,
                },
            },
            "timeline": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "type", "message", "at"],
                    "properties": {
                        "id": {"type": "integer"},
                        "type": {"enum": ["progress", "completed", "failed"]},
                        "message": {"type": "string"},
                        "at": {"type": ["string", "null"]},
                    },
                },
            },
        },
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
    },
}
