"""A Stripe-style HTTP payment gateway client.

Charges create and confirm a PaymentIntent in one form-encoded call
(``POST /v1/payment_intents`` with ``confirm=true``); refunds are
``POST /v1/refunds``. Every call carries our ``Idempotency-Key``, so a retry after
a timeout or a dead worker returns the first result instead of charging again, and
every call has a timeout. A card error (HTTP 402) is a decline: a result, not a
failure. 429, 5xx, timeouts and dropped connections are :class:`GatewayError`
(transient: retried, and counted by the circuit breaker).
"""

from __future__ import annotations

from typing import Any

import requests

from orders.errors import GatewayError
from orders.infra.gateway import ChargeResult

KEPT_CONNECTIONS = 500


class HttpGateway:
    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout_seconds: float = 10.0,
        currency: str = "usd",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = (min(3.0, timeout_seconds), timeout_seconds)
        self.currency = currency
        self.http = requests.Session()
        # a consumer has hundreds of charges in flight (orders.consumer): keep that many
        # connections alive, instead of urllib3's 10 (the rest opened and discarded,
        # each with a "connection pool is full" warning)
        adapter = requests.adapters.HTTPAdapter(pool_maxsize=KEPT_CONNECTIONS)
        self.http.mount("http://", adapter)
        self.http.mount("https://", adapter)

    def _post(self, path: str, form: dict[str, str], idempotency_key: str) -> requests.Response:
        headers = {"Idempotency-Key": idempotency_key}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        try:
            response = self.http.post(
                self.base_url + path, data=form, headers=headers, timeout=self.timeout
            )
        except requests.Timeout as exc:
            raise GatewayError(f"gateway timeout after {self.timeout[1]:g} s") from exc
        except requests.RequestException as exc:
            raise GatewayError(f"gateway unreachable: {type(exc).__name__}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise GatewayError(f"gateway error: HTTP {response.status_code}")
        return response

    def charge(self, *, amount_cents: int, token: str, idempotency_key: str) -> ChargeResult:
        response = self._post(
            "/v1/payment_intents",
            {
                "amount": str(amount_cents),
                "currency": self.currency,
                "payment_method": token,
                "confirm": "true",
                "metadata[idempotency_key]": idempotency_key,
            },
            idempotency_key,
        )
        body = _json(response)
        if response.status_code == 402:  # card_error: declined
            error = body.get("error", {})
            intent = error.get("payment_intent") or {}
            reason = error.get("decline_code") or error.get("code") or "card_declined"
            return ChargeResult(False, intent.get("id"), str(reason))
        if response.status_code != 200:
            message = body.get("error", {}).get("message", response.text[:200])
            raise GatewayError(f"gateway refused the charge: HTTP {response.status_code} {message}")
        if body.get("status") != "succeeded":
            return ChargeResult(False, body.get("id"), "card_declined")
        return ChargeResult(True, str(body["id"]))

    def find_charge(self, *, idempotency_key: str) -> ChargeResult | None:
        """Search PaymentIntents by the key we put in their metadata."""
        query = f"metadata['idempotency_key']:'{idempotency_key}'"
        try:
            response = self.http.get(
                self.base_url + "/v1/payment_intents/search",
                params={"query": query},
                headers={"Authorization": f"Bearer {self.api_key}"} if self.api_key else {},
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            raise GatewayError(f"gateway unreachable: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise GatewayError(f"gateway search failed: HTTP {response.status_code}")
        found = _json(response).get("data") or []
        if not found:
            return None
        intent = found[0]
        if intent.get("status") == "succeeded":
            return ChargeResult(True, str(intent["id"]))
        return ChargeResult(False, intent.get("id"), "card_declined")

    def refund(self, *, gateway_ref: str, amount_cents: int, idempotency_key: str) -> str:
        response = self._post(
            "/v1/refunds",
            {"payment_intent": gateway_ref, "amount": str(amount_cents)},
            idempotency_key,
        )
        body = _json(response)
        if response.status_code != 200:
            message = body.get("error", {}).get("message", response.text[:200])
            raise GatewayError(f"gateway refused the refund: HTTP {response.status_code} {message}")
        return str(body["id"])


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise GatewayError(f"gateway answered HTTP {response.status_code} without JSON") from None
    if not isinstance(body, dict):
        raise GatewayError("gateway answered with unexpected JSON")
    return body
