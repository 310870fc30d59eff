"""Per-client rate limit on checkout, and security headers on every response."""

from __future__ import annotations

from flask import Flask, Response, current_app, request

from orders.errors import RateLimited
from orders.infra.ratelimit import FixedWindowLimiter, parse_limits

API_CSP = "default-src 'none'; frame-ancestors 'none'"
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; "
    "form-action 'self'; object-src 'none'"
)


def init_security(app: Flask) -> None:
    settings = app.extensions["shop.settings"]
    app.extensions["shop.checkout_limiter"] = FixedWindowLimiter(
        parse_limits(settings.checkout_rate_limit), settings.redis_url, settings.queue_prefix
    )

    @app.after_request
    def security_headers(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
        html = response.mimetype == "text/html"
        headers.setdefault("Content-Security-Policy", PAGE_CSP if html else API_CSP)
        return response


def limit_checkout() -> None:
    """Raise :class:`RateLimited` (429 + ``Retry-After``) past ``CHECKOUT_RATE_LIMIT``."""
    limiter: FixedWindowLimiter = current_app.extensions["shop.checkout_limiter"]
    wait = limiter.hit(request.remote_addr or "unknown")
    if wait is not None:
        raise RateLimited(f"too many checkouts from this client; retry in {wait} s", wait)
