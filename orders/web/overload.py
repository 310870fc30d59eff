"""Web-side glue for the overload policy: the broker probe and the inline pipeline."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask, current_app
from sqlalchemy.orm import Session, sessionmaker

from orders.infra.broker import BrokerProbe
from orders.pipeline.context import PipelineContext
from orders.web.extensions import db, dispatch, settings


def init_overload(app: Flask, broker_up: Callable[[], bool] | None = None) -> None:
    app.extensions["shop.broker_up"] = broker_up or BrokerProbe(
        app.extensions["shop.settings"].redis_url
    )


def broker_up() -> bool:
    probe: Callable[[], bool] = current_app.extensions["shop.broker_up"]
    return probe()


def inline_pipeline() -> tuple[sessionmaker[Session], PipelineContext]:
    """Sessions and a pipeline context for running steps in the request (built once)."""
    cached = current_app.extensions.get("shop.inline")
    if cached is None:
        from orders.wiring import build_gateway, build_mailer

        config = settings()
        cached = (
            sessionmaker(bind=db.engine, expire_on_commit=False),
            PipelineContext(
                settings=config,
                gateway=build_gateway(config),
                mailer=build_mailer(config),
                dispatch=dispatch(),
                publish=current_app.extensions["shop.publish"],  # inline runs wake streams
            ),
        )
        current_app.extensions["shop.inline"] = cached
    return cached
