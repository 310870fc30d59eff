"""Checkouts keep flowing across a Redis failover when the shop is pointed at Sentinel.

Real redis-server master + replica and two redis-sentinel processes on free loopback
ports; the shop gets only ``REDIS_SENTINELS`` and ``REDIS_SENTINEL_MASTER``. The
master is killed (or demoted with SENTINEL FAILOVER) mid-traffic; the replica is
promoted; every checkout placed before, during and after completes, and the
consumers talk to the new master.
"""

from __future__ import annotations

import shutil
import threading
import time
import uuid

import pytest

from tests.conftest import REDIS_URL
from tests.sentinel import SentinelCluster
from tests.stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("deploy")]


@pytest.fixture
def cluster(tmp_path):
    if not shutil.which("redis-server"):
        if REDIS_URL:  # Redis tests are on: a missing server is a failure, not a skip
            pytest.fail("redis-server is not installed")
        pytest.skip("redis-server is not installed")
    base = tmp_path / "redis"
    base.mkdir()
    nodes = SentinelCluster(base)
    try:
        nodes.wait_ready()
        yield nodes
    finally:
        nodes.close()


@pytest.fixture
def sentinel_stack(tmp_path, cluster):
    data = tmp_path / "shop"
    data.mkdir()
    stack = Stack(
        data,
        f"sqlite:///{data}/shop.db",
        None,
        REDIS_SENTINELS=cluster.sentinels_env,
        REDIS_SENTINEL_MASTER=cluster.master_name,
    )
    try:
        yield stack.up()
    finally:
        stack.close()


@pytest.mark.parametrize("how", ["kill-master", "sentinel-failover"])
def test_checkouts_keep_flowing_across_a_sentinel_failover(cluster, sentinel_stack, how):
    stack = sentinel_stack
    item = f"SENT-{uuid.uuid4().hex[:8]}"
    stack.add_product(item, stock=500, price_cents=300)
    old_master, new_master = cluster.master_port, cluster.replica_port
    assert cluster.master_port_now() == old_master

    before = [stack.checkout(item) for _ in range(10)]
    assert all(b["status"] == "completed" for b in stack.wait_final(before).values())

    during: list[str] = []
    stop = threading.Event()

    def place() -> None:
        while not stop.is_set():
            during.append(stack.checkout(item))
            time.sleep(0.1)

    placer = threading.Thread(target=place)
    placer.start()
    try:
        time.sleep(0.5)
        if how == "kill-master":  # the crash: unreplicated writes are lost with it
            cluster.kill(old_master)
        else:  # a planned switch: the old master is demoted to a replica, still up
            cluster.client(cluster.sentinel_ports[0]).execute_command(
                "SENTINEL", "FAILOVER", cluster.master_name
            )
        cluster.wait_master(new_master)
        time.sleep(1)
    finally:
        stop.set()
        placer.join(30)

    after = [stack.checkout(item) for _ in range(10)]
    jobs = before + during + after
    final = stack.wait_final(jobs, timeout=120)
    assert len(during) >= 10
    statuses = {job: body["status"] for job, body in final.items()}
    assert set(statuses.values()) == {"completed"}, statuses
    assert stack.scalar("SELECT stock FROM products WHERE sku = :s", s=item) == 500 - len(jobs)
    # the consumers and the web now hold connections to the promoted replica
    clients = cluster.client(new_master).client_list()
    assert sum(1 for c in clients if c.get("cmd") != "client|list") >= 4, clients
