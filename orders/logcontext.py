"""Which checkout a log line belongs to, and the JSON log format.

The job runner binds the checkout (and job) around each step with
:func:`bind_checkout`; a :class:`ContextFilter` copies the binding onto every log
record made in that thread or task, so ``LOG_FORMAT=json`` lines carry
``checkout_id`` and ``job_id`` and one ``grep`` finds a checkout's whole story.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

_checkout_id: ContextVar[str | None] = ContextVar("checkout_id", default=None)
_job: ContextVar[tuple[str, str] | None] = ContextVar("job", default=None)


@contextmanager
def bind_checkout(checkout_id: str | None, job_id: str, job_type: str) -> Iterator[None]:
    """Every log record made inside carries this checkout's public id and the job."""
    tokens = (_checkout_id.set(checkout_id), _job.set((job_id, job_type)))
    try:
        yield
    finally:
        _checkout_id.reset(tokens[0])
        _job.reset(tokens[1])


class ContextFilter(logging.Filter):
    """Adds ``checkout_id``, ``job_id`` and ``job_type`` (or None) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        job = _job.get()
        record.checkout_id = _checkout_id.get()
        record.job_id, record.job_type = job if job else (None, None)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line; the context fields appear when they are set."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "thread": record.threadName,
            "message": record.getMessage(),
        }
        for key in ("checkout_id", "job_id", "job_type"):
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)
