"""The one exception hierarchy. Each class says whether a retry can help.

The web layer translates these to problem+json in one place; the job runner
retries ``retryable`` ones with backoff and ends the checkout for the rest.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str


class ShopError(Exception):
    """Base class. ``code`` is the machine-readable reason shown to clients."""

    retryable = False
    code = "error"
    status = 500
    title = "Internal error"

    def __init__(self, message: str = "", *, code: str | None = None) -> None:
        super().__init__(message or self.title)
        self.message = message or self.title
        if code:
            self.code = code


# --- request errors (4xx) ---------------------------------------------------------


class ValidationFailed(ShopError):
    code = "validation_error"
    status = 422
    title = "Validation failed"

    def __init__(self, errors: list[FieldError], message: str = "") -> None:
        super().__init__(message or "; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = errors


class NotFound(ShopError):
    code = "not_found"
    status = 404
    title = "Not found"


class Conflict(ShopError):
    code = "conflict"
    status = 409
    title = "Conflict"


class IdempotencyMismatch(ShopError):
    code = "idempotency_key_reused"
    status = 422
    title = "Idempotency-Key reused with a different body"


class Overloaded(ShopError):
    retryable = True
    code = "overloaded"
    status = 503
    title = "Service overloaded"

    def __init__(self, message: str = "", *, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DatabaseUnavailable(Overloaded):
    """No database connection within ``DB_POOL_TIMEOUT``, or the database is down."""

    code = "database_unavailable"
    title = "Database unavailable"


class RateLimited(ShopError):
    code = "rate_limited"
    status = 429
    title = "Too many requests"

    def __init__(self, message: str = "", retry_after: int = 1, *, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


# --- pipeline errors ----------------------------------------------------------------


class StepFailed(ShopError):
    """A permanent business outcome that ends the checkout as failed."""

    code = "processing_error"


class OutOfStock(StepFailed):
    code = "out_of_stock"
    title = "Out of stock"


class PaymentDeclined(StepFailed):
    code = "payment_declined"
    title = "Payment declined"


class TransientError(ShopError):
    """Something outside us failed for now; the job is retried with backoff."""

    retryable = True
    code = "transient_error"
    title = "Temporary failure"


class GatewayError(TransientError):
    code = "payment_unavailable"
    title = "Payment gateway unavailable"


class GatewayCircuitOpen(GatewayError):
    """The breaker is open: wait and retry without using up an attempt."""

    code = "payment_unavailable"
    title = "Payment gateway circuit open"


class MailError(TransientError):
    code = "mail_unavailable"
    title = "Mail server unavailable"


class BrokerUnavailable(TransientError):
    code = "broker_unavailable"
    title = "Queue broker unavailable"


class LeaseLost(ShopError):
    """Another worker took this job over (our lease expired); drop our work."""

    code = "lease_lost"


class IllegalTransition(ShopError):
    """A checkout was asked to move where the state table does not allow."""

    code = "illegal_transition"
