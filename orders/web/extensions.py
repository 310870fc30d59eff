"""Flask extensions, bound in ``create_app``. Models live on our own declarative base."""

from __future__ import annotations

import logging

from flask import current_app
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import Session

from orders.config import Settings
from orders.db import Base
from orders.pipeline.jobs import Dispatch

db = SQLAlchemy(metadata=Base.metadata, session_options={"expire_on_commit": False})
migrate = Migrate(render_as_batch=True, compare_type=True)


def db_session() -> Session:
    """The request's session, as the ``Session`` that the code below the web takes.

    ``db.session`` is a scoped proxy, not a ``Session``; this is the session it stands
    for, so ``db.session.commit()`` and friends act on the very same one.
    """
    return db.session()


def settings() -> Settings:
    value: Settings = current_app.extensions["shop.settings"]
    return value


def dispatch() -> Dispatch:
    value: Dispatch = current_app.extensions["shop.dispatch"]
    return value


def publish(public_id: str) -> None:
    """Wake live streams of ``public_id`` (after a commit); best effort."""
    try:
        current_app.extensions["shop.publish"](public_id)
    except Exception:  # streams also poll; never fail a request over a wake-up
        logging.getLogger(__name__).warning("could not publish %s", public_id, exc_info=True)


def commit() -> None:
    """End the request's unit of work: the one place a request commits."""
    db.session.commit()
