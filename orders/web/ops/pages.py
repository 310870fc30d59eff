"""The dashboard's pages (GET only): overview, jobs, job, checkout, search, emails, audit."""

from __future__ import annotations

from flask import Response, abort, jsonify, render_template, request
from sqlalchemy import select

from orders.domain.validation import plausible_id
from orders.infra.tracing import trace_url
from orders.models import Checkout, Email, Job, JobStatus, Order, Payment
from orders.ops.audit import recent_audit
from orders.ops.queues import overview as overview_numbers
from orders.ops.queues import queue_health
from orders.ops.scaling import recent_scaling_decisions
from orders.ops.search import search as run_search
from orders.pipeline.jobtypes import QUEUES
from orders.shop.status import timeline
from orders.web.extensions import db, db_session, settings
from orders.web.ops import bp
from orders.web.ops.health import readiness

PAGE = 200
MAX_ROW_ID = 2**31 - 1  # an integer column's largest (a bigger one is a DataError in PostgreSQL)
STATES = [s.value for s in JobStatus]


def _span() -> str:
    return "day" if request.args.get("span") == "day" else "hour"


@bp.get("/")
def overview() -> str:
    data = overview_numbers(db_session(), settings(), _span())
    return render_template(
        "ops/overview.html",
        data=data,
        span=_span(),
        queues=QUEUES,
        decisions=recent_scaling_decisions(db_session(), 10),
    )


@bp.get("/jobs")
def jobs() -> str:
    queue = request.args.get("queue") or None
    state = request.args.get("state") or None
    query = select(Job).order_by(Job.created_at.desc()).limit(PAGE)
    if queue:
        query = query.where(Job.queue == queue)
    if state in STATES:
        query = query.where(Job.status == JobStatus(state))
    rows = list(db.session.scalars(query))
    public_ids = _public_ids({job.checkout_id for job in rows if job.checkout_id})
    return render_template(
        "ops/jobs.html",
        jobs=rows,
        queue=queue,
        state=state,
        queues=QUEUES,
        states=STATES,
        public_ids=public_ids,
    )


def _public_ids(ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = db.session.execute(select(Checkout.id, Checkout.public_id).where(Checkout.id.in_(ids)))
    return {row[0]: row[1] for row in rows}


@bp.get("/jobs/<job_id>")
def job(job_id: str) -> str:
    row = db.session.get(Job, job_id) if plausible_id(job_id) else None
    if row is None:
        abort(404, f"no job {job_id} (it may have been removed by retention)")
    checkout = db.session.get(Checkout, row.checkout_id) if row.checkout_id else None
    events = timeline(db_session(), checkout.id) if checkout else []
    stored = row.trace_context or (checkout.trace_context if checkout else None)
    trace = trace_url(stored, settings().trace_url_template)
    return render_template("ops/job.html", job=row, checkout=checkout, events=events, trace=trace)


@bp.get("/checkouts/<public_id>")
def checkout(public_id: str) -> str:
    row = None
    if plausible_id(public_id):
        row = db.session.scalar(select(Checkout).where(Checkout.public_id == public_id))
    if row is None:
        abort(404, f"no checkout {public_id}")
    order = db.session.scalar(select(Order).where(Order.checkout_id == row.id))
    return render_template(
        "ops/checkout.html",
        checkout=row,
        order=order,
        trace=trace_url(row.trace_context, settings().trace_url_template),
        events=timeline(db_session(), row.id),
        jobs=list(
            db.session.scalars(
                select(Job).where(Job.checkout_id == row.id).order_by(Job.created_at)
            )
        ),
        payments=list(db.session.scalars(select(Payment).where(Payment.checkout_id == row.id))),
        emails=list(db.session.scalars(select(Email).where(Email.checkout_id == row.id))),
    )


@bp.get("/search")
def search() -> str:
    q = request.args.get("q", "")
    return render_template("ops/search.html", q=q, result=run_search(db_session(), q))


@bp.get("/emails")
def emails() -> str:
    rows = list(db.session.scalars(select(Email).order_by(Email.id.desc()).limit(PAGE)))
    return render_template("ops/emails.html", emails=rows, smtp=bool(settings().smtp_url))


@bp.get("/emails/<int:email_id>")
def email(email_id: int) -> str:
    row = db.session.get(Email, email_id) if email_id <= MAX_ROW_ID else None
    if row is None:
        abort(404, f"no email {email_id}")
    return render_template("ops/email.html", email=row)


@bp.get("/audit")
def audit_log() -> str:
    return render_template("ops/audit.html", rows=recent_audit(db_session()))


@bp.get("/health")
def ops_health() -> Response:
    """What the public probes leave out, for logged-in operators: why a dependency is
    down, and every worker process (host, pid, last heartbeat)."""
    checks = readiness()
    healthy, body = queue_health(db_session(), settings())
    db_session().rollback()
    return jsonify(
        {
            "ready": not any(checks.values()),
            "checks": {name: error or "ok" for name, error in checks.items()},
            "queuesHealthy": healthy,
            **body,
        }
    )
