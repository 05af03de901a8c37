"""Departments are kept apart (store/scope.py): two departments on one real server over TLS, users
of every role scoped to one of them, and a sweep over the application's whole route table asking
for the other department's hosts, reports, waivers, rules, users and org paths. A new route that
does not go through the scope fails here; so does a route the sweep does not know how to call."""
from __future__ import annotations

import time
import uuid

import pytest
from sqlalchemy import select

from browser_support import browser_page  # noqa: F401
from fleet import Agent
from server_support import ADMIN

PREFIX = "/scope-%s" % uuid.uuid4().hex[:6]
MINE, THEIRS = PREFIX + "/finance", PREFIX + "/health"
PASSWORD = "Scoped-user-pw-42"
SECRET_NOTE = "health-secret-%s" % uuid.uuid4().hex[:6]

# Routes that are not about fleet data: agents authenticate by host key, sessions by password.
NOT_SCOPED = {("POST", "/api/v1/enroll"), ("POST", "/api/v1/enroll/agentless"), ("POST", "/api/v1/reports"), ("POST", "/api/v1/session"),
              ("DELETE", "/api/v1/session"), ("GET", "/api/v1/openapi.json"), ("GET", "/static/app.css"),
              ("GET", "/login"), ("POST", "/login"), ("POST", "/logout"),
              ("GET", "/login/oidc"), ("GET", "/login/oidc/callback")}


def _make_user(admin, name, role, orgs):
    resp = admin.post("/api/v1/users", json={"username": name, "password": PASSWORD, "role": role, "orgs": orgs})
    assert resp.status_code == 201, resp.text
    assert resp.json()["orgs"] == orgs
    return name


@pytest.fixture(scope="module")
def depts(server):
    """Two hosts in MINE (one a level down), one in THEIRS, two scans each; a waiver, a token and a
    user in THEIRS; users of every role scoped to MINE."""
    tag = uuid.uuid4().hex[:6]
    hosts = {}
    with server.client() as c:
        for name, org in (("fin-a", MINE), ("fin-b", MINE + "/tax"), ("hea-a", THEIRS)):
            a = Agent("%s-%s" % (name, tag), machine_id=uuid.uuid4().hex)
            assert a.enroll(c, server.token(org=org)).status_code == 201
            a.reports = []
            for age in (86400, 0):
                doc = a.report(fail_rules=["mlps.ia.ssh-root-login"])
                assert a.submit(c, doc, timestamp=time.time() - age).status_code == 200
                a.reports.append(doc["report_id"])
            hosts[name] = a
    admin = server.login()
    theirs = hosts["hea-a"]
    resp = admin.post("/api/v1/waivers", json={
        "rule_id": "mlps.ia.ssh-root-login", "scope": "host", "scope_value": theirs.host_id,
        "justification": SECRET_NOTE, "approver": "CISO", "expires_at": int(time.time()) + 86400})
    assert resp.status_code == 201, resp.text
    waiver_id = resp.json()["id"]
    import base64
    resp = admin.post("/api/v1/assessments", json={
        "item_id": "L3-CES1-35", "target_kind": "org", "target": THEIRS, "verdict": "conform", "record": SECRET_NOTE,
        "valid_until": int(time.time()) + 86400, "files": [{"name": "policy.txt", "data": base64.b64encode(
            SECRET_NOTE.encode()).decode()}]})
    assert resp.status_code == 201, resp.text
    assessment = resp.json()
    resp = admin.put("/api/v1/frames", json={"org": THEIRS, "organization": SECRET_NOTE, "level": 3})
    assert resp.status_code == 200, resp.text
    resp = admin.post("/api/v1/tokens", json={"org": THEIRS + "/new", "uses": 1, "note": SECRET_NOTE})
    assert resp.status_code == 201, resp.text
    token_id = resp.json()["id"]
    resp = admin.post("/api/v1/localization/targets", json={"org": THEIRS, "category": "os", "target": 1.0,
                                                           "deadline": "2030-06-30", "note": SECRET_NOTE})
    assert resp.status_code == 201, resp.text
    target_id = resp.json()["id"]
    # an alert rule watching THEIRS (through a fleet-wide channel) and an API key confined to THEIRS
    channel = "scope-ch-" + tag
    resp = admin.post("/api/v1/alerts/channels", json={"name": channel, "kind": "syslog",
                                                       "config": {"address": "udp://127.0.0.1:9"}})
    assert resp.status_code == 201, resp.text
    rule_name = "hea-rule-" + tag
    resp = admin.post("/api/v1/alerts/rules", json={"name": rule_name, "kind": "host_silent", "channel": channel,
                                                    "org": THEIRS, "params": {"days": 3}})
    assert resp.status_code == 201, resp.text
    key_name = "hea-key-" + tag
    resp = admin.post("/api/v1/apikeys", json={"name": key_name, "role": "auditor", "orgs": [THEIRS]})
    assert resp.status_code == 201, resp.text
    users = {"their_officer": _make_user(admin, "hea-off-" + tag, "officer", [THEIRS])}
    for role in ("admin", "officer", "auditor", "assessor"):
        users[role] = _make_user(admin, "fin-%s-%s" % (role[:3], tag), role, [MINE])
    # something of theirs in the audit log besides the token and the waiver
    resp = admin.post("/api/v1/hosts/%s/retire" % hosts["fin-b"].host_id, json={"reason": "control: mine"})
    assert resp.status_code == 200
    admin.close()
    markers = [THEIRS, theirs.host_id, theirs.hostname, SECRET_NOTE, users["their_officer"], rule_name,
               key_name] + theirs.reports
    return {"hosts": hosts, "users": users, "waiver_id": waiver_id, "markers": markers, "theirs": theirs,
            "token_id": token_id, "assessment": assessment, "target_id": target_id, "channel": channel,
            "rule_name": rule_name, "key_name": key_name}


def _session(server, name):
    with server.client() as c:
        resp = c.post("/api/v1/session", json={"username": name, "password": PASSWORD})
    assert resp.status_code == 200, resp.text
    return resp.json()


def _routes(server):
    """(method, path template) of every route of the application the server runs."""
    from fastapi.routing import APIRoute
    from starlette.routing import Route
    from scanner.server.app import create_app
    from scanner.server.settings import load_settings
    app = create_app(load_settings(server.data_dir, db_url=server.db_url), engine=server.engine)
    out = []

    def walk(routes):
        for route in routes:
            if hasattr(route, "effective_route_contexts"):  # FastAPI >= 0.16x: routers stay nested
                walk(route.effective_route_contexts())
            elif isinstance(route, (APIRoute, Route)) or hasattr(route, "methods"):
                for method in sorted(set(route.methods or ()) - {"HEAD"}):
                    out.append((method, route.path))
            else:
                raise AssertionError("a route the scope sweep cannot read: %r" % (route,))
    walk(app.routes)
    return out


def _fill(path, d):
    theirs = d["theirs"]
    values = {"host_id": theirs.host_id, "report_id": theirs.reports[-1], "waiver_id": str(d["waiver_id"]),
              "rule_id": "mlps.ia.ssh-root-login", "username": d["users"]["their_officer"],
              "token_id": str(d["token_id"]), "target_id": str(d["target_id"]),
              "assessment_id": str(d["assessment"]["id"]), "file_id": str(d["assessment"]["files"][0]["id"]),
              "rule_name": d["rule_name"], "key_name": d["key_name"], "channel_name": d["channel"],
              "name": "0" * 32 + ".json"}
    out = path
    for name, value in values.items():
        out = out.replace("{%s}" % name, value)
    assert "{" not in out, "the scope sweep does not know the path parameter of %s: teach it (tests/server/test_scope.py)" % path
    return out


def _payload(method, path, d, csrf):
    """JSON body (API) or form (pages) aiming at the other department."""
    theirs = d["theirs"]
    expires = int(time.time()) + 86400
    api = {
        "/api/v1/hosts/{host_id}/retire": {"reason": "not yours"},
        "/api/v1/waivers": {"rule_id": "mlps.ia.ssh-root-login", "scope": "host", "scope_value": theirs.host_id,
                            "justification": "x", "approver": "y", "expires_at": expires},
        "/api/v1/waivers/{waiver_id}/revoke": {},
        "/api/v1/waivers/{waiver_id}/approve": {"note": "not yours"},
        "/api/v1/waivers/{waiver_id}/reject": {"note": "not yours"},
        "/api/v1/tokens": {"org": THEIRS, "uses": 1},
        "/api/v1/assessments": {"item_id": "L3-CES1-35", "target_kind": "host", "target": theirs.host_id,
                                "verdict": "conform", "record": "x", "valid_until": expires},
        "/api/v1/assessments/{assessment_id}/revoke": {},
        "/api/v1/users": {"username": "intruder-" + uuid.uuid4().hex[:6], "password": PASSWORD, "role": "officer",
                          "orgs": [THEIRS]},
        # account and token life cycle: another department's user and token
        "/api/v1/users/{username}": None,
        "/api/v1/users/{username}/disable": {},
        "/api/v1/users/{username}/enable": {},
        "/api/v1/users/{username}/password": {"password": "Quiet-River-Stone-3"},
        "/api/v1/users/{username}/logout": {},
        "/api/v1/tokens/{token_id}/revoke": {},
        # 信创 targets: set one in another department, remove theirs
        "/api/v1/localization/targets": {"org": THEIRS, "category": "os", "target": 1.0, "deadline": "2030-06-30"},
        "/api/v1/localization/targets/{target_id}": None,
        # alert rules, channels (fleet-wide: fleet admins only) and API keys
        "/api/v1/alerts/channels": {"name": "intruder-" + uuid.uuid4().hex[:6], "kind": "syslog",
                                    "config": {"address": "udp://127.0.0.1:9"}},
        "/api/v1/alerts/channels/{channel_name}/test": {},
        "/api/v1/alerts/rules": {"name": "intruder-" + uuid.uuid4().hex[:6], "kind": "host_silent",
                                 "channel": d["channel"], "org": THEIRS},
        "/api/v1/alerts/rules/{rule_name}": None,
        "/api/v1/alerts/rules/{rule_name}/enable": {},
        "/api/v1/alerts/rules/{rule_name}/disable": {},
        "/api/v1/apikeys": {"name": "intruder-" + uuid.uuid4().hex[:6], "role": "auditor", "orgs": [THEIRS]},
        "/api/v1/apikeys/{key_name}/revoke": {},
        # the working paper's frame of their org unit
        "/api/v1/frames": {"org": THEIRS, "organization": "not yours", "level": 2},
    }
    pages = {
        "/hosts/{host_id}/retire": {"reason": "not yours"},
        "/waivers": {"rule_id": "mlps.ia.ssh-root-login", "scope": "org", "scope_value": THEIRS,
                     "justification": "x", "approver": "y", "expires": time.strftime("%Y-%m-%d", time.gmtime(expires))},
        "/waivers/{waiver_id}/revoke": {},
        "/waivers/{waiver_id}/approve": {"note": "not yours"},
        "/waivers/{waiver_id}/reject": {"note": "not yours"},
        "/admin/tokens": {"org": THEIRS, "uses": "1", "expires": "7d"},
        "/admin/users": {"username": "intruder-" + uuid.uuid4().hex[:6], "password": PASSWORD, "role": "officer",
                         "orgs": THEIRS},
        "/admin/users/{username}/unlock": {},
        "/admin/users/{username}/disable": {},
        "/admin/users/{username}/enable": {},
        "/admin/users/{username}/logout": {},
        "/admin/users/{username}/delete": {},
        "/admin/users/{username}/password": {"password": "Another-" + PASSWORD, "password2": "Another-" + PASSWORD},
        "/admin/tokens/{token_id}/revoke": {},
        "/admin/transfer": {},
        "/admin/alerts/rules": {"name": "intruder-" + uuid.uuid4().hex[:6], "kind": "host_silent", "org": THEIRS,
                                "channel": d["channel"], "days": "3"},
        "/admin/alerts/rules/{rule_name}/enable": {},
        "/admin/alerts/rules/{rule_name}/disable": {},
        "/admin/alerts/rules/{rule_name}/delete": {},
        "/admin/alerts/channels": {"name": "intruder-" + uuid.uuid4().hex[:6], "kind": "syslog",
                                   "target": "udp://127.0.0.1:9"},
        "/admin/alerts/channels/{channel_name}/test": {},
        "/admin/apikeys": {"name": "intruder-" + uuid.uuid4().hex[:6], "role": "auditor", "orgs": THEIRS},
        "/admin/apikeys/{key_name}/revoke": {},
        "/coverage/assessments": {"item_id": "L3-CES1-35", "target_kind": "org", "target": THEIRS, "verdict": "conform",
                                  "record": "x", "valid": "1d", "level": "mlps-l3"},
        "/localization/targets": {"org": THEIRS, "category": "os", "target": "100", "deadline": "2030-06-30"},
        "/localization/targets/{target_id}/delete": {},
        "/orgs/frame": {"org": THEIRS, "organization": "not yours", "level": "2"},
    }
    if method == "GET":
        return None, None
    if path.startswith("/api/"):
        assert path in api, "the scope sweep does not know how to call %s %s: teach it" % (method, path)
        return api[path], None
    assert path in pages, "the scope sweep does not know how to call %s %s: teach it" % (method, path)
    return None, dict(pages[path], csrf_token=csrf)


def _state(server, d):
    from scanner.server.store import db
    theirs = d["theirs"]
    with server.engine.connect() as conn:
        return {
            "counts": server.counts(),
            "retired": conn.execute(select(db.hosts.c.retired_at).where(db.hosts.c.id == theirs.host_id)).scalar(),
            "waiver": conn.execute(select(db.waivers.c.revoked_at, db.waivers.c.state, db.waivers.c.decided_by)
                                   .where(db.waivers.c.id == d["waiver_id"])).first(),
            "token_expires": conn.execute(select(db.enroll_tokens.c.expires_at, db.enroll_tokens.c.revoked_at)
                                          .where(db.enroll_tokens.c.id == d["token_id"])).first(),
            "their_user": conn.execute(select(db.users.c.disabled, db.users.c.password_hash)
                                       .where(db.users.c.username == d["users"]["their_officer"])).all(),
            "assessment": conn.execute(select(db.assessments.c.revoked_at).where(
                db.assessments.c.id == d["assessment"]["id"])).first(),
            "targets": conn.execute(select(db.loc_targets.c.org_path, db.loc_targets.c.category,
                                           db.loc_targets.c.target_rate, db.loc_targets.c.deadline)
                                    .order_by(db.loc_targets.c.id)).all(),
            "their_rule": conn.execute(select(db.alert_rules.c.enabled, db.alert_rules.c.org_path)
                                       .where(db.alert_rules.c.name == d["rule_name"])).all(),
            "frames": conn.execute(select(db.assessment_frames.c.org_path, db.assessment_frames.c.frame,
                                          db.assessment_frames.c.updated_at).where(
                db.assessment_frames.c.org_path.like(PREFIX + "%")).order_by(db.assessment_frames.c.org_path)).all(),
            "their_key": conn.execute(select(db.api_keys.c.revoked_at).where(db.api_keys.c.name == d["key_name"])).all(),
            "theirs_results": conn.execute(select(db.results.c.rule_id, db.results.c.waiver_id)
                                           .where(db.results.c.host_id == theirs.host_id)
                                           .order_by(db.results.c.rule_id)).all(),
        }


@pytest.mark.parametrize("role", ["admin", "officer", "auditor", "assessor"])
def test_route_sweep_shows_nothing_of_another_department(server, depts, role):
    session = _session(server, depts["users"][role])
    routes = _routes(server)
    assert len(routes) > 30
    before = _state(server, depts)
    checked = 0
    params_variants = [{}, {"org": THEIRS, "host": depts["theirs"].host_id, "a": depts["theirs"].reports[0],
                            "b": depts["theirs"].reports[1], "q": depts["theirs"].hostname,
                            "rule": "mlps.ia.ssh-root-login"}]
    with server.client(follow_redirects=False) as c:
        for method, template in routes:
            if (method, template) in NOT_SCOPED:
                continue
            path = _fill(template, depts)
            body, form = _payload(method, template, depts, session["csrf"])
            for params in params_variants:
                if template.startswith("/api/"):
                    resp = c.request(method, path, params=params, json=body,
                                     headers={"Authorization": "Bearer " + session["token"]})
                else:
                    c.cookies.set("xcscan_session", session["token"])
                    resp = c.request(method, path, params=params, data=form)
                where = "%s %s %s as %s" % (method, path, params, role)
                assert resp.status_code in (200, 201, 303, 400, 403, 404, 422), (where, resp.status_code, resp.text[:300])
                if method != "GET":
                    assert resp.status_code in (303, 400, 403, 404), (where, resp.status_code, resp.text[:300])
                    if resp.status_code == 303:  # a page redirect after a refused action is not allowed either
                        raise AssertionError((where, "acted on another department's object"))
                asked = "%s %r %r %r" % (path, params, body, form)
                for marker in depts["markers"]:
                    if marker not in asked:  # echoing what was asked reveals nothing
                        assert marker not in resp.text, (where, marker, resp.text[:500])
                checked += 1
    assert checked > 60
    assert _state(server, depts) == before


def test_scoped_users_see_their_own_department(server, depts):
    """The positive control: the same users see their hosts; a global admin sees the other
    department (so the sweep's markers would have caught a leak)."""
    mine, theirs = depts["hosts"]["fin-a"], depts["theirs"]
    session = _session(server, depts["users"]["officer"])
    with server.client(headers={"Authorization": "Bearer " + session["token"]}) as c:
        assert session["orgs"] == [MINE]
        names = [h["hostname"] for h in c.get("/api/v1/hosts").json()]
        assert mine.hostname in names and theirs.hostname not in names
        assert c.get("/api/v1/hosts/%s" % mine.host_id).status_code == 200
        assert c.get("/api/v1/hosts/%s" % theirs.host_id).status_code == 404
        assert c.get("/api/v1/reports/%s" % mine.reports[0]).status_code == 200
        drift = c.get("/api/v1/hosts/%s/drift" % mine.host_id, params={"a": mine.reports[0], "b": mine.reports[1]})
        assert drift.status_code == 200
        orgs = [n["path"] for n in c.get("/api/v1/orgs").json()]
        assert orgs and all(p == MINE or p.startswith(MINE + "/") for p in orgs), orgs
        # ?org= narrows inside the scope and never widens it
        assert c.get("/api/v1/hosts", params={"org": PREFIX}).json() and \
            theirs.hostname not in c.get("/api/v1/hosts", params={"org": PREFIX}).text
        assert c.get("/api/v1/hosts", params={"org": THEIRS}).status_code == 404
        # a waiver in their own department is theirs to grant
        resp = c.post("/api/v1/waivers", json={"rule_id": "mlps.ia.ssh-root-login", "scope": "all",
                                               "justification": "finance legacy", "approver": "CISO",
                                               "expires_at": int(time.time()) + 3600})
        assert resp.status_code == 201, resp.text
        assert resp.json()["scope"] == "org" and resp.json()["scope_value"] == MINE  # "all" = all of my scope
        assert resp.json()["state"] == "requested"
        assert c.post("/api/v1/waivers/%d/revoke" % resp.json()["id"]).status_code == 200
    admin = server.login()
    assert theirs.hostname in admin.get("/api/v1/hosts").text
    assert SECRET_NOTE in admin.get("/api/v1/waivers").text
    admin.close()


def test_scoped_admin_manages_only_their_department(server, depts):
    session = _session(server, depts["users"]["admin"])
    with server.client(headers={"Authorization": "Bearer " + session["token"]}) as c:
        resp = c.post("/api/v1/users", json={"username": "fin-new-" + uuid.uuid4().hex[:6], "password": PASSWORD,
                                             "role": "officer"})
        assert resp.status_code == 201 and resp.json()["orgs"] == [MINE]  # default: the creator's scope
        resp = c.post("/api/v1/users", json={"username": "fin-tax-" + uuid.uuid4().hex[:6], "password": PASSWORD,
                                             "role": "auditor", "orgs": [MINE + "/tax"]})
        assert resp.status_code == 201
        refused = c.post("/api/v1/users", json={"username": "wider-" + uuid.uuid4().hex[:6], "password": PASSWORD,
                                                "role": "admin", "orgs": ["/"]})
        assert refused.status_code == 403 and refused.json()["error"] == "org_outside_scope"
        users = c.get("/api/v1/users").json()
        assert users and all(all(o == MINE or o.startswith(MINE + "/") for o in u["orgs"]) for u in users)
        assert ADMIN[0] not in [u["username"] for u in users]
        assert c.post("/api/v1/tokens", json={"org": MINE + "/tax", "uses": 1}).status_code == 201
        tokens = c.get("/api/v1/tokens").json()
        assert tokens and all(t["org_path"].startswith(MINE) for t in tokens)
        entries = c.get("/api/v1/audit").json()
        assert any(e["action"] == "token.create" and e["target"] == MINE + "/tax" for e in entries)
        assert any(e["action"] == "host.retire" for e in entries)  # done by the global admin, in MINE
        assert not any(e["action"] == "login" and e["actor"] == ADMIN[0] for e in entries)


def test_cli_user_add_with_orgs(server):
    name = "cli-scoped-" + uuid.uuid4().hex[:6]
    proc = server.cli("server", "user", "add", name, "--role", "officer", "--org", MINE, "--org", THEIRS + "/",
                      env={"XCSCAN_USER_PASSWORD": PASSWORD})
    assert "for %s, %s" % (MINE, THEIRS) in proc.stdout
    assert _session(server, name)["orgs"] == [MINE, THEIRS]
    bad = server.cli("server", "user", "add", name + "x", "--role", "officer", "--org", "/a/../b",
                     env={"XCSCAN_USER_PASSWORD": PASSWORD}, check=False)
    assert bad.returncode != 0 and "org" in bad.stderr


def test_scope_object():
    from sqlalchemy import column
    from scanner.server.store.scope import Scope, check
    s = Scope(["/gov/finance/", "/gov/finance/tax", "/gov/health"])
    assert s.orgs == ("/gov/finance", "/gov/health")  # a subtree inside another is dropped
    assert s.covers("/gov/finance/tax/x") and not s.covers("/gov/financexyz") and not s.covers("/gov")
    assert s.touches("/gov") and not s.touches("/edu")
    assert s.root() == "/gov" and Scope(["/gov/finance"]).root() == "/gov/finance"
    assert Scope(["/", "/gov"]).is_global and Scope.everything().where(column("org_path")) is None
    assert Scope([]).covers("/") is False
    assert Scope(["/a_b"]).where(column("org_path")) is not None
    with pytest.raises(TypeError):
        check("/gov")
    with pytest.raises(ValueError):
        Scope(["/gov/../x"])


@pytest.mark.browser
def test_scoped_officer_in_chromium(server, depts, browser_page):
    """In Chromium: the finance officer's hosts page, overview and org tree hold finance only; the
    health host's page, typed in by hand, is a 404 that does not name it."""
    mine, theirs = depts["hosts"]["fin-a"], depts["theirs"]
    page = browser_page
    page.goto(server.base_url + "/login?lang=en")
    page.fill("input[name=username]", depts["users"]["officer"])
    page.fill("input[name=password]", PASSWORD)
    page.click("#login-submit")
    page.wait_for_selector("#host-count")
    assert MINE in page.inner_text("#whoami")
    assert int(page.inner_text("#host-count")) == 1  # fin-b was retired; fin-a is the only one left
    page.goto(server.base_url + "/hosts")
    hosts = page.inner_text("#hosts")
    assert mine.hostname in hosts and theirs.hostname not in hosts
    page.goto(server.base_url + "/orgs")
    assert THEIRS not in page.content()
    resp = page.goto(server.base_url + "/hosts/" + theirs.host_id)
    assert resp.status == 404 and theirs.hostname not in page.content()
    resp = page.goto(server.base_url + "/hosts?org=" + THEIRS)
    assert resp.status == 404


def test_reevaluate_one_department(server, depts):
    """`xcscan server reevaluate --org` re-evaluates the reports of that subtree's hosts only."""
    from scanner.server.store import db
    mine, theirs = depts["hosts"]["fin-a"], depts["theirs"]
    out = server.cli("server", "reevaluate", "--latest-only", "--org", MINE).stdout
    assert "re-evaluated" in out
    with server.engine.connect() as conn:
        done = dict(conn.execute(select(db.reports.c.id, db.reports.c.evaluated_at)
                                 .where(db.reports.c.id.in_(mine.reports + theirs.reports))).all())
    assert done[mine.reports[-1]] is not None and done[mine.reports[0]] is None  # latest only
    assert done[theirs.reports[-1]] is None and done[theirs.reports[0]] is None
    bad = server.cli("server", "reevaluate", "--org", "/a/../b", check=False)
    assert bad.returncode == 1 and "--org" in bad.stderr and "Traceback" not in bad.stderr
