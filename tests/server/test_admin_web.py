"""The account and token life cycle from the administration page, against a real server (TLS, SQLite
and PostgreSQL): every button opens a confirmation page that changes nothing, its form needs the
CSRF token, the action takes effect at once (sessions end), is written to the audit log, and a
department's admin cannot reach a user or token outside their subtrees."""
from __future__ import annotations

import re
import uuid

from fleet import Agent
from server_support import ADMIN, OFFICER

STRONG = "Plum-Orchard-Lantern-7"


def web_login(server, who=ADMIN, lang="en"):
    c = server.client(follow_redirects=False)
    form = c.get("/login", params={"lang": lang})
    r = c.post("/login", data={"username": who[0], "password": who[1], "csrf_token": csrf_of(form), "next": "/"})
    assert r.status_code == 303, r.text
    return c


def csrf_of(page):
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


def new_user(server, role="officer", orgs=None, password=STRONG):
    name = "wu%s" % uuid.uuid4().hex[:8]
    with server.login() as c:
        body = {"username": name, "password": password, "role": role}
        if orgs:
            body["orgs"] = orgs
        r = c.post("/api/v1/users", json=body)
        assert r.status_code == 201, r.text
    return name


def session_of(server, name, password=STRONG):
    with server.client() as c:
        r = c.post("/api/v1/session", json={"username": name, "password": password})
        assert r.status_code == 200, r.text
        return r.json()["token"]


def works(server, token):
    with server.client(headers={"Authorization": "Bearer " + token}) as c:
        return c.get("/api/v1/overview").status_code == 200


def audit_of(server, name):
    with server.login() as c:
        return [r for r in c.get("/api/v1/audit", params={"limit": 2000}).json() if r["target"] == name]


def test_each_user_button_confirms_then_acts_at_once_and_is_audited(server):
    name = new_user(server)
    token = session_of(server, name)
    w = web_login(server)
    admin = w.get("/admin")
    row = re.search(r'<tr data-user="%s">.*?</tr>' % name, admin.text, re.S).group(0)
    for action in ("disable", "logout", "password", "delete"):
        assert 'href="/admin/users/%s/%s"' % (name, action) in row, (action, row)
    assert "/enable" not in row and "/unlock" not in row  # neither disabled nor locked

    # the confirmation page says who and what, and opening it changes nothing
    page = w.get("/admin/users/%s/disable" % name)
    assert page.status_code == 200 and 'id="confirm-form"' in page.text
    assert re.search(r'id="confirm-sessions">1<', page.text), page.text
    assert works(server, token)
    csrf = csrf_of(page)
    # without the CSRF token (a forged cross-site form) nothing happens
    assert w.post("/admin/users/%s/disable" % name, data={}).status_code == 403
    assert w.post("/admin/users/%s/disable" % name, data={"csrf_token": "x" * 32}).status_code == 403
    assert works(server, token)

    r = w.post("/admin/users/%s/disable" % name, data={"csrf_token": csrf})
    assert r.status_code == 303 and r.headers["location"].startswith("/admin?")
    assert not works(server, token)
    with server.client() as c:
        assert c.post("/api/v1/session", json={"username": name, "password": STRONG}).status_code == 401
    done = w.get(r.headers["location"])
    assert 'id="admin-done"' in done.text and name in done.text
    row = re.search(r'<tr data-user="%s">.*?</tr>' % name, done.text, re.S).group(0)
    assert "/admin/users/%s/enable" % name in row and "/disable" not in row

    assert w.post("/admin/users/%s/enable" % name, data={"csrf_token": csrf}).status_code == 303
    token = session_of(server, name)
    assert w.post("/admin/users/%s/logout" % name, data={"csrf_token": csrf}).status_code == 303
    assert not works(server, token)

    # password: a mismatch or a weak password is refused on the confirmation page and changes nothing
    token = session_of(server, name)
    r = w.post("/admin/users/%s/password" % name, data={"csrf_token": csrf, "password": "Quiet-River-Stone-3",
                                                         "password2": "Quiet-River-Stone-4"})
    assert r.status_code == 400 and 'id="confirm-error"' in r.text and "differ" in r.text
    r = w.post("/admin/users/%s/password" % name, data={"csrf_token": csrf, "password": "password12",
                                                         "password2": "password12"})
    assert r.status_code == 400 and "password policy" in r.text
    assert works(server, token)
    zh = w.post("/admin/users/%s/password" % name, params={"lang": "zh"},
                data={"csrf_token": csrf, "password": "password12", "password2": "password12"})
    assert zh.status_code == 400 and "口令不符合口令策略" in zh.text
    r = w.post("/admin/users/%s/password" % name, data={"csrf_token": csrf, "password": "Quiet-River-Stone-3",
                                                         "password2": "Quiet-River-Stone-3"})
    assert r.status_code == 303
    assert not works(server, token)
    token = session_of(server, name, "Quiet-River-Stone-3")

    # locked by failed logins: an unlock button appears; unlocking lets the right password in again
    with server.client() as c:
        for _ in range(5):
            c.post("/api/v1/session", json={"username": name, "password": "Wrong-Guess-1-x"})
        assert c.post("/api/v1/session", json={"username": name, "password": "Quiet-River-Stone-3"}).status_code == 429
    row = re.search(r'<tr data-user="%s">.*?</tr>' % name, w.get("/admin").text, re.S).group(0)
    assert "/admin/users/%s/unlock" % name in row
    assert 'id="confirm-form"' in w.get("/admin/users/%s/unlock" % name).text
    assert w.post("/admin/users/%s/unlock" % name, data={"csrf_token": csrf}).status_code == 303
    token = session_of(server, name, "Quiet-River-Stone-3")

    assert w.post("/admin/users/%s/delete" % name, data={"csrf_token": csrf}).status_code == 303
    assert not works(server, token)
    assert w.get("/admin/users/%s/disable" % name).status_code == 404
    assert 'data-user="%s"' % name not in w.get("/admin").text

    rows = audit_of(server, name)
    assert {r["action"] for r in rows} >= {"user.disable", "user.enable", "user.sessions_ended", "user.password_reset",
                                          "login.unlock", "user.delete"}
    assert all(r["actor"] == ADMIN[0] for r in rows if r["action"].startswith("user."))
    # an unknown action is not a page
    assert w.get("/admin/users/%s/promote" % ADMIN[0]).status_code == 404
    w.close()


def test_the_last_fleet_admin_is_kept_with_a_clear_message(server):
    with server.login() as c:
        admins = [u for u in c.get("/api/v1/users").json() if u["role"] == "admin" and not u["disabled"]
                  and "/" in u["orgs"]]
    w = web_login(server)
    page = w.get("/admin/users/%s/disable" % ADMIN[0])
    assert 'id="confirm-self"' in page.text  # acting on one's own account is said so
    if [u["username"] for u in admins] == [ADMIN[0]]:
        r = w.post("/admin/users/%s/disable" % ADMIN[0], data={"csrf_token": csrf_of(page)})
        assert r.status_code == 409 and 'id="confirm-error"' in r.text and "last enabled" in r.text
        assert w.get("/admin").status_code == 200  # still logged in, still an admin
    w.close()


def test_token_revoke_button(server):
    org = "/webrevoke-%s" % uuid.uuid4().hex[:6]
    token = server.token(org=org, uses=5)
    w = web_login(server)
    admin = w.get("/admin").text
    tid = int(re.search(r"<tr data-state=\"active\"><td>(\d+)</td><td>%s</td>" % re.escape(org), admin).group(1))
    assert 'href="/admin/tokens/%d/revoke"' % tid in admin
    page = w.get("/admin/tokens/%d/revoke" % tid)
    assert page.status_code == 200 and org in page.text
    first = Agent("wrev-%s" % uuid.uuid4().hex[:6])
    with server.client() as c:
        assert first.enroll(c, token).status_code == 201  # the confirmation page revoked nothing
    assert w.post("/admin/tokens/%d/revoke" % tid, data={}).status_code == 403
    assert w.post("/admin/tokens/%d/revoke" % tid, data={"csrf_token": csrf_of(page)}).status_code == 303
    with server.client() as c:
        r = Agent("wrev2").enroll(c, token)
        assert r.status_code == 403 and r.json()["error"] == "token_revoked"
        assert first.submit(c, first.report()).status_code == 200  # hosts it enrolled stay
    after = w.get("/admin").text
    assert re.search(r'<tr data-state="revoked"><td>%d</td>' % tid, after)
    assert 'href="/admin/tokens/%d/revoke"' % tid not in after
    with server.login() as c:
        rows = [r for r in c.get("/api/v1/audit", params={"limit": 2000}).json() if r["action"] == "token.revoke"
                and r["target"] == org]
    assert len(rows) == 1 and rows[0]["actor"] == ADMIN[0] and rows[0]["detail"]["id"] == tid
    w.close()


def test_a_department_admin_reaches_only_their_department(server):
    dept = "/dept-%s" % uuid.uuid4().hex[:6]
    boss_pw = "Copper-Kettle-Meadow-5"
    boss = new_user(server, role="admin", orgs=[dept], password=boss_pw)
    inside = new_user(server, orgs=[dept + "/a"])
    outside = new_user(server, orgs=["/elsewhere-%s" % uuid.uuid4().hex[:4]])
    inside_token, outside_token = session_of(server, inside), session_of(server, outside)
    other_token = server.token(org="/elsewhere-tokens")
    w = web_login(server, (boss, boss_pw))
    admin = w.get("/admin")
    csrf = csrf_of(admin)
    assert 'data-user="%s"' % inside in admin.text and 'data-user="%s"' % outside not in admin.text
    for action in ("disable", "logout", "password", "delete", "unlock"):
        assert w.get("/admin/users/%s/%s" % (outside, action)).status_code == 404
        assert w.post("/admin/users/%s/%s" % (outside, action),
                      data={"csrf_token": csrf, "password": STRONG + "x", "password2": STRONG + "x"}).status_code == 404
    assert works(server, outside_token)
    session_of(server, outside)  # same password, still enabled, still there
    with server.login() as c:
        tid = [t for t in c.get("/api/v1/tokens").json() if t["org_path"] == "/elsewhere-tokens"][0]["id"]
    assert w.get("/admin/tokens/%d/revoke" % tid).status_code == 404
    assert w.post("/admin/tokens/%d/revoke" % tid, data={"csrf_token": csrf}).status_code == 404
    with server.client() as c:
        assert Agent("wdept-%s" % uuid.uuid4().hex[:6]).enroll(c, other_token).status_code == 201
    assert w.post("/admin/users/%s/disable" % inside, data={"csrf_token": csrf}).status_code == 303
    assert not works(server, inside_token)
    w.close()
    # an officer has neither the pages nor the actions
    off = web_login(server, OFFICER)
    assert off.get("/admin/users/%s/disable" % outside).status_code == 403
    assert off.post("/admin/users/%s/disable" % outside, data={"csrf_token": csrf_of(off.get("/"))}).status_code == 403
    assert works(server, outside_token)
    off.close()
