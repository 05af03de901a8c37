"""Access scope: the org subtrees a caller may see. The ONE place departments are kept apart.

Every read of fleet rows in the store (store/queries.py) and every decision in workflow/ and
access/ takes a ``Scope`` as its second argument (after the engine or connection) and filters
through it; there is no default, so a route that forgets it fails with a TypeError, and the route
sweep in tests/server/test_scope.py fails for a route that leaks. Rules:

- A user has one or more org subtrees (``/gov/finance`` covers ``/gov/finance/tax``); ``/`` is the
  whole fleet (a global user, and the command line, which acts as ``Scope.everything()``).
- Rows outside the scope are simply not there: lists leave them out, single objects answer 404
  (``not_found``) exactly as if they did not exist.
- A request's own ``?org=`` filter narrows within the scope and never widens it.
"""
from __future__ import annotations

from sqlalchemy import false, or_

from scanner.server.errors import not_found
from scanner.server.util import normalise_org


def _under(path, base):
    return base == "/" or path == base or path.startswith(base + "/")


def _like_prefix(base):
    return base.replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_") + "/%"


class Scope(object):
    """An immutable set of org subtrees (none of them inside another)."""

    __slots__ = ("orgs",)

    def __init__(self, orgs):
        paths = []
        for org in orgs or ():
            path = normalise_org(org)
            if path is None:
                raise ValueError("not an org path: %r" % (org,))
            paths.append(path)
        kept = sorted(p for p in set(paths) if not any(q != p and _under(p, q) for q in paths))
        object.__setattr__(self, "orgs", tuple(kept))

    def __setattr__(self, name, value):
        raise AttributeError("Scope is immutable")

    @classmethod
    def everything(cls):
        """The whole fleet: global users and the command line."""
        return cls(["/"])

    @property
    def is_global(self):
        return self.orgs == ("/",)

    def __repr__(self):
        return "Scope(%r)" % (list(self.orgs),)

    def __eq__(self, other):
        return isinstance(other, Scope) and other.orgs == self.orgs

    def __hash__(self):
        return hash(self.orgs)

    # --- Python-side checks -------------------------------------------------------------------
    def covers(self, org_path):
        """Whether an object at ``org_path`` is inside the scope."""
        path = normalise_org(org_path) if org_path is not None else None
        return path is not None and any(_under(path, base) for base in self.orgs)

    def covers_scope(self, other):
        """Whether every subtree of ``other`` is inside this scope (a scoped admin managing a user)."""
        return bool(other.orgs) and all(self.covers(o) for o in other.orgs)

    def touches(self, org_path):
        """Whether ``org_path`` is inside the scope or an ancestor of part of it (a waiver granted
        higher up that applies to some of this scope's hosts)."""
        path = normalise_org(org_path) if org_path is not None else None
        return path is not None and any(_under(path, base) or _under(base, path) for base in self.orgs)

    def subtrees(self, org=None):
        """The subtrees whose union is this scope narrowed to ``org`` (a request's ``?org=``): the org
        itself when it is inside the scope, else the scope's subtrees below it (none when ``org`` is
        neither: the caller answers 404, as ``touches`` decides)."""
        path = normalise_org(org) if org else None
        if path is None or path == "/":
            return list(self.orgs)
        if self.covers(path):
            return [path]
        return [base for base in self.orgs if _under(base, path)]

    def require(self, org_path, what="object"):
        """404 for an object outside the scope (do not reveal that it exists)."""
        if not self.covers(org_path):
            raise not_found("no %s" % what)

    def root(self):
        """The deepest org that contains the whole scope ('/' for several departments at the top)."""
        if not self.orgs:
            return None
        parts = [o.strip("/").split("/") if o != "/" else [] for o in self.orgs]
        common = []
        for segs in zip(*parts):
            if len(set(segs)) != 1:
                break
            common.append(segs[0])
        return "/" + "/".join(common)

    # --- SQL -----------------------------------------------------------------------------------
    def where(self, column):
        """SQL condition: rows whose org path ``column`` is inside the scope; None for the whole fleet."""
        if self.is_global:
            return None
        if not self.orgs:
            return false()
        conds = []
        for base in self.orgs:
            conds.append(column == base)
            conds.append(column.like(_like_prefix(base), escape="\\"))
        return or_(*conds)


def check(scope):
    """Guard at the top of every scoped store function: a Scope, not None or a string."""
    if not isinstance(scope, Scope):
        raise TypeError("a Scope is required (got %r): access scope is enforced in the query layer" % (scope,))
    return scope
