"""What a log line is about: the cycle it belongs to, and the object and operation.

A cycle's run id (what the run log gave it: the ``run`` of ``syncd status --log``) is kept in
a context variable while the cycle runs, so every line logged within it, by the cycle or the
adapters it calls, can name the cycle (``syncd.app.logs`` puts it in JSON lines). Lines about
one object pass ``extra=about(object_id, operation)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

CYCLE: ContextVar[int | None] = ContextVar("syncd_cycle", default=None)


@contextmanager
def cycle_context(run_id: int | None) -> Iterator[None]:
    """Lines logged inside (and in the tasks started inside) belong to cycle ``run_id``."""
    token = CYCLE.set(run_id)
    try:
        yield
    finally:
        CYCLE.reset(token)


def about(object_id: str, operation: str = "") -> dict[str, str]:
    """The ``extra`` of a log line about one object (and the operation on it)."""
    fields = {"object": object_id}
    if operation:
        fields["operation"] = operation
    return fields
