"""Per-worker slots for the work that holds the database longest: folds of the change records and
streamed exports. The web layer takes a slot before any of the work is done; a request that finds none
free (waiting up to the slots' ``wait``) is answered ``503 busy`` with ``Retry-After``.

**Folds** (``max_concurrent_folds``, waiting ``fold_wait``). A fold reads every change record of its
window: at 10,000 hosts a week is about 150,000 records, half a second of PostgreSQL with up to
``change_summary.FOLD_WORK_MEM`` for each of its sorts and hashes (store/change_summary.py: the change
page counted live or over a dated window, the API's change pages), and the whole feed folded in Python
holds every record in the worker's memory (store/changes.py ``feed``: the change export, and the API
pages ``change_summary.api_page`` cannot tell). A few clients asking for them in a loop would otherwise
hold every database connection of the worker (``pool_size``) and its memory, and slow every other page.
The change page's default view (store/change_digest.py ``read``: a few rows) takes none, nor does the
digest's build (one node every ``change_digest_interval``: it is never refused).

**Roll-ups of an org subtree** (as many slots and the same wait as the folds, slots of their own). The
summary by 控制点 (web/rollup.py) reads and assesses every host's latest report document, ~7 ms of the
worker's CPU a host: 8 s for a department of 1,000 hosts; the GB/T 28448 coverage (store/coverage.py)
judges every host's results of the level's rules: 1.4 s for the whole of 10,000 hosts.

**Streamed exports** (``max_concurrent_exports``, refused at once). A findings, inventory or components export
streams from a server-side cursor at the client's pace, holding a database connection and a snapshot
(which keeps VACUUM from the rows it may still read) until the client has read the last row: a few slow
or stalled downloads would hold the worker's connections for as long as they like. The slot is taken
before the response starts and given back when the stream ends or fails, or when the response is over
for any other reason (the client went away: web/export.py ``ClosingStream`` closes the stream at once).
"""
from __future__ import annotations

import contextlib
import threading
import weakref

from scanner.server.errors import ApiError

FOLDS = ("already folding other change feeds", 5)  # (what the server is busy with, seconds to wait)
ROLLUPS = ("already adding up other org subtrees", 5)
EXPORTS = ("already streaming other exports", 30)


class Slots(object):
    """``n`` slots, waiting at most ``wait`` seconds for one; ``what``: FOLDS or EXPORTS."""

    def __init__(self, n, wait, what=FOLDS):
        self.n, self.wait, self.what = max(1, int(n)), max(0.0, float(wait)), what
        self._free = threading.BoundedSemaphore(self.n)

    def _take(self):
        if not self._free.acquire(timeout=self.wait):
            raise ApiError(503, "busy", "the server is %s; try again in a few seconds" % self.what[0],
                           headers={"Retry-After": str(self.what[1])})

    @contextlib.contextmanager
    def held(self):
        """A slot for the ``with`` block."""
        self._take()
        try:
            yield
        finally:
            self._free.release()

    def hold(self, stream):
        """A slot for the generator ``stream``, taken now: the returned ``Held`` iterates it and gives the
        slot back once, when it is read to its end, fails, is closed (``Held.close``), or is dropped."""
        self._take()
        return Held(stream, self._free)


class Held(object):
    """An iterator over ``stream`` holding a slot of ``free`` (a semaphore) until it is done with.
    ``close`` (from any thread) waits for a ``next`` running in another thread to return, then closes
    the stream, so its ``finally`` blocks (the database connection, the audit entry) run at once instead
    of whenever the garbage collector finds the dropped stream."""

    def __init__(self, stream, free):
        self._stream, self._free, self._lock = stream, free, threading.Lock()
        self._given = [False]  # the slot given back; shared with the finalizer (dropped unclosed, it gives it back)
        weakref.finalize(self, _give_back, free, self._given)

    def __iter__(self):
        return self

    def __next__(self):
        with self._lock:
            if self._given[0]:
                raise StopIteration
            try:
                return next(self._stream)
            except BaseException:  # the end (StopIteration) or a failure: done with
                _give_back(self._free, self._given)
                raise

    def close(self):
        with self._lock:
            if not self._given[0]:
                try:
                    self._stream.close()
                finally:
                    _give_back(self._free, self._given)


def _give_back(free, given):
    """The slot back to ``free``, once (``given``: [whether it was])."""
    if not given[0]:
        given[0] = True
        free.release()


_SLOTS, _LOCK = {}, threading.Lock()


def slots(n, wait, what=FOLDS):
    """The process's slots for these settings (the same object for every app made with them)."""
    with _LOCK:
        got = _SLOTS.get((n, wait, what))
        if got is None:
            got = _SLOTS[(n, wait, what)] = Slots(n, wait, what)
        return got
