"""Where django-tasks-db keeps its task rows in the benchmark project: in the database the
running case measures, named by ``tasks_database()`` (in a ``db_worker`` process, by
``DDE_BENCH_TASKS_DATABASE``), since ``default`` is left unconfigured and the backend writes
through the router."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

_ALIAS: ContextVar[str | None] = ContextVar("dde_bench_tasks_alias", default=None)


@contextmanager
def tasks_database(alias: str) -> Iterator[None]:
    """Within the block, django-tasks-db reads and writes its tasks on ``alias``."""
    token = _ALIAS.set(alias)
    try:
        yield
    finally:
        _ALIAS.reset(token)


class TasksRouter:
    """Routes django-tasks-db's model to ``tasks_database()``'s alias; says nothing of others."""

    def db_for_read(self, model: type[Any], **hints: Any) -> str | None:
        if model._meta.app_label != "django_tasks_database":
            return None
        return _ALIAS.get() or os.environ.get("DDE_BENCH_TASKS_DATABASE")

    db_for_write = db_for_read
