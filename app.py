"""The Flask application factory."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from orders.config import Settings
from orders.infra import tracing
from orders.pipeline.jobs import Dispatch, shared_dispatch
from orders.production import require_safe_start
from orders.web import api, shop, stream
from orders.web.cli import init_cli
from orders.web.extensions import db, migrate
from orders.web.overload import init_overload
from orders.web.problems import init_error_handlers
from orders.web.security import init_security


def default_dispatch() -> Dispatch:
    import tasks  # the Huey side; it never imports Flask

    return tasks.dispatch


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app. ``test_config`` overrides settings (and may inject ``DISPATCH``)."""
    overrides = dict(test_config or {})
    dispatch = overrides.pop("DISPATCH", None)
    broker_up = overrides.pop("BROKER_UP", None)
    settings = Settings.from_env(overrides=overrides)
    require_safe_start(settings)  # before anything is built or served
    tracing.setup("web")  # on only with the OTEL_* variables (docs/operations.md)
    app = Flask(__name__, template_folder="templates", static_folder="static")
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SQLALCHEMY_DATABASE_URI=settings.sqlalchemy_url,
        SQLALCHEMY_ENGINE_OPTIONS=_engine_options(settings),
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.is_production,
        TESTING=bool(overrides.get("TESTING")),
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]  # typed as the base provider
    app.extensions["shop.settings"] = settings
    # the requests' sends to the broker share round trips (and messages) under load
    app.extensions["shop.dispatch"] = shared_dispatch(dispatch or default_dispatch())
    app.extensions["shop.publish"] = _publisher(settings)
    init_extensions(app)
    init_blueprints(app)
    init_error_handlers(app)
    init_cli(app)
    init_overload(app, broker_up)
    init_security(app)
    init_proxy(app, settings.trusted_proxy_hops)
    return app


def init_proxy(app: Flask, hops: int) -> None:
    """Trust ``hops`` proxies' ``X-Forwarded-For``/``-Proto`` (``TRUSTED_PROXY_HOPS``).

    With 0 (the default) the headers are ignored: anyone could send them. Behind one
    load balancer, 1: ``request.remote_addr`` (which the rate limits and the login
    throttle key on) becomes the address the balancer saw, not the balancer's own.
    """
    if hops:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]


def _engine_options(settings: Settings) -> dict[str, Any]:
    from orders.db import engine_options

    if settings.sqlalchemy_url.startswith("sqlite:///"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    return engine_options(settings)


def _publisher(settings: Settings) -> Any:
    from orders.wiring import build_publisher

    return build_publisher(settings)


def init_extensions(app: Flask) -> None:
    from orders.db import configure_sqlite, ping_when_idle

    db.init_app(app)
    with app.app_context():
        configure_sqlite(ping_when_idle(db.engine))
    migrate.init_app(app, db, directory=str(_migrations_dir()))


def init_blueprints(app: Flask) -> None:
    """One blueprint per surface: JSON API, progress stream, shop, ops, sync checkout."""
    from orders.web import ops
    from orders.web.sync_checkout import init_sync_checkout

    app.register_blueprint(api.bp)
    stream.init_stream(app)
    app.register_blueprint(shop.bp)
    app.register_blueprint(ops.bp)
    app.register_blueprint(ops.health_bp)
    init_sync_checkout(app)


def _migrations_dir() -> Any:
    from pathlib import Path

    return Path(__file__).resolve().parent / "migrations"
