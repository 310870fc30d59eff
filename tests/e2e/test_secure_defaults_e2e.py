"""Black-box: what a careless deployer and an attacker meet, on real processes.

- Production is the default: with ``SHOP_ENV`` unset, gunicorn, the consumers and
  the release step refuse weak settings (exit status != 0, the variable named) and
  nothing is served; strong settings start and serve.
- The login throttle holds across two gunicorn workers: of many concurrent attempts,
  exactly the allowed number reach the password check.
- ``TRUSTED_PROXY_HOPS``: with 1, limits key on the client named by the proxy's
  ``X-Forwarded-For``; with 0, a spoofed header changes nothing.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import ExitStack

import pytest
import requests

from tests.e2e.conftest import STACKS, open_stack
from tests.ops_http import concurrent_logins, post_login
from tests.stack import ROOT, Stack

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("security")]

STRONG_SECRET = "s" * 48
WEAK = [
    ({"SECRET_KEY": None}, "SECRET_KEY is not set"),
    ({"SECRET_KEY": "dev-secret-key-change-me"}, "SECRET_KEY is a published default"),
    ({"SECRET_KEY": "short"}, "SECRET_KEY is shorter than 32"),
    ({"OPS_PASSWORD": ""}, "OPS_PASSWORD is empty"),
    ({"OPS_PASSWORD": "change-me-too"}, "OPS_PASSWORD is"),
    ({"SHOP_ALLOW_SIMULATED_GATEWAY": None}, "GATEWAY_URL is not set"),
]


@pytest.fixture
def sqlite_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with ExitStack() as exits:
        shop = open_stack("sqlite", tmp_path_factory, exits)
        exits.callback(shop.close)
        yield shop


def production_env(shop: Stack, **changes: str | None) -> dict[str, str]:
    """The stack's environment with SHOP_ENV unset (production) and strong settings."""
    env = {k: v for k, v in shop.env.items() if k not in ("SHOP_ENV", "OPS_PASSWORD")}
    env.update(SECRET_KEY=STRONG_SECRET, SHOP_ALLOW_SIMULATED_GATEWAY="1")
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def run_line(shop: Stack, name: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run a Procfile line to its end (a refused start ends quickly; 60 s is the cap)."""
    return subprocess.run(
        ["bash", "-c", f"exec {shop.commands[name]}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(("change", "message"), WEAK, ids=[m for _, m in WEAK])
def test_production_refuses_to_start_web_workers_and_release(sqlite_stack, change, message):
    shop = sqlite_stack
    shop.release()  # (in development) so only the settings can stop the processes below
    env = production_env(shop, **change)
    for line in ("web", "orders", "scheduler", "release"):
        result = run_line(shop, line, env)
        output = result.stdout + result.stderr
        assert result.returncode != 0, f"{line} started:\n{output[-2000:]}"
        assert message in output, f"{line}:\n{output[-2000:]}"
        assert "SHOP_ENV" in output
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{shop.base_url}/healthz", timeout=2)
    direct = subprocess.run(  # a consumer started by hand, without orders.worker
        ["huey_consumer", "tasks.orders_queue", "-w", "1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert direct.returncode != 0 and message in direct.stdout + direct.stderr


def test_production_with_strong_settings_serves(sqlite_stack):
    shop = sqlite_stack
    shop.release()
    shop.env = production_env(shop, OPS_PASSWORD="a strong bootstrap password")
    shop.start("web")
    shop.wait_http()
    assert shop.http.get(f"{shop.base_url}/healthz", timeout=5).status_code == 200
    page = shop.http.get(f"{shop.base_url}/ops/login", timeout=5)
    assert "Secure" in page.headers["Set-Cookie"]  # production: cookies for HTTPS only


@pytest.mark.parametrize("kind", STACKS)
def test_concurrent_logins_across_gunicorn_workers_never_slip_past(kind, tmp_path_factory):
    with ExitStack() as exits:
        shop = open_stack(kind, tmp_path_factory, exits, WEB_CONCURRENCY="2", GUNICORN_THREADS="8")
        exits.callback(shop.close)
        shop.up("web")
        codes = concurrent_logins(shop.base_url, 24, "ops", "not the password")
        assert sorted(set(codes)) == [401, 429], codes
        assert codes.count(401) == 5, codes  # LOGIN_ATTEMPTS_PER_ADDRESS, no more
        assert post_login(shop.base_url, "ops", "ops-dev-password") == 429  # even the right one
        failed = shop.scalar("SELECT COUNT(*) FROM audit_log WHERE action = 'login_failed'")
        assert failed == 5


def proxy_stack(tmp_path_factory: pytest.TempPathFactory, exits: ExitStack, hops: str) -> Stack:
    shop = open_stack(
        "sqlite", tmp_path_factory, exits, TRUSTED_PROXY_HOPS=hops, CHECKOUT_RATE_LIMIT="2/minute"
    )
    exits.callback(shop.close)
    return shop.up("web")


def checkout_status(shop: Stack, forwarded_for: str) -> int:
    response = shop.http.post(
        f"{shop.base_url}/api/checkout",
        json={},
        headers={"X-Forwarded-For": forwarded_for},
        timeout=10,
    )
    return response.status_code


def test_behind_one_proxy_limits_key_on_the_real_client(tmp_path_factory):
    with ExitStack() as exits:
        shop = proxy_stack(tmp_path_factory, exits, "1")
        first, second = "203.0.113.7", "198.51.100.9"
        assert [checkout_status(shop, first) for _ in range(3)] == [422, 422, 429]
        assert checkout_status(shop, second) == 422  # another shopper: not limited
        # the client can prepend anything; the proxy's last entry is the one trusted
        assert checkout_status(shop, f"10.1.1.1, {first}") == 429
        logins = [post_login(shop.base_url, "ops", "wrong", first) for _ in range(6)]
        assert logins == [401] * 5 + [429]
        assert post_login(shop.base_url, "ops", "ops-dev-password", second) == 302


def test_without_trusted_proxies_a_spoofed_header_changes_nothing(tmp_path_factory):
    with ExitStack() as exits:
        shop = proxy_stack(tmp_path_factory, exits, "0")
        spoofed = [checkout_status(shop, f"203.0.113.{n}") for n in range(3)]
        assert spoofed == [422, 422, 429]
        logins = [post_login(shop.base_url, "ops", "wrong", f"198.51.100.{n}") for n in range(6)]
        assert logins == [401] * 5 + [429]
        assert post_login(shop.base_url, "ops", "ops-dev-password", "192.0.2.1") == 429
