"""The payments rate limit (Huey's limiter) holds charges back; every order still completes."""

from __future__ import annotations

import pytest

from tests.chaos.audit import assert_balanced, sku, wait_no_live_jobs
from tests.e2e.conftest import STACKS, open_stack

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("resilience")]


@pytest.mark.parametrize("kind", STACKS)
def test_charges_over_the_rate_limit_wait_for_the_next_window(kind, tmp_path_factory):
    from contextlib import ExitStack

    with ExitStack() as exits:
        shop = open_stack(
            kind,
            tmp_path_factory,
            exits,
            PAYMENTS_RATE_LIMIT="2",
            PAYMENTS_RATE_SECONDS="2",
            HUEY_QUIET="0",  # huey's own lines, which say when the limiter held a charge
        )
        exits.callback(shop.close)
        shop.up()
        item = sku()
        shop.add_product(item, stock=10, price_cents=400)
        jobs = [shop.checkout(item) for _ in range(6)]
        final = shop.wait_final(jobs, timeout=90)
        assert {body["status"] for body in final.values()} == {"completed"}
        assert 'rate-limited on "charges"' in shop.log("payments")
        wait_no_live_jobs(shop)
        assert_balanced(shop)
