"""Per-client rate limits, and security headers on every response."""

from __future__ import annotations

from flask import Flask, Response, current_app, request

from orders.config import Settings
from orders.errors import RateLimited
from orders.infra.ratelimit import FixedWindowLimiter, parse_limits

API_CSP = "default-src 'none'; frame-ancestors 'none'"
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; "
    "form-action 'self'; object-src 'none'"
)
HSTS = "max-age=31536000; includeSubDomains"

LIMITS = {
    "checkout": ("checkout_rate_limit", "CHECKOUT_RATE_LIMIT", "checkouts"),
    "sync": ("sync_checkout_rate_limit", "SYNC_CHECKOUT_RATE_LIMIT", "synchronous checkouts"),
    "shop": ("shop_rate_limit", "SHOP_RATE_LIMIT", "form submissions"),
    "payment": ("payment_retry_rate_limit", "PAYMENT_RETRY_RATE_LIMIT", "card retries"),
}
"""Each limiter: the setting that configures it, its variable, what it counts."""


def init_security(app: Flask) -> None:
    settings: Settings = app.extensions["shop.settings"]
    app.extensions["shop.limiters"] = {
        name: FixedWindowLimiter(
            parse_limits(getattr(settings, field), variable),
            settings.redis_url,
            settings.queue_prefix,
            name,
        )
        for name, (field, variable, _what) in LIMITS.items()
    }

    @app.after_request
    def security_headers(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
        html = response.mimetype == "text/html"
        headers.setdefault("Content-Security-Policy", PAGE_CSP if html else API_CSP)
        if request.endpoint != "static":
            # pages and answers may carry an email, an order, an operator's view: no copy
            # is kept by the browser or a shared cache (streams set their own no-cache)
            headers.setdefault("Cache-Control", "no-store")
        if settings.is_production:
            headers.setdefault("Strict-Transport-Security", HSTS)
        return response


def limit(name: str) -> None:
    """Count this request against limiter ``name`` (see :data:`LIMITS`) for its client;
    raise :class:`RateLimited` (429 + ``Retry-After``) past the limit."""
    limiter: FixedWindowLimiter = current_app.extensions["shop.limiters"][name]
    wait = limiter.hit(request.remote_addr or "unknown")
    if wait is not None:
        what = LIMITS[name][2]
        raise RateLimited(f"too many {what} from this client; retry in {wait} s", wait)


def limit_checkout() -> None:
    """Raise :class:`RateLimited` (429 + ``Retry-After``) past ``CHECKOUT_RATE_LIMIT``."""
    limit("checkout")
