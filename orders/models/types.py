"""Column helpers; the enums they store (by value) are the domain's."""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import Enum


def enum_column(enum_cls: type[StrEnum]) -> Enum:
    """Store an enum by its value in a VARCHAR (portable, readable in SQL)."""
    return Enum(
        enum_cls,
        native_enum=False,
        values_callable=lambda members: [m.value for m in members],
        length=32,
        validate_strings=True,
    )
