"""Payment gateways: the interface, and a simulated gateway with a durable ledger.

The simulated gateway behaves like a real one where it matters to us: it has
latency, declines some cards, fails transiently, and honours idempotency keys
(the same key returns the same result, so a retried charge never charges twice).
Its ledger lives in its own SQLite file, shared by every process, as a real
gateway's would be shared by every client; tests read it to count captures.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from orders.errors import GatewayError


@dataclass(frozen=True)
class ChargeResult:
    captured: bool
    gateway_ref: str | None
    decline_reason: str | None = None


class PaymentGateway(Protocol):
    def charge(self, *, amount_cents: int, token: str, idempotency_key: str) -> ChargeResult: ...

    def refund(self, *, gateway_ref: str, amount_cents: int, idempotency_key: str) -> str: ...

    def find_charge(self, *, idempotency_key: str) -> ChargeResult | None:
        """The charge made with this key, if any (to refund a capture we never recorded)."""
        ...


# Test cards: tok_visa succeeds, tok_declined is declined, tok_error always fails
# transiently, tok_flaky fails transiently on the first try of each key, then succeeds.
DECLINED_TOKENS = {"tok_declined": "card_declined", "tok_insufficient_funds": "insufficient_funds"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS charges (
    idempotency_key TEXT PRIMARY KEY, ref TEXT, amount_cents INTEGER, token TEXT,
    status TEXT, decline_reason TEXT, created_at REAL);
CREATE TABLE IF NOT EXISTS refunds (
    idempotency_key TEXT PRIMARY KEY, ref TEXT, charge_ref TEXT, amount_cents INTEGER,
    created_at REAL);
CREATE TABLE IF NOT EXISTS attempts (idempotency_key TEXT PRIMARY KEY, count INTEGER);
CREATE TABLE IF NOT EXISTS outage (id INTEGER PRIMARY KEY CHECK (id = 1), down INTEGER);
"""


class SimulatedGateway:
    """A gateway double with configurable latency, decline and error rates."""

    def __init__(
        self,
        ledger_path: Path,
        latency_ms: tuple[float, float] = (0, 0),
        decline_rate: float = 0.0,
        error_rate: float = 0.0,
        rng: random.Random | None = None,
        timeout_seconds: float | None = None,
    ) -> None:
        self.ledger_path = ledger_path
        self.timeout_seconds = timeout_seconds
        self.latency_ms = latency_ms
        self.decline_rate = decline_rate
        self.error_rate = error_rate
        self.rng = rng or random.Random()
        self._local = threading.local()
        ledger_path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.ledger_path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            # no fsync per charge: a killed process loses nothing in WAL mode (only a
            # power cut could), and a charge's write lock blocks a consumer's greenlets
            # (0.40 ms a charge with the fsync, 0.11 ms without, on this machine's disk)
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
        return conn

    def _sleep(self) -> None:
        """The call's latency; past ``timeout_seconds`` the caller gives up (a timeout)."""
        low, high = self.latency_ms
        if high > 0:
            seconds = self.rng.uniform(low, high) / 1000
            if self.timeout_seconds is not None and seconds > self.timeout_seconds:
                time.sleep(self.timeout_seconds)
                raise GatewayError(f"gateway timeout after {self.timeout_seconds:g} s")
            time.sleep(seconds)
        if self.is_down():
            raise GatewayError("gateway error: 503 service unavailable (simulated outage)")

    def set_outage(self, down: bool) -> None:
        """Switch a gateway-wide outage on or off (every process sees it, as with a real one)."""
        self._connect().execute(
            "INSERT INTO outage VALUES (1, ?) ON CONFLICT(id) DO UPDATE SET down = excluded.down",
            (int(down),),
        )

    def is_down(self) -> bool:
        row = self._connect().execute("SELECT down FROM outage WHERE id = 1").fetchone()
        return bool(row and row[0])

    def charge(self, *, amount_cents: int, token: str, idempotency_key: str) -> ChargeResult:
        self._sleep()
        conn = self._connect()
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute(
                "SELECT ref, status, decline_reason FROM charges WHERE idempotency_key = ?",
                (idempotency_key,),
            ).fetchone()
            if row is not None:
                conn.execute("COMMIT")
                return ChargeResult(row[1] == "captured", row[0], row[2])
            conn.execute(
                "INSERT INTO attempts VALUES (?, 1) ON CONFLICT(idempotency_key) "
                "DO UPDATE SET count = count + 1",
                (idempotency_key,),
            )
            tries = conn.execute(
                "SELECT count FROM attempts WHERE idempotency_key = ?", (idempotency_key,)
            ).fetchone()[0]
            if (
                token == "tok_error"
                or (token == "tok_flaky" and tries == 1)
                or self.rng.random() < self.error_rate
            ):
                conn.execute("COMMIT")
                raise GatewayError("gateway error: upstream timeout (simulated)")
            reason = DECLINED_TOKENS.get(token)
            if reason is None and self.rng.random() < self.decline_rate:
                reason = "card_declined"
            ref = f"ch_{uuid.uuid4().hex[:20]}"
            status = "declined" if reason else "captured"
            conn.execute(
                "INSERT INTO charges VALUES (?, ?, ?, ?, ?, ?, ?)",
                (idempotency_key, ref, amount_cents, token, status, reason, time.time()),
            )
            conn.execute("COMMIT")
        except GatewayError:
            raise
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return ChargeResult(reason is None, ref, reason)

    def refund(self, *, gateway_ref: str, amount_cents: int, idempotency_key: str) -> str:
        self._sleep()
        conn = self._connect()
        conn.execute("BEGIN IMMEDIATE")
        row = conn.execute(
            "SELECT ref FROM refunds WHERE idempotency_key = ?", (idempotency_key,)
        ).fetchone()
        if row is None:
            ref = f"re_{uuid.uuid4().hex[:20]}"
            conn.execute(
                "INSERT INTO refunds VALUES (?, ?, ?, ?, ?)",
                (idempotency_key, ref, gateway_ref, amount_cents, time.time()),
            )
        else:
            ref = row[0]
        conn.execute("COMMIT")
        return str(ref)

    def find_charge(self, *, idempotency_key: str) -> ChargeResult | None:
        if self.is_down():
            raise GatewayError("gateway error: 503 service unavailable (simulated outage)")
        row = (
            self._connect()
            .execute(
                "SELECT ref, status, decline_reason FROM charges WHERE idempotency_key = ?",
                (idempotency_key,),
            )
            .fetchone()
        )
        return ChargeResult(row[1] == "captured", row[0], row[2]) if row else None

    def ledger(self) -> dict[str, int]:
        """Counts for audits: captures, declines, refunds, captured and refunded cents."""
        conn = self._connect()
        captured = conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(amount_cents), 0) FROM charges WHERE status='captured'"
        ).fetchone()
        declined = conn.execute("SELECT COUNT(*) FROM charges WHERE status='declined'").fetchone()
        refunds = conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(amount_cents), 0) FROM refunds"
        ).fetchone()
        return {
            "captures": captured[0],
            "captured_cents": captured[1],
            "declines": declined[0],
            "refunds": refunds[0],
            "refunded_cents": refunds[1],
        }
