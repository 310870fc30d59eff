"""Checkouts over HTTP through real gunicorn and huey_consumer processes."""

import uuid

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]


def sku() -> str:
    return f"E2E-{uuid.uuid4().hex[:8]}"


def test_a_checkout_completes(stack):
    item = sku()
    stack.add_product(item, stock=5, price_cents=2500)
    job_id = stack.checkout(item, 2)
    final = stack.wait_final([job_id])[job_id]
    assert final["status"] == "completed"
    assert final["order"]["totalCents"] == 5000
    number = final["order"]["orderNumber"]
    url = f"{stack.base_url}/api/orders/{number}"
    assert stack.http.get(url, timeout=10).json()["view"] == "public"  # the number alone
    detail = stack.http.get(url, headers={"X-Job-Id": job_id}, timeout=10).json()
    assert [p["status"] for p in detail["payments"]] == ["captured"]
    assert stack.scalar("SELECT stock FROM products WHERE sku = :s", s=item) == 3
    # the confirmation email is a follow-up job; it is recorded in the timeline
    stack.wait_final([job_id])
    assert (
        stack.scalar(
            "SELECT COUNT(*) FROM emails WHERE checkout_id = "
            "(SELECT id FROM checkouts WHERE public_id = :j)",
            j=job_id,
        )
        == 1
    )


@pytest.mark.parametrize(
    ("token", "stock", "code"),
    [
        ("tok_declined", 5, "payment_declined"),
        ("tok_error", 5, "payment_unavailable"),
        ("tok_visa", 0, "out_of_stock"),
    ],
)
def test_each_failure_code(stack, token, stock, code):
    if stock == 0:
        item, job_id = last_unit_lost_at_the_hold(stack)
    else:
        item = sku()
        stack.add_product(item, stock=5)
        job_id = stack.checkout(item, 1, token=token)
    final = stack.wait_final([job_id])[job_id]
    assert final["status"] == "failed" and final["code"] == code, final
    assert (
        stack.scalar(
            "SELECT COUNT(*) FROM payments p JOIN checkouts c ON c.id = p.checkout_id "
            "WHERE c.public_id = :j AND p.status = 'captured'",
            j=job_id,
        )
        == 0
    )
    expected_stock = 0 if stock == 0 else 5
    assert stack.scalar("SELECT stock FROM products WHERE sku = :s", s=item) == expected_stock


def last_unit_lost_at_the_hold(stack) -> tuple[str, str]:
    """Two buyers for the last unit, the second accepted before the first's hold, so
    the hold decides. When the first's hold wins that race the second is refused at
    validation instead (422); then the pair is tried again on a fresh product."""
    for _ in range(5):
        item = sku()
        stack.add_product(item, stock=1)
        first = stack.checkout(item, 1)
        second = stack.post_checkout(item, 1)
        if second.status_code == 422:
            assert "out of stock" in second.json()["errors"][0]["message"], second.text
            stack.wait_final([first])
            continue
        assert second.status_code == 202, second.text
        pair = [first, second.json()["data"]["jobId"]]
        results = stack.wait_final(pair)
        losers = [j for j in pair if results[j]["status"] == "failed"]
        assert len(losers) == 1, results
        return item, losers[0]
    raise AssertionError("the first hold beat the second checkout's validation 5 times")


def test_many_checkouts_all_finish_and_balance(stack):
    """20 buyers for 15 units. Each one past the stock is refused, either at validation
    (422, when the workers already hold the stock) or by the hold (failed out_of_stock)."""
    item = sku()
    stack.add_product(item, stock=15, price_cents=100)
    responses = [stack.post_checkout(item, 1) for _ in range(20)]
    refused = [r for r in responses if r.status_code == 422]
    assert all("out of stock" in r.json()["errors"][0]["message"] for r in refused)
    jobs = [r.json()["data"]["jobId"] for r in responses if r.status_code == 202]
    assert len(jobs) + len(refused) == 20
    final = stack.wait_final(jobs, timeout=90)
    outcomes = sorted(body.get("code", body["status"]) for body in final.values())
    assert outcomes.count("completed") == 15
    assert outcomes.count("out_of_stock") + len(refused) == 5
    assert stack.scalar("SELECT stock FROM products WHERE sku = :s", s=item) == 0
    assert (
        stack.scalar(
            "SELECT COUNT(*) FROM payments p "
            "JOIN checkout_lines l ON l.checkout_id = p.checkout_id "
            "JOIN products pr ON pr.id = l.product_id WHERE pr.sku = :s AND p.status = 'captured'",
            s=item,
        )
        == 15
    )
