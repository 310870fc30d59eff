"""The simulated gateway served over HTTP, Stripe-style (for tests and demos).

    python -m orders.infra.sim_gateway_server --port 8090 --ledger /tmp/gw.db [--latency-ms 0-0]

A tiny WSGI app on a threading ``wsgiref`` server, bound to 127.0.0.1:

- ``POST /v1/payment_intents`` (form: ``amount``, ``currency``, ``payment_method``,
  ``confirm=true``; header ``Idempotency-Key``): 200 ``succeeded`` intent, or 402
  ``card_error`` for a decline, or 503 ``api_error`` for a (simulated) outage;
- ``POST /v1/refunds`` (form: ``payment_intent``, ``amount``): 200 refund.

The same key returns the same result, so a client that died mid-call and retries is
charged once. The charge completes even if the client hung up (as a real one would).
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from orders.environ import parse_range_ms
from orders.errors import GatewayError
from orders.infra.gateway import SimulatedGateway

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
STATUS = {200: "200 OK", 400: "400 Bad Request", 402: "402 Payment Required",
          404: "404 Not Found", 503: "503 Service Unavailable"}  # fmt: skip


def make_app(
    gateway: SimulatedGateway,
) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        status, body = _handle(gateway, environ)
        payload = json.dumps(body).encode()
        start_response(
            STATUS[status],
            [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))],
        )
        return [payload]

    return app


def _handle(gateway: SimulatedGateway, environ: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
    if method == "GET" and path == "/v1/payment_intents/search":
        return _search(gateway, environ)
    if method != "POST" or path not in ("/v1/payment_intents", "/v1/refunds"):
        return 404, _error("invalid_request_error", f"no route {method} {path}")
    key = environ.get("HTTP_IDEMPOTENCY_KEY")
    if not key:
        return 400, _error("invalid_request_error", "Idempotency-Key header is required")
    length = int(environ.get("CONTENT_LENGTH") or 0)
    form = {k: v[0] for k, v in parse_qs(environ["wsgi.input"].read(length).decode()).items()}
    try:
        amount = int(form.get("amount", ""))
    except ValueError:
        return 400, _error("invalid_request_error", "amount must be an integer")
    try:
        if path == "/v1/refunds":
            ref = gateway.refund(
                gateway_ref=form.get("payment_intent", ""), amount_cents=amount, idempotency_key=key
            )
            return 200, {"id": ref, "object": "refund", "status": "succeeded", "amount": amount}
        result = gateway.charge(
            amount_cents=amount, token=form.get("payment_method", ""), idempotency_key=key
        )
    except GatewayError as exc:
        return 503, _error("api_error", exc.message)
    if not result.captured:
        error = _error("card_error", "Your card was declined.")
        error["error"].update(
            code="card_declined",
            decline_code=result.decline_reason,
            payment_intent={"id": result.gateway_ref, "status": "requires_payment_method"},
        )
        return 402, error
    return 200, {
        "id": result.gateway_ref,
        "object": "payment_intent",
        "status": "succeeded",
        "amount": amount,
    }


def _search(gateway: SimulatedGateway, environ: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    query = parse_qs(environ.get("QUERY_STRING", "")).get("query", [""])[0]
    match = re.fullmatch(r"metadata\['idempotency_key'\]:'([^']*)'", query)
    if match is None:
        return 400, _error("invalid_request_error", "unsupported search query")
    try:
        found = gateway.find_charge(idempotency_key=match[1])
    except GatewayError as exc:
        return 503, _error("api_error", exc.message)
    data = []
    if found is not None:
        status = "succeeded" if found.captured else "requires_payment_method"
        data.append({"id": found.gateway_ref, "object": "payment_intent", "status": status})
    return 200, {"object": "search_result", "data": data}


def _error(kind: str, message: str) -> dict[str, Any]:
    return {"error": {"type": kind, "message": message}}


class ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        return None


def serve(ledger: Path, port: int, latency_ms: tuple[int, int] = (0, 0)) -> WSGIServer:
    gateway = SimulatedGateway(ledger, latency_ms=latency_ms)
    return make_server(
        "127.0.0.1",
        port,
        make_app(gateway),
        server_class=ThreadingServer,
        handler_class=QuietHandler,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--ledger", type=Path, required=True)
    parser.add_argument("--latency-ms", default="0")
    args = parser.parse_args()
    server = serve(args.ledger, args.port, parse_range_ms(args.latency_ms, "--latency-ms"))
    print(f"simulated gateway on http://127.0.0.1:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
