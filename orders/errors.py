"""The one exception hierarchy. Each class says whether a retry can help.

The web layer translates these to problem+json in one place; the job runner
retries ``retryable`` ones with backoff and ends the checkout for the rest.

A class names what it changes from its parent in its header, e.g.
``class NotFound(ShopError, code="not_found", status=404, title="Not found")``.
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

    def __init_subclass__(
        cls,
        *,
        code: str | None = None,
        status: int | None = None,
        title: str | None = None,
        retryable: bool | None = None,
    ) -> None:
        """Set what the class header names; the rest is inherited."""
        super().__init_subclass__()
        named = {"code": code, "status": status, "title": title, "retryable": retryable}
        for name, value in named.items():
            if value is not None:
                setattr(cls, name, value)

    def __init__(self, message: str = "", *, code: str | None = None) -> None:
        super().__init__(message or self.title)
        self.message = message or self.title
        if code:
            self.code = code


# --- request errors (4xx) ---------------------------------------------------------


class ValidationFailed(ShopError, code="validation_error", status=422, title="Validation failed"):
    def __init__(self, errors: list[FieldError], message: str = "") -> None:
        super().__init__(message or "; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = errors


class NotFound(ShopError, code="not_found", status=404, title="Not found"): ...


class Conflict(ShopError, code="conflict", status=409, title="Conflict"): ...


class IdempotencyMismatch(
    ShopError,
    code="idempotency_key_reused",
    status=422,
    title="Idempotency-Key reused with a different body",
): ...


class Overloaded(
    ShopError, retryable=True, code="overloaded", status=503, title="Service overloaded"
):
    def __init__(self, message: str = "", *, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DatabaseUnavailable(Overloaded, code="database_unavailable", title="Database unavailable"):
    """No database connection within ``DB_POOL_TIMEOUT``, or the database is down."""


class RateLimited(ShopError, code="rate_limited", status=429, title="Too many requests"):
    def __init__(self, message: str = "", retry_after: int = 1, *, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


# --- pipeline errors ----------------------------------------------------------------


class StepFailed(ShopError, code="processing_error"):
    """A permanent business outcome that ends the checkout as failed."""


class OutOfStock(StepFailed, code="out_of_stock", title="Out of stock"): ...


class PaymentDeclined(StepFailed, code="payment_declined", title="Payment declined"): ...


class TransientError(ShopError, retryable=True, code="transient_error", title="Temporary failure"):
    """Something outside us failed for now; the job is retried with backoff."""


class GatewayError(
    TransientError, code="payment_unavailable", title="Payment gateway unavailable"
): ...


class GatewayCircuitOpen(
    GatewayError, code="payment_unavailable", title="Payment gateway circuit open"
):
    """The breaker is open: wait and retry without using up an attempt."""


class MailError(TransientError, code="mail_unavailable", title="Mail server unavailable"): ...


class BrokerUnavailable(
    TransientError, code="broker_unavailable", title="Queue broker unavailable"
): ...


class LeaseLost(ShopError, code="lease_lost"):
    """Another worker took this job over (our lease expired); drop our work."""


class IllegalTransition(ShopError, code="illegal_transition"):
    """A checkout was asked to move where the state table does not allow."""
