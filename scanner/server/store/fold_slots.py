"""At most a few folds of the change records at once in a worker process.

A fold reads every change record of its window: at 10,000 hosts a week is about 150,000 records, half a
second of PostgreSQL with up to ``change_summary.FOLD_WORK_MEM`` for each of its sorts and hashes
(store/change_summary.py: the change page counted live or over a dated window, the API's change pages),
and the whole feed folded in Python holds every record in the worker's memory (store/changes.py
``feed``: the change export, and the API pages ``change_summary.api_page`` cannot tell). A few clients
asking for them in a loop would otherwise hold every database connection of the worker
(``pool_size``) and its memory, and slow every other page. The web layer takes a slot around each such
call: a request waits up to ``fold_wait`` seconds for one of ``max_concurrent_folds``, then is
answered ``503 busy`` with ``Retry-After`` before any of its work is done. The change page's default
view (store/change_digest.py ``read``: a few rows) takes none, nor does the digest's build (one node
every ``change_digest_interval``: it is never refused).
"""
from __future__ import annotations

import contextlib
import threading

from scanner.server.errors import ApiError

RETRY_AFTER = 5  # seconds a refused client is told to wait


class Slots(object):
    """``n`` slots; ``held()`` takes one for a ``with`` block, waiting at most ``wait`` seconds."""

    def __init__(self, n, wait):
        self.n, self.wait = max(1, int(n)), max(0.0, float(wait))
        self._free = threading.BoundedSemaphore(self.n)

    @contextlib.contextmanager
    def held(self):
        if not self._free.acquire(timeout=self.wait):
            raise busy()
        try:
            yield
        finally:
            self._free.release()


def busy():
    return ApiError(503, "busy", "the server is already folding other change feeds; try again in a few seconds",
                    headers={"Retry-After": str(RETRY_AFTER)})


_SLOTS, _LOCK = {}, threading.Lock()


def slots(n, wait):
    """The process's slots for these settings (the same object for every app made with them)."""
    with _LOCK:
        got = _SLOTS.get((n, wait))
        if got is None:
            got = _SLOTS[(n, wait)] = Slots(n, wait)
        return got
