"""Every dashboard action: a POST (CSRF-checked by the guard), audited, then a redirect."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import flash, redirect, request, url_for
from werkzeug.wrappers import Response

from orders.ops import actions
from orders.ops.actions import ActionRefused
from orders.web.extensions import db, db_session, dispatch, settings
from orders.web.ops import bp
from orders.web.ops.auth import current_operator, safe_next


def _back(default: str, **values: Any) -> Response:
    target = request.form.get("next")
    return redirect(safe_next(target) if target else url_for(default, **values))


@contextmanager
def _refusal_flashed() -> Iterator[None]:
    """Run an action; if it is refused, roll its writes back and flash why."""
    try:
        yield
    except ActionRefused as exc:
        db.session.rollback()
        flash(exc.message, "error")


@bp.post("/jobs/<job_id>/retry")
def retry_job(job_id: str) -> Response:
    with _refusal_flashed():
        actions.retry_job(db_session(), job_id, current_operator(), dispatch())
        flash(f"Job {job_id} queued again.", "ok")
    return _back("ops.job", job_id=job_id)


@bp.post("/jobs/<job_id>/discard")
def discard_job(job_id: str) -> Response:
    with _refusal_flashed():
        actions.discard_job(db_session(), job_id, current_operator())
        flash(f"Job {job_id} discarded.", "ok")
    return _back("ops.job", job_id=job_id)


@bp.post("/jobs/bulk")
def bulk() -> Response:
    action = request.form.get("action", "")
    queue = request.form.get("queue") or None
    ids = request.form.getlist("job_id")
    with _refusal_flashed():
        everything = request.form.get("scope") == "all"
        result = actions.bulk(
            db_session(),
            action,
            [] if everything else ids,
            current_operator(),
            dispatch(),
            queue=queue if everything else None,
        )
        flash(f"Bulk {action}: {len(result.done)} done, {len(result.refused)} refused.", "ok")
        for job_id, reason in list(result.refused.items())[:10]:
            flash(f"{job_id}: {reason}", "error")
    return _back("ops.jobs")


@bp.post("/checkouts/<public_id>/redrive")
def redrive(public_id: str) -> Response:
    with _refusal_flashed():
        ids = actions.redrive_checkout(db_session(), public_id, current_operator(), dispatch())
        flash(f"Checkout {public_id} re-driven ({len(ids)} job(s)).", "ok")
    return _back("ops.checkout", public_id=public_id)


@bp.post("/queues/<queue>/pause")
def pause(queue: str) -> Response:
    with _refusal_flashed():
        actions.pause_queue(db_session(), queue, current_operator())
        flash(f"Queue {queue} paused.", "ok")
    return _back("ops.overview")


@bp.post("/queues/<queue>/resume")
def resume(queue: str) -> Response:
    with _refusal_flashed():
        count = actions.resume_queue(db_session(), queue, current_operator(), dispatch())
        flash(f"Queue {queue} resumed; {count} waiting job(s) sent again.", "ok")
    return _back("ops.overview")


@bp.post("/breaker/reset")
def reset_breaker() -> Response:
    if actions.reset_circuit_breaker(db_session(), settings(), current_operator()):
        flash("Circuit breaker reset to closed.", "ok")
    else:
        flash("No shared breaker state to reset (no Redis configured).", "error")
    return _back("ops.overview")
