"""The working paper's frame set on the aggregator (workflow/frames.py) on a real server over TLS,
SQLite and PostgreSQL: an assessor sets 被测单位 / 系统名称 / 等级 / 测评人员 / 测评时间 for an org unit
inside their scope (API and CSRF-protected page), checked by the agent's --assessment rules,
audited; the host paper and the org roll-up show the nearest frame up the tree, and it wins over
the agent's own frame field by field; another department neither reads nor sets it."""
from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from fleet import Agent

PREFIX = "/frame-%s" % uuid.uuid4().hex[:6]
DEPT = PREFIX + "/health"
OTHER = PREFIX + "/finance"
PASSWORD = "Frame-user-pw-42"
AGENT_FRAME = {"organization": "代理填写的单位", "system": "代理填写的系统", "level": 2, "assessors": ["王五"]}


def _login(server, name):
    with server.client() as c:
        resp = c.post("/api/v1/session", json={"username": name, "password": PASSWORD})
    assert resp.status_code == 200, resp.text
    return resp.json()


def _api(server, name):
    return server.client(headers={"Authorization": "Bearer " + _login(server, name)["token"]})


def _web(server, name):
    session = _login(server, name)
    c = server.client(follow_redirects=False)
    c.cookies.set("xcscan_session", session["token"])
    return c, session["csrf"]


def _frames(server):
    from scanner.server.store import db
    with server.engine.connect() as conn:
        return conn.execute(select(db.assessment_frames.c.org_path, db.assessment_frames.c.frame)
                            .where(db.assessment_frames.c.org_path.like(PREFIX + "%"))
                            .order_by(db.assessment_frames.c.org_path)).all()


def _audits(server, action):
    from scanner.server.store import db
    a = db.audit_log
    with server.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(a).where(
            a.c.action == action, a.c.org_path.like(PREFIX + "%"))).scalar()


@pytest.fixture(scope="module")
def site(server):
    tag = uuid.uuid4().hex[:6]
    hosts = {}
    with server.client() as c:
        for name, org, frame in (("ward", DEPT + "/ward", AGENT_FRAME), ("fin", OTHER, None)):
            a = Agent("fr-%s-%s" % (name, tag), machine_id=uuid.uuid4().hex)
            assert a.enroll(c, server.token(org=org)).status_code == 201
            doc = a.report()
            if frame:
                doc["assessment"] = dict(frame)
            assert a.submit(c, doc).status_code == 200
            a.report_id = doc["report_id"]
            hosts[name] = a
    admin = server.login()
    users = {}
    for key, role, org in (("assessor", "assessor", DEPT), ("officer", "officer", DEPT),
                           ("other_officer", "officer", OTHER), ("other_assessor", "assessor", OTHER)):
        users[key] = "fr-%s-%s" % (key.replace("_", ""), tag)
        resp = admin.post("/api/v1/users", json={"username": users[key], "password": PASSWORD, "role": role,
                                                 "orgs": [org]})
        assert resp.status_code == 201, resp.text
    admin.close()
    return hosts, users


def test_frame_set_inherited_and_shown_on_the_paper(server, site):
    hosts, users = site
    ward = hosts["ward"]
    c = _api(server, users["assessor"])
    before = c.get("/reports/%s/paper" % ward.report_id, params={"lang": "zh"})
    assert before.status_code == 200 and "代理填写的单位" in before.text  # the agent's frame, none on the server
    r = c.put("/api/v1/frames", json={"org": DEPT, "organization": "某市卫生健康委员会", "record_number": "11010013001-20001",
                                      "level": 3, "assessors": ["张伟", "李娜"], "assessed_on": "2026-12-01 至 2026-12-05",
                                      "timezone": "Asia/Shanghai"})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["org"] == DEPT and got["own"]["frame"]["level"] == 3 and got["own"]["updated_by"] == users["assessor"]
    # the ward inherits its parent's frame
    sub = c.get("/api/v1/frames", params={"org": DEPT + "/ward"}).json()
    assert sub["own"] is None and sub["effective"]["org"] == DEPT
    assert sub["effective"]["frame"]["assessors"] == ["张伟", "李娜"]
    # the paper: the server's fields win, the agent's system name (not set on the server) stays
    paper = c.get("/reports/%s/paper" % ward.report_id, params={"lang": "zh"}).text
    basic = paper[paper.index('id="basic"'):paper.index("</section>", paper.index('id="basic"'))]
    assert "某市卫生健康委员会" in basic and "代理填写的单位" not in basic
    assert "代理填写的系统" in basic and "11010013001-20001" in basic and "张伟、李娜" in basic
    assert "第三级" in basic and "王五" not in basic and "2026-12-01 至 2026-12-05" in basic
    assert "未提供：被测单位" not in paper
    assert "(UTC+08:00)" in basic  # the scan time in the frame's time zone
    # the org roll-up shows the nearest frame too
    page = c.get("/orgs/controls", params={"org": DEPT + "/ward", "lang": "zh"}).text
    frame = page[page.index('id="controls-frame"'):page.index("</section>", page.index('id="controls-frame"'))]
    assert "某市卫生健康委员会" in frame and DEPT in frame
    assert _audits(server, "frame.set") >= 1
    c.close()


def test_bad_values_are_refused_and_nothing_is_written(server, site):
    _hosts, users = site
    c = _api(server, users["assessor"])
    org = DEPT + "/bad"
    audits = _audits(server, "frame.set")
    for body, words in (({"level": 5}, "level must be 1, 2, 3 or 4"),
                        ({"level": "three"}, "level must be 1, 2, 3 or 4"),
                        ({"assessed_on": "last week"}, "assessed_on must be a date"),
                        ({"timezone": "Mars/Olympus"}, "timezone must be a UTC offset"),
                        ({"organization": "x" * 201}, "organization is longer than 200"),
                        ({"assessors": ["a"] * 21}, "assessors must be a name or a list of 1 to 20 names")):
        r = c.put("/api/v1/frames", json=dict(body, org=org, system="s"))
        assert r.status_code == 400, (body, r.text)
        assert r.json()["error"] == "bad_frame" and words in r.json()["message"], r.text
    assert [p for p, _f in _frames(server) if p == org] == []
    assert _audits(server, "frame.set") == audits
    # the page form: the message shown, the values kept, nothing written
    w, csrf = _web(server, users["assessor"])
    r = w.post("/orgs/frame", data={"csrf_token": csrf, "org": org, "system": "坏系统", "level": "3",
                                    "assessed_on": "2026-13"})
    assert r.status_code == 400 and 'id="frame-error"' in r.text and "assessed_on must be a date" in r.text
    assert 'value="坏系统"' in r.text
    assert [p for p, _f in _frames(server) if p == org] == [] and _audits(server, "frame.set") == audits
    w.close()
    c.close()


def test_page_form_needs_csrf_and_sets_and_clears(server, site):
    _hosts, users = site
    org = DEPT + "/form"
    w, csrf = _web(server, users["assessor"])
    form = {"org": org, "organization": "某区卫生健康局", "system": "医疗信息平台", "level": "2",
            "assessors": "张伟、李娜", "assessed_on": "2026-12-05", "timezone": "+08:00"}
    r = w.post("/orgs/frame", data=dict(form, csrf_token="forged"))
    assert r.status_code == 403 and [p for p, _f in _frames(server) if p == org] == []
    r = w.post("/orgs/frame", data=dict(form, csrf_token=csrf))
    assert r.status_code == 303 and r.headers["location"].startswith("/orgs/frame?")
    page = w.get("/orgs/frame", params={"org": org, "lang": "zh"})
    assert page.status_code == 200 and "医疗信息平台" in page.text and "张伟、李娜" in page.text
    assert "优先于代理报告中的 --assessment 文件" in page.text  # the rule is stated on the page
    stored = dict(_frames(server))[org]
    assert '"assessors":["张伟","李娜"]' in stored.replace(" ", "") and '"level":2' in stored.replace(" ", "")
    # every field empty: the unit's own frame is removed (and audited), the parent's applies again
    r = w.post("/orgs/frame", data={"csrf_token": csrf, "org": org})
    assert r.status_code == 303 and org not in dict(_frames(server))
    assert _audits(server, "frame.clear") >= 1
    en = w.get("/orgs/frame", params={"org": org, "lang": "en"}).text
    assert "Inherited from the org unit %s" % DEPT in en or 'id="frame-none"' in en
    w.close()


def test_another_department_neither_reads_nor_sets_it(server, site):
    hosts, users = site
    frames_before = _frames(server)
    for key in ("other_officer", "other_assessor"):
        c = _api(server, users[key])
        assert c.get("/api/v1/frames", params={"org": DEPT}).status_code == 404
        assert c.get("/api/v1/frames", params={"org": DEPT + "/ward"}).status_code == 404
        r = c.put("/api/v1/frames", json={"org": DEPT, "organization": "入侵者"})
        assert r.status_code == 404, r.text
        # their own unit is theirs (for the assessor); the paper of the other host is not
        assert c.get("/api/v1/frames", params={"org": OTHER}).status_code == 200
        assert c.get("/reports/%s/paper" % hosts["ward"].report_id).status_code == 404
        c.close()
        w, csrf = _web(server, users[key])
        r = w.get("/orgs/frame", params={"org": DEPT})
        assert r.status_code == 404 and "某市卫生健康委员会" not in r.text
        r = w.post("/orgs/frame", data={"csrf_token": csrf, "org": DEPT, "organization": "入侵者"})
        assert r.status_code == 404 and "入侵者" not in str(_frames(server))
        w.close()
    # an officer inside the department reads it but may not set it
    c = _api(server, users["officer"])
    assert c.get("/api/v1/frames", params={"org": DEPT}).status_code == 200
    r = c.put("/api/v1/frames", json={"org": DEPT, "organization": "科员"})
    assert r.status_code == 403, r.text
    c.close()
    assert _frames(server) == frames_before


def test_validation_is_the_agents_and_the_merge_rule():
    from scanner.server.errors import ApiError
    from scanner.server.workflow import frames
    assert frames.validate({"level": "3", "assessors": "张伟", "organization": "", "timezone": None}) == \
        {"level": 3, "assessors": ["张伟"]}
    with pytest.raises(ApiError) as err:
        frames.validate({"manual": {"mlps.br.local-backup-manual": "pass"}})
    assert err.value.status == 400 and "coverage page" in err.value.message
    with pytest.raises(ApiError) as err:
        frames.validate({"colour": "blue"})
    assert "unknown field(s): colour" in err.value.message
    doc = {"assessment": {"organization": "A", "system": "S", "manual": {"r": {"verdict": "pass"}}}}
    frames.apply_frame(doc, {"organization": "B", "level": 3})
    assert doc["assessment"] == {"organization": "B", "system": "S", "level": 3, "manual": {"r": {"verdict": "pass"}}}
