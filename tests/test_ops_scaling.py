"""The overview shows the autoscaler's recorded decisions."""

from orders.ops.scaling import record_scaling_decision
from tests.ops_support import login


def test_overview_lists_autoscaler_decisions(client, session):
    assert login(client).status_code == 302
    page = client.get("/ops/").get_data(as_text=True)
    assert "No autoscaler decisions yet" in page
    record_scaling_decision(
        session, queue="payments", depth=140, before=2, after=4, host="box-7", reason="depth > 100"
    )
    session.commit()
    page = client.get("/ops/").get_data(as_text=True)
    assert "box-7" in page and "2 &rarr; 4" in page and "depth &gt; 100" in page
