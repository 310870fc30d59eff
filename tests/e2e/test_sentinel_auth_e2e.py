"""Redis with passwords behind Sentinel: the shop's password reaches the master, the
sentinels' password reaches the sentinels, and without them nothing gets in.

Real redis-server master + replica (``requirepass``) and two sentinels with their own
``requirepass``; the shop gets ``REDIS_SENTINELS``, ``REDIS_SENTINEL_MASTER``,
``REDIS_PASSWORD`` and ``REDIS_SENTINEL_PASSWORD`` and serves checkouts end to end.
"""

from __future__ import annotations

import shutil
import uuid

import pytest
import redis
import requests

from orders.config import Settings
from orders.ops.probes import broker_reachable
from tests.conftest import REDIS_URL
from tests.sentinel import SentinelCluster
from tests.stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("deploy")]

PASSWORD = "data-" + uuid.uuid4().hex
SENTINEL_PASSWORD = "sentinel-" + uuid.uuid4().hex


@pytest.fixture
def cluster(tmp_path):
    if not shutil.which("redis-server"):
        if REDIS_URL:  # Redis tests are on: a missing server is a failure, not a skip
            pytest.fail("redis-server is not installed")
        pytest.skip("redis-server is not installed")
    base = tmp_path / "redis"
    base.mkdir()
    nodes = SentinelCluster(base, password=PASSWORD, sentinel_password=SENTINEL_PASSWORD)
    try:
        nodes.wait_ready()
        yield nodes
    finally:
        nodes.close()


def sentinel_env(cluster: SentinelCluster, **extra: str) -> dict[str, str]:
    return {
        "REDIS_SENTINELS": cluster.sentinels_env,
        "REDIS_SENTINEL_MASTER": cluster.master_name,
        **extra,
    }


def test_without_the_passwords_nobody_gets_in(cluster, tmp_path):
    master = redis.Redis(port=cluster.master_port, socket_timeout=2)
    with pytest.raises(redis.AuthenticationError):
        master.set("shop:pickled-task", b"anything")
    master.close()
    for env in (
        sentinel_env(cluster),  # neither
        sentinel_env(cluster, REDIS_SENTINEL_PASSWORD=SENTINEL_PASSWORD),  # no data password
        sentinel_env(cluster, REDIS_PASSWORD=PASSWORD),  # the sentinels refuse
        sentinel_env(cluster, REDIS_PASSWORD="wrong", REDIS_SENTINEL_PASSWORD=SENTINEL_PASSWORD),
    ):
        settings = Settings.from_env({**env, "DATA_DIR": str(tmp_path)})
        assert broker_reachable(settings) is not None, env


def test_the_password_in_redis_url_reaches_the_master_too(cluster, tmp_path):
    env = sentinel_env(
        cluster,
        REDIS_URL=f"redis://:{PASSWORD}@unused:6379/0",
        REDIS_SENTINEL_PASSWORD=SENTINEL_PASSWORD,
    )
    settings = Settings.from_env({**env, "DATA_DIR": str(tmp_path)})
    assert broker_reachable(settings) is None


def test_a_shop_behind_password_protected_sentinels_serves_checkouts(cluster, tmp_path):
    data = tmp_path / "shop"
    data.mkdir()
    stack = Stack(
        data,
        f"sqlite:///{data}/shop.db",
        None,
        **sentinel_env(cluster, REDIS_PASSWORD=PASSWORD, REDIS_SENTINEL_PASSWORD=SENTINEL_PASSWORD),
    )
    try:
        stack.up()
        ready = requests.get(f"{stack.base_url}/readyz", timeout=10)
        assert ready.status_code == 200, ready.text  # the probe follows the sentinels too
        sku = f"AUTH-{uuid.uuid4().hex[:8]}"
        stack.add_product(sku, stock=10)
        jobs = [stack.checkout(sku) for _ in range(3)]
        final = stack.wait_final(jobs)
        assert {body["status"] for body in final.values()} == {"completed"}
    finally:
        stack.close()
