"""All-time sums of the per-minute counter tables, without reading every minute.

A per-minute counter table gains a row per key and minute for ever, so summing it on
every scrape costs more each day (a year of a busy shop is millions of rows). Instead,
the minutes older than :data:`FOLD_LAG` are added once into the table's ``*_total``
twin, and ``stat_folds`` remembers up to which minute; an all-time read is the totals
plus the minutes after that mark: a few minutes of rows, whatever the shop's age. The
minute rows stay (the charts read them); folding only adds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, func, select, union_all, update
from sqlalchemy.orm import Session

from orders.db import utcnow
from orders.infra.upsert import insert_unless_present, upsert
from orders.models import (
    CheckoutStatMinute,
    CheckoutStatTotal,
    JobStatMinute,
    JobStatTotal,
    StatFold,
)
from orders.models.ops import BUCKET_COLUMNS

VALUE_COLUMNS = ("count", "total_ms", *BUCKET_COLUMNS)

FOLD_LAG = timedelta(minutes=10)
"""A minute is folded once it is this old: its row is written when the transaction that
counted it commits, and no counting transaction stays open that long."""
FOLD_EVERY = timedelta(minutes=5)
"""Fold again once the mark is this far behind (so a read sums at most ~15 minutes)."""


@dataclass(frozen=True)
class Source:
    """A per-minute counter table, its totals twin, and the key columns they share."""

    minutely: Table
    total: Table
    keys: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.minutely.name


JOB_STATS = Source(JobStatMinute.__table__, JobStatTotal.__table__, ("queue", "type", "outcome"))  # type: ignore[arg-type]
CHECKOUT_STATS = Source(
    CheckoutStatMinute.__table__,  # type: ignore[arg-type]
    CheckoutStatTotal.__table__,  # type: ignore[arg-type]
    ("outcome", "code"),
)
SOURCES = (JOB_STATS, CHECKOUT_STATS)
NEVER = datetime(1970, 1, 1)
"""The mark of a table never folded: its totals are empty, every minute counts."""


def folded_until(session: Session, source: Source) -> datetime | None:
    return session.scalar(select(StatFold.folded_until).where(StatFold.name == source.name))


def fold(session: Session, source: Source, now: datetime | None = None) -> bool:
    """Add the minutes older than :data:`FOLD_LAG` not yet folded to the totals, if the
    mark is :data:`FOLD_EVERY` behind. Commits when it folds (True), else leaves the
    session's transaction as it is. Two processes folding at once: the conditional
    update of the mark lets one of them do it."""
    horizon = _horizon(now)
    mark = folded_until(session, source)
    if not _due(mark, horizon):
        return False
    if mark is None:
        claimed = insert_unless_present(
            session,
            StatFold.__table__,  # type: ignore[arg-type]
            {"name": source.name, "folded_until": horizon},
            ("name",),
        )
    else:
        moved = session.execute(
            update(StatFold)
            .where(StatFold.name == source.name, StatFold.folded_until == mark)
            .values(folded_until=horizon)
        )
        claimed = moved.rowcount == 1  # type: ignore[attr-defined]
    if not claimed:
        session.rollback()
        return False
    table = source.minutely
    sums = select(*(table.c[k] for k in source.keys), *_summed(table)).where(
        table.c.minute < horizon
    )
    if mark is not None:
        sums = sums.where(table.c.minute >= mark)
    for row in session.execute(sums.group_by(*(table.c[k] for k in source.keys))).mappings():
        upsert(session, source.total, dict(row), source.keys, add=VALUE_COLUMNS)
    session.commit()
    return True


def fold_all(session: Session, now: datetime | None = None) -> None:
    """:func:`fold` each source that is due (one read when none is, as mostly)."""
    marks: dict[str, datetime] = dict(
        session.execute(select(StatFold.name, StatFold.folded_until)).all()
    )
    for source in SOURCES:
        if _due(marks.get(source.name), _horizon(now)):
            fold(session, source, now)


def _horizon(now: datetime | None) -> datetime:
    return ((now or utcnow()) - FOLD_LAG).replace(second=0, microsecond=0)


def _due(mark: datetime | None, horizon: datetime) -> bool:
    return mark is None or mark <= horizon - FOLD_EVERY


def all_time(session: Session, source: Source, group: Sequence[str]) -> list[Any]:
    """Rows of ``group`` columns and the summed ``VALUE_COLUMNS``, over all time: the
    totals plus the minutes from the fold mark on (every minute when never folded)."""
    mark = select(StatFold.folded_until).where(StatFold.name == source.name).scalar_subquery()
    columns = (*group, *VALUE_COLUMNS)
    recent = select(*(source.minutely.c[name] for name in columns)).where(
        source.minutely.c.minute >= func.coalesce(mark, NEVER)
    )
    both = union_all(select(*(source.total.c[name] for name in columns)), recent).subquery()
    query = select(*(both.c[name] for name in group), *_summed(both)).group_by(
        *(both.c[name] for name in group)
    )
    return list(session.execute(query))


def _summed(table: Any) -> list[Any]:
    return [func.sum(table.c[name]).label(name) for name in VALUE_COLUMNS]
