"""Group → role and org subtrees, the mapping LDAP and OpenID Connect logins share (server.json ``groups``):
the first entry that names one of the user's groups gives the role; the subtrees are those of every matching
entry of that role."""
from __future__ import annotations

from scanner.server.store.scope import Scope


class NoRole(Exception):
    """The user proved who they are, but none of their groups is mapped to an xcscan role."""

    def __init__(self, username, groups):
        Exception.__init__(self, "no mapped group")
        self.username = username
        self.groups = groups


def parse_mapping(groups, fail, roles, normalise=None, what="NAME"):
    """[(group, role, [org, ...])] from the ``groups`` setting; ``fail(message)`` raises for a wrong one."""
    normalise = normalise or (lambda g: g)
    if not isinstance(groups, list) or not groups:
        fail("'groups' must list at least one {\"group\": %s, \"role\": ROLE, \"orgs\": [\"/gov/...\"]}" % what)
    mapping = []
    for i, g in enumerate(groups):
        if not isinstance(g, dict) or set(g) - {"group", "role", "orgs"} or not isinstance(g.get("group"), str) \
                or not g.get("group"):
            fail("groups[%d] must be {\"group\": %s, \"role\": ROLE, \"orgs\": [...]}" % (i, what))
        if g.get("role") not in roles:
            fail("groups[%d]: role must be one of %s" % (i, ", ".join(roles)))
        orgs = g.get("orgs", ["/"])
        try:
            if isinstance(orgs, str) or not orgs:
                raise ValueError(orgs)
            scope = Scope(orgs)
        except (TypeError, ValueError):
            fail("groups[%d]: orgs must be a non-empty list of org paths such as /gov/finance ([\"/\"]: the "
                 "whole fleet)" % i)
        mapping.append((normalise(g["group"]), g["role"], list(scope.orgs)))
    return mapping


def map_groups(mapping, groups):
    """(role, [org, ...]) of the first entry one of ``groups`` matches (orgs: of every matching entry of that
    role), or (None, [])."""
    role, orgs = None, []
    for group, g_role, g_orgs in mapping:
        if group in groups and role in (None, g_role):
            role = g_role
            orgs.extend(o for o in g_orgs if o not in orgs)
    return role, orgs


def read_secret(path, key, fail):
    """The first line of the secret file named by setting ``key``."""
    try:
        with open(path, encoding="utf-8") as fh:
            secret = fh.readline().rstrip("\r\n")
    except OSError as exc:
        fail("cannot read '%s' %s: %s" % (key, path, exc.strerror))
    if not secret:
        fail("'%s' %s is empty" % (key, path))
    return secret
