"""Placing a checkout: validate, record durably, then enqueue.

The ``Idempotency-Key``, the checkout row, its lines, its first event and its first
job are written atomically; the broker hears about it only after commit. The key is
inserted first (``ON CONFLICT DO NOTHING``): a concurrent duplicate waits on the
database's unique index until the first request commits, then answers with its
checkout (a replay), or takes the key if the first rolled back. No claim can outlive
a request that died.

On PostgreSQL a checkout of items takes two round trips (one read, one write of
every row in one statement: :mod:`orders.checkout.statement`); a cart's
checkout, and SQLite, write in one transaction of single-row statements.
"""

from __future__ import annotations

import hashlib
import json
from contextlib import suppress
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.orm import Session, selectinload

from orders.checkout import group, rows, statement
from orders.checkout.rows import Prepared, first_rows, prepare
from orders.config import Settings
from orders.db import engine_of, rowcount, utcnow
from orders.domain.validation import CheckoutRequest, ItemRequest, parse_checkout
from orders.errors import Conflict, FieldError, IdempotencyMismatch, ValidationFailed
from orders.infra.upsert import insert_unless_present
from orders.models import Cart, Checkout, CheckoutStatus, IdempotencyKey
from orders.models.tables import CHECKOUTS, EVENTS, IDEMPOTENCY_KEYS, JOBS, LINES
from orders.pipeline.jobs import Dispatch, JobRef, send_after_commit

STALE_KEY_SECONDS = 60


@dataclass(frozen=True)
class Placed:
    public_id: str
    status: str
    replayed: bool
    refs: tuple[JobRef, ...] = ()


@dataclass(frozen=True)
class Asked:
    """What a checkout request asked for: its body, its ``Idempotency-Key`` (and the
    body's hash, kept with the key) and the shopper's session id."""

    body: Any
    key: str | None
    digest: str
    session_id: str | None


def request_hash(body: Any) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def place_checkout(
    session: Session,
    settings: Settings,
    body: Any,
    dispatch: Dispatch | None,
    *,
    idempotency_key: str | None = None,
    session_id: str | None = None,
) -> Placed:
    """Validate and record a checkout; enqueue its first job unless ``dispatch`` is None.

    With ``dispatch=None`` the caller runs the returned ``refs`` itself (sync mode).
    """
    digest = request_hash(body) if idempotency_key is not None else ""
    asked = Asked(body, idempotency_key, digest, session_id)
    placed = None
    if statement.supported(session):
        placed = _place_at_once(session, settings, asked)
    if placed is None:
        placed = _place_in_one_transaction(session, settings, asked)
    if dispatch is not None and placed.refs:
        send_after_commit(session, placed.refs, dispatch)
    return placed


def _place_in_one_transaction(session: Session, settings: Settings, asked: Asked) -> Placed:
    body, key, digest, session_id = asked.body, asked.key, asked.digest, asked.session_id
    try:
        if key is not None:
            replay = _claim_key(session, key, digest)
            if replay is not None:
                session.rollback()
                return replay
        checkout, job = _record(session, settings, _parse(settings, body), session_id)
        if key is not None:
            session.execute(
                update(IDEMPOTENCY_KEYS)
                .where(IDEMPOTENCY_KEYS.c.key == key)
                .values(checkout_id=checkout.id)
            )
        refs = (job,)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return Placed(checkout.public_id, CheckoutStatus.QUEUED.value, replayed=False, refs=refs)


def _place_at_once(session: Session, settings: Settings, asked: Asked) -> Placed | None:
    """A checkout of items on PostgreSQL: one read, then every row in one statement,
    both outside any transaction (the statement commits itself). None: the general
    path's turn (a cart's checkout; a key held without a checkout)."""
    body, key, digest, session_id = asked.body, asked.key, asked.digest, asked.session_id
    try:
        request = _parse(settings, body)
        if request.cart_id is not None:
            return None  # marks the cart checked out: the general path's transaction
        engine = engine_of(session)
        catalogue = rows.CATALOGUE
        remembered = None if request.discount_code else catalogue.products(engine, request.items)
        done = None
        if remembered is not None:  # no read; the statement checks the live rows
            with suppress(ValidationFailed):  # if so, perhaps restocked since: read
                prepared = prepare(None, request, request.items, session_id, remembered)
                done = _write_at_once(engine, settings, prepared, key, digest, guarded=True)
        if done is None:  # nothing remembered, or a product changed since
            with statement.connection(engine) as conn:
                products = rows.read_products(conn, request.items)
                catalogue.remember(engine, products)
                prepared = prepare(conn, request, request.items, session_id, products)
            done = _write_at_once(engine, settings, prepared, key, digest, guarded=False)
        assert done is not None  # a fresh read's write is never refused by a guard
        checkout, job, written = done
    except ValidationFailed:
        # a retry of an accepted request is answered as such, even if the same body
        # would not be accepted now (stock ran out since)
        replay = _replay(session, key, digest) if key is not None else None
        if replay is not None:
            return replay
        raise
    if written:
        refs = (JobRef(job["id"], job["type"]),)
        return Placed(checkout.public_id, CheckoutStatus.QUEUED.value, replayed=False, refs=refs)
    assert key is not None  # nothing written: the key was taken
    return _replay(session, key, digest)


def _write_at_once(
    engine: Engine,
    settings: Settings,
    prepared: Prepared,
    key: str | None,
    digest: str,
    *,
    guarded: bool,
) -> tuple[Checkout, dict[str, Any], bool] | None:
    """Write the checkout's rows, with the others this process is placing
    (:mod:`orders.checkout.group`). ``guarded``: its products were remembered,
    so the statement checks them. The checkout, its job's row and whether it was
    written (False: the key was taken); None: a remembered product was not as the rows
    said (nothing written: read afresh)."""
    checkout = Checkout(**prepared.checkout)  # transient: what the rows read
    event, job = first_rows(settings, checkout)
    pending = statement.Pending(prepared, event, job, key, digest, guarded)
    fresh, checkout_id = group.write(engine, pending, settings.checkout_write_batch)
    return (checkout, job, checkout_id is not None) if fresh else None


def _parse(settings: Settings, body: Any) -> CheckoutRequest:
    return parse_checkout(
        body, max_quantity=settings.max_item_quantity, max_lines=settings.max_cart_lines
    )


def _replay(session: Session, key: str, digest: str) -> Placed | None:
    """The answer for a request whose ``key`` another request holds (a replay, or
    :class:`IdempotencyMismatch` / :class:`Conflict`); None if the key is free or
    could be taken over (nothing is kept: the caller places the checkout)."""
    try:
        return _claim_key(session, key, digest)
    finally:
        session.rollback()


def _claim_key(session: Session, key: str, digest: str) -> Placed | None:
    """Claim ``key`` in this transaction (None), or answer for the request that holds it.

    The insert waits while another transaction holds an uncommitted claim of the same
    key, so what it finds afterwards is committed: a recorded checkout (replay), or a
    claim without one, which only a request of the two-transaction scheme this
    replaced can have left (409 while fresh, taken over once stale).
    """
    row = {"key": key, "request_hash": digest, "created_at": utcnow()}
    if insert_unless_present(session, IDEMPOTENCY_KEYS, row, ["key"]) is not None:
        return None
    held = session.get(IdempotencyKey, key, populate_existing=True)
    if held is None:  # released between our insert and our read: try once more
        return _claim_key(session, key, digest)
    if held.request_hash != digest:
        raise IdempotencyMismatch("this Idempotency-Key was used with a different request body")
    if held.checkout_id is None:
        cutoff = utcnow() - timedelta(seconds=STALE_KEY_SECONDS)
        taken = session.execute(
            update(IDEMPOTENCY_KEYS)
            .where(
                IDEMPOTENCY_KEYS.c.key == key,
                IDEMPOTENCY_KEYS.c.checkout_id.is_(None),
                IDEMPOTENCY_KEYS.c.created_at < cutoff,
            )
            .values(created_at=utcnow())
        )
        if rowcount(taken) == 1:
            return None  # a dead request's claim; ours now, in this transaction
        raise Conflict("a request with this Idempotency-Key is still being processed")
    checkout = session.get(Checkout, held.checkout_id)
    assert checkout is not None
    return Placed(checkout.public_id, checkout.status.value, replayed=True)


def _items_from_cart(session: Session, cart_id: str) -> tuple[ItemRequest, ...]:
    cart = session.scalar(select(Cart).where(Cart.id == cart_id).options(selectinload(Cart.items)))
    if cart is None:
        raise ValidationFailed([FieldError("cartId", "unknown cart")])
    if cart.checked_out_at is not None:
        raise ValidationFailed([FieldError("cartId", "this cart was already checked out")])
    if not cart.items:
        raise ValidationFailed([FieldError("cartId", "the cart is empty")])
    cart.checked_out_at = utcnow()
    return tuple(
        ItemRequest(item.product.sku, item.quantity, index) for index, item in enumerate(cart.items)
    )


def _record(
    session: Session, settings: Settings, request: CheckoutRequest, session_id: str | None
) -> tuple[Checkout, JobRef]:
    items = _items_from_cart(session, request.cart_id) if request.cart_id else request.items
    prepared = prepare(session, request, items, session_id)
    values = prepared.checkout
    # Core, not the unit of work: this is the 202's hot path (see orders.models.tables)
    checkout_id = session.execute(insert(CHECKOUTS).returning(CHECKOUTS.c.id), values).scalar_one()
    session.execute(
        insert(LINES), [{"checkout_id": checkout_id, **line} for line in prepared.lines]
    )
    checkout = Checkout(id=checkout_id, **values)  # transient: what the event and job read
    event, job = first_rows(settings, checkout)
    session.execute(insert(EVENTS), event)
    session.execute(insert(JOBS), job)
    return checkout, JobRef(job["id"], job["type"])
