"""The load: closed-model shoppers and an open-model arrival-rate generator (aiohttp).

- :func:`run_users`: N shoppers, each checks out, follows the checkout to its final
  status (on its progress stream, as the shop's page does, or by polling the status
  URL as a plain API client would), thinks, and checks out again. Response times are
  per request; the shopper's own pace limits the load (a closed model).
- :func:`run_rate`: requests fired on a fixed schedule, whatever the server does (an
  open model). Each latency is measured from the request's *scheduled* send time, so a
  slow server (or a lagging client) cannot hide its queueing (no coordinated omission).

The shop runs with its shipped settings, so its per-client checkout limit
(``CHECKOUT_RATE_LIMIT``, 20/s and 300/min per address) applies: like a crowd of
shoppers, the load comes from many client addresses (loopback ones, 127.1.x.y, which
Linux routes to the local server), each well under the limit.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

FINAL = ("completed", "failed")


@dataclass
class Sample:
    at: float  # seconds since the phase started (scheduled send time)
    latency: float  # seconds
    status: int  # HTTP status, 0 for a transport error or timeout
    ok: bool
    reason: str = ""  # for status 0: "timeout" or the client's exception


@dataclass
class PhaseResult:
    name: str
    duration: float
    samples: list[Sample] = field(default_factory=list)  # the measured request (checkout)
    other_requests: int = 0  # status polls
    job_ids: list[str] = field(default_factory=list)
    follow_timeouts: int = 0
    ramp: float = 0.0  # seconds at the start while shoppers were still arriving
    started: float = 0.0  # wall clock (epoch s) of an open-model schedule's start


def checkout_body(sku: str, n: int) -> dict[str, Any]:
    return {
        "customerId": f"bench-{n}",
        "email": f"bench{n}@example.com",
        "items": [{"sku": sku, "quantity": 1}],
        "paymentToken": "tok_visa",
    }


CLIENTS = 256  # client addresses of an open-model run (each under the per-client limit)


def client_address(n: int) -> str:
    """The ``n``-th client's loopback address (62,500 distinct ones)."""
    return f"127.1.{n // 250 % 250}.{n % 250 + 1}"


def connector(source: int | None = None) -> aiohttp.TCPConnector:
    """Connections from client address ``source`` (:func:`client_address`)."""
    local = (client_address(source), 0) if source is not None else None
    return aiohttp.TCPConnector(limit=0, force_close=False, ttl_dns_cache=300, local_addr=local)


class Clients:
    """One HTTP session per client address; request ``n`` goes out from client ``n``."""

    def __init__(self, count: int) -> None:
        self.sessions = [aiohttp.ClientSession(connector=connector(i)) for i in range(count)]

    def __getitem__(self, n: int) -> aiohttp.ClientSession:
        return self.sessions[n % len(self.sessions)]

    async def __aenter__(self) -> Clients:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await asyncio.gather(*(session.close() for session in self.sessions))


async def _post(
    http: aiohttp.ClientSession, url: str, body: dict[str, Any], timeout: float
) -> tuple[int, dict[str, Any] | None, str]:
    """(HTTP status, JSON body, reason); status 0 when no answer came (reason says why)."""
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    try:
        async with http.post(
            url, json=body, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout)
        ) as response:
            data = await response.json(content_type=None)
            return response.status, data, ""
    except TimeoutError:
        return 0, None, "timeout"
    except (aiohttp.ClientError, ValueError) as exc:
        return 0, None, type(exc).__name__


async def run_users(
    base_url: str,
    *,
    users: int,
    duration: float,
    sync: bool,
    skus: list[str],
    think: float,
    poll: float,
    timeout: float,
    follow_timeout: float,
    follow_with: str = "poll",
    ramp: float = 0.0,
    progress: Callable[[str], None] = lambda _line: None,
) -> PhaseResult:
    """``users`` shoppers arrive over ``ramp`` seconds, then shop for ``duration``
    seconds more; then in-flight shoppers finish. Samples carry their send time, so the
    report can tell the ramp from the steady run."""
    name = f"{'sync' if sync else 'async'}-{users}"
    result = PhaseResult(name, duration, ramp=ramp)
    url = f"{base_url}/api/checkout/sync" if sync else f"{base_url}/api/checkout"
    counter = itertools.count()
    start = time.monotonic()
    stop_at = start + ramp + duration

    async def follow_stream(http: aiohttp.ClientSession, job_id: str) -> None:
        """Read the SSE stream until its completed/failed event; poll if it breaks."""
        result.other_requests += 1
        try:
            async with http.get(
                f"{base_url}/api/orders/status/{job_id}/stream",
                timeout=aiohttp.ClientTimeout(total=follow_timeout, sock_connect=timeout),
            ) as response:
                if response.status == 204:  # already final
                    return
                async for raw in response.content:
                    if raw.strip() in (b"event: completed", b"event: failed"):
                        return
        except (TimeoutError, aiohttp.ClientError):
            pass
        await follow(http, job_id)

    async def follow(http: aiohttp.ClientSession, job_id: str) -> None:
        deadline = time.monotonic() + follow_timeout
        while time.monotonic() < deadline:
            await asyncio.sleep(poll)
            result.other_requests += 1
            try:
                async with http.get(
                    f"{base_url}/api/orders/status/{job_id}",
                    timeout=aiohttp.ClientTimeout(total=timeout),
                ) as response:
                    body = await response.json(content_type=None)
                if body.get("status") in FINAL:
                    return
            except (TimeoutError, aiohttp.ClientError, ValueError):
                continue
        result.follow_timeouts += 1

    async def shopper(http: aiohttp.ClientSession) -> None:  # one client address each
        await asyncio.sleep(random.uniform(0, ramp))  # arrivals spread over the ramp
        while time.monotonic() < stop_at:
            n = next(counter)
            sent = time.monotonic()
            status, body, why = await _post(
                http, url, checkout_body(random.choice(skus), n), timeout
            )
            latency = time.monotonic() - sent
            ok = status in (201, 202) or (sync and status == 200)
            result.samples.append(Sample(sent - start, latency, status, ok, why))
            job_id = ((body or {}).get("data") or {}).get("jobId") if ok else None
            if job_id:
                result.job_ids.append(job_id)
                if not sync:
                    await (follow_stream if follow_with == "stream" else follow)(http, job_id)
            await asyncio.sleep(think)

    async def report() -> None:
        while True:
            await asyncio.sleep(5)
            done = len(result.samples)
            errors = sum(not s.ok for s in result.samples)
            elapsed = time.monotonic() - start
            progress(f"  {name}: {elapsed:5.0f}s  {done} checkouts, {errors} errors")

    async with Clients(users) as clients:
        reporter = asyncio.create_task(report())
        await asyncio.gather(*(shopper(clients[n]) for n in range(users)))
        reporter.cancel()
    return result


async def run_rate(
    url: str,
    body_for: Callable[[int], dict[str, Any]],
    *,
    rate: float,
    duration: float,
    timeout: float,
    clients: int = CLIENTS,
    on_accepted: Callable[[str], None] | None = None,
) -> PhaseResult:
    """POST ``url`` at ``rate`` per second for ``duration`` seconds (open model), from
    ``clients`` client addresses in turn. ``result.started`` is the wall-clock time
    (epoch seconds) the schedule started at. ``on_accepted`` is called with each
    accepted checkout's job id, right after its answer."""
    result = PhaseResult(f"rate-{rate:g}", duration)
    total = int(rate * duration)
    start = time.monotonic() + 0.2
    result.started = time.time() + 0.2

    async def one(http: aiohttp.ClientSession, n: int) -> None:
        scheduled = start + n / rate
        delay = scheduled - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        status, body, why = await _post(http, url, body_for(n), timeout)
        latency = time.monotonic() - scheduled  # includes any lag before sending
        ok = status in (201, 202)
        result.samples.append(Sample(scheduled - start, latency, status, ok, why))
        job_id = ((body or {}).get("data") or {}).get("jobId") if ok else None
        if job_id:
            result.job_ids.append(job_id)
            if on_accepted is not None:
                on_accepted(job_id)

    async with Clients(clients) as sessions:
        await asyncio.gather(*(one(sessions[n], n) for n in range(total)))
    return result
