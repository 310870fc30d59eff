"""The Huey classes the consumers run: Huey's own, less two broker round trips a task.

Around each task Huey asks the broker whether the task, or its kind, was revoked (a
read of two keys before it runs: Redis MGET, or a SELECT on SQLite) and clears the
task's revocation flag after (a DEL): 6.6 of the 24.8 Redis commands an order cost
at 30 checkouts/s. This shop never revokes a Huey task: a job is discarded or retried in
its row, and a queue paused in the database, which a claim reads before every step
(docs/operations.md). So neither is done, and revoking, which would then do nothing,
raises :class:`RevokingRefused`.
"""

from __future__ import annotations

from typing import Any

from huey import PriorityRedisExpireHuey, SqliteHuey


class RevokingRefused(RuntimeError):
    """Revoking a Huey task would do nothing here: a job is discarded in its row."""


REFUSED = "a job is discarded in its row (the ops dashboard), never revoked in Huey"


class NeverRevoked:
    """Mixed in before a Huey class: no task is ever revoked."""

    def is_revoked(self, task: Any, timestamp: Any = None, peek: bool = True) -> bool:
        return False

    def delete(self, key: str) -> Any:
        if key.startswith("r:"):  # a task's revocation flag (Task.revoke_id): never set
            return False
        return super().delete(key)  # type: ignore[misc]  # the Huey class mixed with

    def revoke(self, task: Any, revoke_until: Any = None, revoke_once: bool = False) -> None:
        raise RevokingRefused(REFUSED)

    def revoke_all(
        self, task_class: Any, revoke_until: Any = None, revoke_once: bool = False
    ) -> None:
        raise RevokingRefused(REFUSED)


class RedisHuey(NeverRevoked, PriorityRedisExpireHuey):  # type: ignore[misc]  # untyped
    """Redis: priorities, results expire (and none are kept: ``results=False``)."""


class EmbeddedHuey(NeverRevoked, SqliteHuey):  # type: ignore[misc]  # untyped
    """The embedded default: a SQLite file per queue."""
