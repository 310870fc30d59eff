"""The outside calls (the payment gateway, SMTP) with a span each when tracing is on
(:mod:`orders.infra.tracing`); the adapters themselves when it is off."""

from __future__ import annotations

from typing import Any

from orders.infra.gateway import ChargeResult, PaymentGateway
from orders.infra.mail import Mailer, OutgoingEmail
from orders.infra.tracing import call_span, enabled


class TracedGateway:
    """The payment gateway with a span per call (anything else passes through)."""

    def __init__(self, inner: PaymentGateway) -> None:
        self.traced = inner

    def charge(self, *, amount_cents: int, token: str, idempotency_key: str) -> ChargeResult:
        with call_span("payment-gateway charge", **{"payment.amount_cents": amount_cents}):
            return self.traced.charge(
                amount_cents=amount_cents, token=token, idempotency_key=idempotency_key
            )

    def refund(self, *, gateway_ref: str, amount_cents: int, idempotency_key: str) -> str:
        with call_span("payment-gateway refund", **{"payment.amount_cents": amount_cents}):
            return self.traced.refund(
                gateway_ref=gateway_ref, amount_cents=amount_cents, idempotency_key=idempotency_key
            )

    def find_charge(self, *, idempotency_key: str) -> ChargeResult | None:
        with call_span("payment-gateway find-charge"):
            return self.traced.find_charge(idempotency_key=idempotency_key)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.traced, name)


class TracedMailer:
    """The mailer with a span per message sent."""

    def __init__(self, inner: Mailer) -> None:
        self.traced = inner

    def send(self, email: OutgoingEmail) -> None:
        with call_span("smtp send", **{"server.address": str(getattr(self.traced, "host", ""))}):
            self.traced.send(email)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.traced, name)


def traced_gateway(gateway: PaymentGateway) -> PaymentGateway:
    return TracedGateway(gateway) if enabled() else gateway


def traced_mailer(mailer: Mailer | None) -> Mailer | None:
    return TracedMailer(mailer) if enabled() and mailer is not None else mailer
