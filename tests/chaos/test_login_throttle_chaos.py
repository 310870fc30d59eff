"""The login throttle with its Redis stopped: still 429 past the limit, never a 500, and
an operator from another address still gets in (the database counts meanwhile)."""

from __future__ import annotations

import pytest
import redis

from tests.ops_http import concurrent_logins, post_login

pytestmark = [pytest.mark.chaos, pytest.mark.e2e, pytest.mark.xdist_group("chaos")]


def test_redis_down_login_throttle_answers_429_not_500(private_redis, make_stack):
    shop = make_stack(
        "sqlite", redis_url=private_redis.url, TRUSTED_PROXY_HOPS="1", WEB_CONCURRENCY="2"
    )
    shop.up("web")
    assert post_login(shop.base_url, "ops", "wrong", "203.0.113.1") == 401
    client = redis.Redis.from_url(private_redis.url)
    assert list(client.scan_iter(f"{shop.prefix}:login:*"))  # counted in Redis while up
    client.close()

    private_redis.stop()
    codes = concurrent_logins(shop.base_url, 16, "ops", "wrong", "203.0.113.2")
    assert sorted(set(codes)) == [401, 429], codes
    assert codes.count(401) == 5, codes  # the database's count: none slipped past
    assert post_login(shop.base_url, "ops", "wrong", "203.0.113.2") == 429
    assert post_login(shop.base_url, "ops", "ops-dev-password", "198.51.100.3") == 302
    assert "Redis unreachable, counting in the database" in shop.log("web")
    private_redis.start()  # the stack's clean-up deletes its keys there
