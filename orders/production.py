"""Secure by default: what production refuses to start on.

``SHOP_ENV`` unset means production. Production will not serve or consume with a
missing, short or published ``SECRET_KEY``, a weak or published bootstrap
``OPS_PASSWORD``, or payments going to the simulated gateway without
``SHOP_ALLOW_SIMULATED_GATEWAY=1``; :func:`require_safe_start` names every such
setting at once. The operator accounts' passwords meet the same rule
(:func:`password_weakness`).
"""

from __future__ import annotations

from orders.config import DEV_OPS_PASSWORD, DEV_SECRET_KEY, Settings
from orders.environ import ConfigError

MIN_SECRET_KEY_LENGTH = 32
MIN_PASSWORD_LENGTH = 12
KNOWN_SECRET_KEYS = frozenset(
    {DEV_SECRET_KEY, "change-me", "changeme", "secret", "secret-key", "dev", "development"}
)
"""Values published in this repository or its examples: never a production secret."""
KNOWN_PASSWORDS = frozenset(
    {DEV_OPS_PASSWORD, "change-me-too", "change-me", "changeme", "password", "admin", "ops"}
)


def problems(settings: Settings) -> list[str]:
    """What makes these settings unsafe to serve in production (empty: nothing)."""
    if not settings.is_production:
        return []
    unsafe = []
    if not settings.secret_key:
        unsafe.append(
            "SECRET_KEY is not set; generate one with "
            "python -c 'import secrets; print(secrets.token_urlsafe(48))'"
        )
    elif settings.secret_key in KNOWN_SECRET_KEYS:
        unsafe.append("SECRET_KEY is a published default; generate a new one")
    elif len(settings.secret_key) < MIN_SECRET_KEY_LENGTH:
        unsafe.append(f"SECRET_KEY is shorter than {MIN_SECRET_KEY_LENGTH} characters")
    if settings.ops_password is not None:
        weakness = password_weakness(settings.ops_password)
        if weakness:
            unsafe.append(
                f"OPS_PASSWORD {weakness}; set a strong one, or unset OPS_PASSWORD and "
                "create accounts with 'flask ops user add NAME --role admin'"
            )
    if not settings.gateway_url and not settings.allow_simulated_gateway:
        unsafe.append(
            "GATEWAY_URL is not set, so payments would go to the simulated gateway "
            "(every order free); set GATEWAY_URL, or SHOP_ALLOW_SIMULATED_GATEWAY=1 "
            "for a demo"
        )
    return unsafe


def require_safe_start(settings: Settings) -> None:
    """Raise :class:`ConfigError` naming every unsafe production setting.

    Called before anything is served or consumed: by ``create_app``, gunicorn's
    ``on_starting`` hook, ``tasks.py`` (what every consumer loads),
    ``python -m orders.worker`` and the autoscaler.
    """
    found = problems(settings)
    if found:
        raise ConfigError(
            "refusing to start in production (SHOP_ENV is unset or 'production'; "
            "SHOP_ENV=development is for laptops and tests):\n  - " + "\n  - ".join(found)
        )


def password_weakness(password: str) -> str | None:
    """Why ``password`` must not guard an operator account, or None if it may."""
    if not password:
        return "is empty"
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"is shorter than {MIN_PASSWORD_LENGTH} characters"
    if password.lower() in KNOWN_PASSWORDS:
        return "is a published default"
    return None
