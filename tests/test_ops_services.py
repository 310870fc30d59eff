"""Ops numbers against the real database: counters, metrics, retention, health, actions."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from orders.db import make_engine, make_session_factory, utcnow
from orders.domain.latency import bucket_index
from orders.infra.mail import SmtpMailer
from orders.models import (
    AuditLog,
    Checkout,
    CheckoutEvent,
    Email,
    Job,
    JobStatMinute,
    JobStatus,
    Order,
    QueuePause,
)
from orders.models.ops import LATENCY_BUCKETS_MS
from orders.ops.heartbeats import WorkerIdentity, beat, list_workers
from orders.ops.pause import job_is_paused
from orders.ops.retention import delete_old_job_records
from tests.factories import checkout_body, make_product
from tests.ops_support import login, token
from tests.stack import free_port
from tests.support import Drain, RecordingDispatch, take


def sweep_job_records(session, settings) -> int:
    """Retention as the scheduler runs it: batch after batch, each committed."""
    deleted = 0
    while batch := delete_old_job_records(session, settings):
        session.commit()
        deleted += batch
    session.commit()
    return deleted


def place(client, *items, **extra):  # type: ignore[no-untyped-def]
    response = client.post("/api/checkout", json=checkout_body(*items, **extra))
    assert response.status_code == 202, response.get_json()
    return response.get_json()["data"]["jobId"]


def metrics(client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:  # type: ignore[no-untyped-def]
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def stat_sums(session) -> dict[tuple[str, str, str], int]:  # type: ignore[no-untyped-def]
    session.expire_all()
    rows = session.execute(
        select(
            JobStatMinute.queue,
            JobStatMinute.type,
            JobStatMinute.outcome,
            func.sum(JobStatMinute.count),
        ).group_by(JobStatMinute.queue, JobStatMinute.type, JobStatMinute.outcome)
    )
    session.commit()
    return {(q, t, o): int(n) for q, t, o, n in rows}


def test_counters_metrics_and_retention_agree_with_the_database(client, session, drain, settings):
    make_product(session, sku="MUG", stock=20)
    for _ in range(3):
        place(client, ("MUG", 1))
    drain()
    waiting = place(client, ("MUG", 1))  # not drained: one reserve-stock job waits
    sums = stat_sums(session)
    jobs = session.execute(
        select(Job.queue, Job.type, func.count())
        .where(Job.status == JobStatus.COMPLETED)
        .group_by(Job.queue, Job.type)
    )
    assert {(q, t, "completed"): n for q, t, n in jobs} == sums
    assert sums[("orders", "reserve-stock", "completed")] == 3

    before = metrics(client)
    assert before[("shop_queue_jobs", (("queue", "orders"), ("state", "waiting")))] == 1
    assert before[("shop_queue_jobs", (("queue", "payments"), ("state", "waiting")))] == 0
    for (queue, job_type, outcome), count in sums.items():
        labels = (("outcome", outcome), ("queue", queue), ("type", job_type))
        assert before[("shop_jobs_processed_total", labels)] == count
        histogram = (("queue", queue), ("type", job_type))
        assert before[("shop_job_duration_seconds_count", histogram)] == count
    completed = session.scalar(select(func.count()).where(Checkout.status == "completed"))
    assert before[("shop_checkouts", (("status", "completed"),))] == completed == 3
    assert before[("shop_checkouts", (("status", "queued"),))] == 1
    durations = sorted(
        (c.finished_at - c.created_at).total_seconds()
        for c in session.scalars(select(Checkout).where(Checkout.finished_at.is_not(None)))
    )
    median = before[("shop_checkout_duration_seconds_last_hour", (("quantile", "0.5"),))]
    # from the stored histogram: inside the bucket of the middle checkout's time
    bucket = bucket_index(LATENCY_BUCKETS_MS, durations[1] * 1000)
    low = LATENCY_BUCKETS_MS[bucket - 1] if bucket else 0
    assert low < median * 1000 <= LATENCY_BUCKETS_MS[bucket]
    assert waiting

    deleted = sweep_job_records(session, replace(settings, keep_completed_jobs=1))
    assert deleted == sum(sums.values()) - len({q for q, _, _ in sums})
    assert stat_sums(session) == sums  # counters do not move when records go
    after = metrics(client)
    assert {k: v for k, v in after.items() if k[0].startswith("shop_job")} == {
        k: v for k, v in before.items() if k[0].startswith("shop_job")
    }
    assert session.scalar(select(func.count()).select_from(Order)) == 3
    health = client.get("/api/health/queues").get_json()
    assert (
        health["queues"]["orders"]["completed"]
        == sums[("orders", "reserve-stock", "completed")]
        + sums[("orders", "create-order", "completed")]
        + sums[("orders", "update-inventory", "completed")]
    )


def _job(session, queue: str, status: JobStatus, minutes_ago: int, n: int) -> Job:  # type: ignore[no-untyped-def]
    finished = utcnow() - timedelta(minutes=minutes_ago)
    job = Job(
        id=f"{queue[:3]}{status.value[:3]}{n:026d}",
        type={"orders": "reserve-stock", "payments": "refund-payment"}.get(
            queue, "send-order-confirmation"
        ),
        queue=queue,
        priority=1,
        status=status,
        attempts=1,
        max_attempts=5,
        created_at=finished,
        finished_at=None if status in (JobStatus.QUEUED,) else finished,
    )
    session.add(job)
    return job


def test_retention_keeps_exactly_the_configured_counts(session, settings):
    for queue in ("orders", "payments", "notifications"):
        for n in range(7):
            _job(session, queue, JobStatus.COMPLETED, n, n)
        for n in range(4):
            _job(session, queue, JobStatus.FAILED, n, n)
        _job(session, queue, JobStatus.DISCARDED, 10, 99)
        _job(session, queue, JobStatus.QUEUED, 100, 0)
    session.commit()
    config = replace(settings, keep_completed_jobs=5, keep_failed_jobs=3)
    assert sweep_job_records(session, config) == 3 * (2 + 2)
    session.expire_all()
    for queue in ("orders", "payments", "notifications"):
        rows = session.execute(
            select(Job.status, func.count()).where(Job.queue == queue).group_by(Job.status)
        )
        left = {status: count for status, count in rows}
        assert left == {JobStatus.COMPLETED: 5, JobStatus.FAILED: 3, JobStatus.QUEUED: 1}
        newest = session.scalars(
            select(Job.id).where(Job.queue == queue, Job.status == JobStatus.COMPLETED)
        ).all()
        assert sorted(newest) == sorted(f"{queue[:3]}com{n:026d}" for n in range(5))
    assert sweep_job_records(session, config) == 0  # idempotent


def test_health_queues_seed_shape_and_503_when_a_job_waits_too_long(client, session):
    body = client.get("/api/health/queues")
    assert body.status_code == 200
    data = body.get_json()
    assert data["status"] == "healthy"
    assert set(data["queues"]) == {"orders", "payments", "notifications"}
    assert set(data["queues"]["orders"]) >= {
        "waiting",
        "active",
        "scheduled",
        "completed",
        "failed",
        "oldestWaitingSeconds",
    }
    assert "orders" in data["workers"]
    _job(session, "orders", JobStatus.QUEUED, 30, 1)  # created 30 minutes ago, still waiting
    session.commit()
    late = client.get("/api/health/queues")
    assert late.status_code == 503
    assert late.get_json()["status"] == "unhealthy"
    assert late.get_json()["queues"]["orders"]["oldestWaitingSeconds"] >= 1700


def test_healthz_and_readyz(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["status"] == "ready"


def _app(settings, **overrides):  # type: ignore[no-untyped-def]
    from app import create_app

    return create_app(
        {
            "TESTING": True,
            "DISPATCH": RecordingDispatch(),
            "data_dir": settings.data_dir,
            "database_url": settings.database_url,
            **overrides,
        }
    )


def _get_once(app, path: str):  # type: ignore[no-untyped-def]
    from orders.web.extensions import db

    try:
        return app.test_client().get(path)
    finally:
        with app.app_context():
            db.engine.dispose()


def test_readyz_is_503_naming_the_broker_when_redis_is_unreachable(settings):
    app = _app(settings, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    response = _get_once(app, "/readyz")
    assert response.status_code == 503
    assert response.content_type == "application/problem+json"
    body = response.get_json()
    assert body["down"] == ["broker"] and body["checks"] == {"database": "ok", "broker": "down"}


def test_readyz_is_503_naming_the_database_when_it_is_unreachable(tmp_path: Path):
    from app import create_app

    app = create_app(
        {
            "TESTING": True,
            "DISPATCH": RecordingDispatch(),
            "data_dir": tmp_path,
            "database_url": f"postgresql://nobody@127.0.0.1:{free_port()}/none",
        }
    )
    response = _get_once(app, "/readyz")
    assert response.status_code == 503
    assert response.get_json()["down"] == ["database"]


def test_a_failed_email_job_is_retried_from_the_dashboard(client, session, settings, dispatched):
    make_product(session, sku="CAP", stock=5)
    public_id = place(client, ("CAP", 1), email="bea@example.com")
    broken = SmtpMailer(f"smtp://127.0.0.1:{free_port()}", settings.mail_from)  # nothing listens
    engine = make_engine(settings)
    failing = Drain(settings, make_session_factory(engine), dispatched, mailer=broken)
    failing()
    job = session.scalar(select(Job).where(Job.type == "send-order-confirmation"))
    assert job.status is JobStatus.FAILED and "SMTP" in job.last_error
    assert login(client).status_code == 302
    page = client.get(f"/ops/jobs/{job.id}").get_data(as_text=True)
    assert "Retry" in page and public_id in page and "Traceback" in page

    response = client.post(f"/ops/jobs/{job.id}/retry", data={"csrf_token": token(client)})
    assert response.status_code == 302
    assert [ref.id for ref in dispatched.refs] == [job.id]
    fixed = Drain(settings, make_session_factory(engine), dispatched)  # mail stored now
    assert fixed() == [("send-order-confirmation", "completed")]
    session.expire_all()
    assert session.get(Job, job.id).status is JobStatus.COMPLETED
    audit = session.scalars(select(AuditLog).where(AuditLog.action == "retry_job")).all()
    assert [(a.actor, a.target) for a in audit] == [("ops", job.id)]
    engine.dispose()


def test_retrying_a_step_of_an_ended_checkout_is_refused(client, session, drain):
    make_product(session, sku="BAG", stock=5)
    public_id = place(client, ("BAG", 1), paymentToken="tok_error")
    drain()
    job = session.scalar(select(Job).where(Job.type == "process-payment"))
    assert job.status is JobStatus.FAILED
    assert login(client).status_code == 302
    response = client.post(
        f"/ops/jobs/{job.id}/retry", data={"csrf_token": token(client)}, follow_redirects=True
    )
    page = response.get_data(as_text=True)
    assert f"belongs to checkout {public_id}, which already ended failed" in page
    session.expire_all()
    assert session.get(Job, job.id).status is JobStatus.FAILED
    assert (
        session.scalar(
            select(func.count()).select_from(AuditLog).where(AuditLog.action == "retry_job")
        )
        == 0
    )
    assert (
        client.post(
            f"/ops/checkouts/{public_id}/redrive", data={"csrf_token": token(client)}
        ).status_code
        == 302
    )
    assert (
        session.scalar(
            select(func.count()).select_from(AuditLog).where(AuditLog.action == "redrive_checkout")
        )
        == 0
    )


def test_bulk_discard_of_failed_jobs(client, session, drain):
    make_product(session, sku="PEN", stock=5)
    for _ in range(2):
        place(client, ("PEN", 1), paymentToken="tok_error")
    drain()
    failed = session.scalars(select(Job.id).where(Job.status == JobStatus.FAILED)).all()
    assert len(failed) == 2
    assert login(client).status_code == 302
    data = {"csrf_token": token(client), "action": "discard", "queue": "payments", "scope": "all"}
    assert client.post("/ops/jobs/bulk", data=data).status_code == 302
    session.expire_all()
    statuses = session.scalars(select(Job.status).where(Job.id.in_(failed))).all()
    assert statuses == [JobStatus.DISCARDED] * 2
    row = session.scalar(select(AuditLog).where(AuditLog.action == "bulk_discard"))
    assert row.actor == "ops" and row.detail == "2 done, 0 refused"


def test_pause_leaves_jobs_waiting_and_resume_sends_them_again(
    client, session, settings, dispatched
):
    make_product(session, sku="HAT", stock=5)
    assert login(client).status_code == 302
    assert (
        client.post("/ops/queues/orders/pause", data={"csrf_token": token(client)}).status_code
        == 302
    )
    job_id = place(client, ("HAT", 1))
    [ref] = dispatched.take()
    assert job_is_paused(session, ref.id)
    session.commit()
    # a consumer's claim leaves it waiting (the pause is part of the claim's UPDATE)
    assert take(session, ref.id, "w", 30, unless_paused=True) is None
    assert session.get(Job, ref.id, populate_existing=True).status is JobStatus.QUEUED
    session.commit()
    assert client.get("/ops/").get_data(as_text=True).count("paused") >= 1
    assert (
        client.post("/ops/queues/orders/resume", data={"csrf_token": token(client)}).status_code
        == 302
    )
    assert not job_is_paused(session, ref.id)
    session.commit()
    assert [r.type for r in dispatched.take()] == ["reserve-stock"]
    taken = take(session, ref.id, "w", 30, unless_paused=True)
    assert taken is not None and taken.attempt == 1
    assert session.scalar(select(func.count()).select_from(QueuePause)) == 0
    actions = session.scalars(select(AuditLog.action).order_by(AuditLog.id)).all()
    assert actions == ["login", "pause_queue", "resume_queue"]
    assert job_id


@pytest.mark.parametrize("field", ["email", "order", "customer", "job", "checkout"])
def test_search_finds_a_checkout_by_every_key(client, session, drain, field):
    make_product(session, sku="TOY", stock=5)
    public_id = place(client, ("TOY", 1), email="Carl@Example.com", customerId="cust-42")
    drain()
    order = session.scalar(select(Order))
    job = session.scalar(select(Job).where(Job.type == "create-order"))
    q = {
        "email": "carl@example.com",
        "order": order.order_number,
        "customer": "cust-42",
        "job": job.id,
        "checkout": public_id,
    }[field]
    assert login(client).status_code == 302
    page = client.get("/ops/search", query_string={"q": q}).get_data(as_text=True)
    assert public_id in page and order.order_number in page
    assert public_id not in client.get("/ops/search?q=nobody@example.com").get_data(as_text=True)


def test_checkout_page_shows_the_timeline_and_the_stored_email_renders_sandboxed(
    client, session, drain
):
    make_product(session, sku="CUP", stock=5)
    public_id = place(client, ("CUP", 1))
    drain()
    assert login(client).status_code == 302
    page = client.get(f"/ops/checkouts/{public_id}").get_data(as_text=True)
    events = session.scalars(
        select(CheckoutEvent.message).join(Checkout).where(Checkout.public_id == public_id)
    ).all()
    assert events and all(message.replace("'", "&#39;") in page for message in events)
    email = session.scalar(select(Email))
    listing = client.get("/ops/emails").get_data(as_text=True)
    assert email.subject in listing and "No SMTP server is configured" in listing
    view = client.get(f"/ops/emails/{email.id}").get_data(as_text=True)
    assert 'sandbox=""' in view and 'srcdoc="&lt;p&gt;Thank you' in view


def test_heartbeats_show_alive_then_dead(session):
    worker = WorkerIdentity("host-a", 4242, "payments", 3)
    beat(session, worker)
    beat(session, worker)
    [row] = list_workers(session, 5)
    assert (row["queue"], row["pid"], row["concurrency"], row["alive"]) == (
        "payments",
        4242,
        3,
        True,
    )
    [row] = list_workers(session, 0.0001)
    assert row["alive"] is False


def test_the_stream_pushes_the_overview(client, session):
    assert login(client).status_code == 302
    response = client.get("/ops/stream", buffered=False)
    assert response.mimetype == "text/event-stream"
    chunks = iter(response.response)
    assert next(chunks).startswith(b"retry:")
    event = next(chunks).decode()
    response.close()
    assert event.startswith("id: 0\nevent: overview\ndata: {")
    assert '"queues": {"orders"' in event and '"breaker": "unknown"' in event


def test_a_stuck_checkout_is_re_driven(client, session, dispatched):
    make_product(session, sku="KEY", stock=5)
    public_id = place(client, ("KEY", 1))
    [lost] = dispatched.take()  # the broker "lost" it: nothing will run it
    assert login(client).status_code == 302
    page = client.get(f"/ops/checkouts/{public_id}").get_data(as_text=True)
    assert "Re-drive checkout" in page
    response = client.post(
        f"/ops/checkouts/{public_id}/redrive", data={"csrf_token": token(client)}
    )
    assert response.status_code == 302
    assert [r.id for r in dispatched.take()] == [lost.id]
    row = session.scalar(select(AuditLog).where(AuditLog.action == "redrive_checkout"))
    assert (row.actor, row.target, row.detail) == ("ops", public_id, lost.id)
    messages = session.scalars(select(CheckoutEvent.message)).all()
    assert "Re-driven by an operator" in messages
