"""Reading the environment's strings: the parsers every setting goes through (integers,
numbers, switches, millisecond ranges, each naming its variable when it refuses a
value) and where the database and Redis are (URLs built from the seed's variables and
from Sentinel's)."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote, unquote, urlsplit


class ConfigError(RuntimeError):
    """The environment asks for something that cannot run."""


def parse_range_ms(text: str, name: str) -> tuple[int, int]:
    """Parse ``"min-max"`` (or a single number) in milliseconds."""
    text = text.strip()
    try:
        if "-" in text:
            low, high = (int(part) for part in text.split("-", 1))
        else:
            low = high = int(text)
    except ValueError:
        raise ConfigError(f"{name} must be 'min-max' in milliseconds, got {text!r}") from None
    if low < 0 or high < low:
        raise ConfigError(f"{name} must satisfy 0 <= min <= max, got {text!r}")
    return low, high


def database_url_for_sqlalchemy(url: str) -> str:
    """Accept ``postgres://`` and ``postgresql://`` and pick the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def redis_url(env: Mapping[str, str]) -> str | None:
    """Where Redis is: Sentinel's nodes, else ``REDIS_URL`` (with ``REDIS_PASSWORD``),
    else the seed's ``REDIS_HOST``/``PORT``/``PASSWORD``/``DB``; None: no Redis."""
    return _redis_sentinel_url(env) or _redis_url_with_password(env) or _redis_url_from_parts(env)


def _redis_url_from_parts(env: Mapping[str, str]) -> str | None:
    host = env.get("REDIS_HOST")
    if not host:
        return None
    port = env.get("REDIS_PORT", "6379")
    db = env.get("REDIS_DB", "0")
    password = env.get("REDIS_PASSWORD")
    auth = f":{quote(password, safe='')}@" if password else ""
    return f"redis://{auth}{host}:{port}/{db}"


def _redis_password(env: Mapping[str, str]) -> str | None:
    """``REDIS_PASSWORD``, else the password in ``REDIS_URL`` (so a Sentinel set-up that
    keeps its password in the URL still authenticates to the master)."""
    if env.get("REDIS_PASSWORD"):
        return env["REDIS_PASSWORD"]
    password = urlsplit(env.get("REDIS_URL", "")).password
    return unquote(password) if password else None


def _redis_url_with_password(env: Mapping[str, str]) -> str | None:
    """``REDIS_URL``, carrying ``REDIS_PASSWORD`` when the URL has no password of its own
    (compose keeps the password in one variable that Redis and the app both read)."""
    url = env.get("REDIS_URL")
    if not url or not env.get("REDIS_PASSWORD"):
        return url or None
    parts = urlsplit(url)
    if parts.password or parts.scheme not in ("redis", "rediss"):
        return url
    user = quote(unquote(parts.username), safe="") if parts.username else ""
    auth = f"{user}:{quote(env['REDIS_PASSWORD'], safe='')}@"
    return parts._replace(netloc=auth + parts.netloc.rpartition("@")[2]).geturl()


def _redis_sentinel_url(env: Mapping[str, str]) -> str | None:
    """``REDIS_SENTINELS=h:p,h:p`` + ``REDIS_SENTINEL_MASTER`` -> one ``redis+sentinel://`` URL.

    ``REDIS_PASSWORD`` authenticates to the data nodes, ``REDIS_SENTINEL_PASSWORD`` to
    the sentinels. :func:`orders.infra.redis_pool.redis_pool` turns the URL into a pool that
    asks the sentinels for the current master, so every Redis user follows failover.
    """
    sentinels = [s.strip() for s in env.get("REDIS_SENTINELS", "").split(",") if s.strip()]
    if not sentinels:
        return None
    for node in sentinels:
        host, _, port = node.rpartition(":")
        if not host or not (port.isascii() and port.isdigit()):
            raise ConfigError(f"REDIS_SENTINELS must be 'host:port,host:port', got {node!r}")
    master = env.get("REDIS_SENTINEL_MASTER", "mymaster")
    password = _redis_password(env)
    auth = f":{quote(password, safe='')}@" if password else ""
    url = f"redis+sentinel://{auth}{','.join(sentinels)}/{master}/{env.get('REDIS_DB', '0')}"
    if env.get("REDIS_SENTINEL_PASSWORD"):
        url += f"?sentinel_password={quote(env['REDIS_SENTINEL_PASSWORD'], safe='')}"
    return url


def integer(value: str, name: str) -> int:
    """An integer, or :class:`ConfigError` naming the variable."""
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {value!r}") from None


def switch(value: str, name: str) -> bool:
    """``1``/``true``/``yes``/``on`` or their opposites, or :class:`ConfigError`."""
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be 1 or 0 (true/false), got {value!r}")


def number(value: str, name: str) -> float:
    """A number, or :class:`ConfigError` naming the variable."""
    try:
        return float(value)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
