"""The change feed at a size that needs its limits (a real server over TLS, SQLite and PostgreSQL): one
department where a host fails 620 rules anew, fixes one and replaces its foreign OS by a domestic one,
and another host joins. The /changes page lists the 620 new findings 50 at a time (the list's own pager:
13 pages, the other lists staying on theirs); the CSV export holds all 620; GET /api/v1/changes pages through all 625 rows with ``limit`` and the
``next`` cursor (every page with the whole feed's counts), refuses bad limits and cursors with a 422,
and a cursor never reaches outside the caller's scope."""
from __future__ import annotations

import base64
import csv
import io
import json
import re
import time
import uuid

import pytest

from fleet import Agent, component

PREFIX = "/page-%s" % uuid.uuid4().hex[:6]
DEPT, OTHER = PREFIX + "/dept", PREFIX + "/other"
PASSWORD = "Paging-user-pw-42"
DAY = 86400
N = 620
RULES = ["page.r%04d" % i for i in range(N)]
FIXED = "page.fixed"
CENTOS = ("os", "centos", "CentOS", "CentOS", "foreign", "7.9")
KYLIN = ("os", "kylin", "银河麒麟", "Kylin", "domestic", "V10")
SECTIONS = ("new", "fixed", "added", "removed", "substitutions", "stopped", "joined")


def _doc(agent, comps, statuses):
    doc = agent.report(profile="mlps-l3")
    doc["inventory"]["components"] = [component(*c) for c in comps]
    doc["results"] = [{"rule_id": rid, "title": {"zh": "检查 " + rid, "en": "Check " + rid}, "category": "baseline",
                       "severity": "medium", "status": st, "refs": {}, "expected": None, "actual": None,
                       "evidence": None, "items": [], "remediation": None, "waiver": None}
                      for rid, st in sorted(statuses.items())]
    counts = {s: sum(1 for r in doc["results"] if r["status"] == s)
              for s in ("pass", "fail", "error", "not_applicable", "manual", "waived")}
    doc["summary"] = {"profile": "mlps-l3", "counts": counts, "score": 50.0, "score_without_waivers": 50.0}
    return doc


@pytest.fixture(scope="module")
def site(server):
    tag = uuid.uuid4().hex[:6]
    big, late = Agent("pg-big-" + tag, machine_id=uuid.uuid4().hex), Agent("pg-late-" + tag, machine_id=uuid.uuid4().hex)
    before = dict({r: "pass" for r in RULES}, **{FIXED: "fail"})
    after = dict({r: "fail" for r in RULES}, **{FIXED: "pass"})
    with server.client() as c:
        for a in (big, late):
            assert a.enroll(c, server.token(org=DEPT)).status_code == 201
        assert big.submit(c, _doc(big, [CENTOS], before), timestamp=time.time() - 9 * DAY).status_code == 200
        assert big.submit(c, _doc(big, [KYLIN], after), timestamp=time.time() - 2 * DAY).status_code == 200
        assert late.submit(c, _doc(late, [KYLIN], {FIXED: "pass"}), timestamp=time.time() - DAY).status_code == 200
    admin = server.login()
    user = "pg-other-" + tag
    r = admin.post("/api/v1/users", json={"username": user, "password": PASSWORD, "role": "officer", "orgs": [OTHER]})
    assert r.status_code == 201, r.text
    with server.client() as c:
        token = c.post("/api/v1/session", json={"username": user, "password": PASSWORD}).json()["token"]
    other = server.client(headers={"Authorization": "Bearer " + token})
    yield admin, other, big, late
    admin.close()
    other.close()


def test_page_lists_each_list_a_page_at_a_time_and_its_pager_walks_all_rows(site):
    admin, _other, big, _late = site
    page = admin.get("/changes", params={"org": DEPT, "lang": "en"})
    assert page.status_code == 200
    assert re.search(r'id="count-new"><div class="sub">[^<]+</div><div class="big">%d<' % N, page.text)
    # the lists shorter than a page have no pager; the long one says where it is and links its next page
    assert re.findall(r'<nav class="pager" id="pager-(\w+)"', page.text) == ["new"]
    assert len(re.findall(r'class="change-fixed"', page.text)) == 1
    seen, pages = [], 0
    while True:
        pages += 1
        rows = re.findall(r'class="change-new" data-rule="([^"]+)" data-host="%s"' % big.host_id, page.text)
        assert len(rows) == min(50, N - len(seen)), pages
        shown = re.search(r'id="pager-new"[^>]*><span class="total" data-total="(\d+)">([^<]+)<', page.text)
        assert shown.groups() == (str(N), "%d\u2013%d of %d" % (len(seen) + 1, len(seen) + len(rows), N))
        seen += rows
        # the other lists stay on their first page while this one moves on
        assert len(re.findall(r'class="change-fixed"', page.text)) == 1
        nxt = re.search(r'id="pager-new".*?<a rel="next" href="([^"]+)"', page.text, re.S)
        if not nxt:
            break
        link = nxt.group(1).replace("&amp;", "&")
        assert link.startswith("/changes?") and link.endswith("#list-new") and "new_page=%d" % (pages + 1) in link
        page = admin.get(link)
        assert page.status_code == 200
        assert pages < 20
    assert pages == 13 and len(seen) == N and set(seen) == set(RULES)
    # a page past the end lists nothing and still counts everything; a bad page number is the first page
    page = admin.get("/changes", params={"org": DEPT, "lang": "en", "new_page": "99"})
    assert page.status_code == 200 and 'class="change-new"' not in page.text
    assert re.search(r'id="count-new"><div class="sub">[^<]+</div><div class="big">%d<' % N, page.text)
    page = admin.get("/changes", params={"org": DEPT, "lang": "en", "new_page": "-3"})
    assert len(re.findall(r'class="change-new"', page.text)) == 50
    # the CSV and JSON exports the page links hold every one of them (the API pages itself)
    link = re.search(r'id="export-json" href="([^"]+)"', page.text).group(1).replace("&amp;", "&")
    r = admin.get(link)
    assert r.status_code == 200 and link.startswith("/api/v1/export/changes?")
    assert sorted(x["rule_id"] for x in r.json() if x["change"] == "new_fail") == RULES
    r = admin.get("/api/v1/export/changes", params={"org": DEPT, "format": "csv", "lang": "en"})
    assert r.status_code == 200
    got = list(csv.DictReader(io.StringIO(r.text.lstrip("\ufeff"))))
    rule_col = next(k for k in got[0] if k.endswith("rule_id"))
    kind_col = next(k for k in got[0] if k.endswith("change"))
    assert sorted(x[rule_col] for x in got if x[kind_col] == "new_fail") == RULES
    assert sorted(x[kind_col] for x in got if x[kind_col] != "new_fail") == [
        "component_added", "component_removed", "fixed", "joined", "substitution"]


def _pages(client, limit, **params):
    out, nxt = [], None
    while True:
        q = dict(params, limit=limit)
        if nxt:
            q = {"cursor": nxt, "limit": limit}
        r = client.get("/api/v1/changes", params=q)
        assert r.status_code == 200, r.text
        out.append(r.json())
        nxt = out[-1]["next"]
        assert out[-1]["truncated"] is (nxt is not None)
        if nxt is None:
            return out
        assert len(out) < 50


def test_api_pages_through_every_row_with_a_cursor(site):
    admin, _other, _big, late = site
    # one window for every request (without ``to`` each first request would end at its own now)
    now = int(time.time())
    window = {"org": DEPT, "from": str(now - 7 * DAY), "to": str(now + 60)}
    whole = admin.get("/api/v1/changes", params=window).json()  # default limit 1000: all 625 rows
    assert whole["truncated"] is False and whole["next"] is None
    assert whole["counts"] == {"new": N, "fixed": 1, "added": 1, "removed": 1, "substitutions": 1, "stopped": 0,
                               "joined": 1}
    assert {k: len(whole[k]) for k in SECTIONS} == whole["counts"]
    assert [r["hostname"] for r in whole["joined"]] == [late.hostname]
    total = sum(whole["counts"].values())
    for limit in (250, N, total - 1, total):
        pages = _pages(admin, limit, **window)
        assert len(pages) == -(-total // limit), limit
        for p in pages:
            n = sum(len(p[k]) for k in SECTIONS)
            assert n == (limit if p is not pages[-1] else total - limit * (len(pages) - 1))
            # the same window, org and whole-feed counts on every page
            assert (p["from"], p["to"], p["org"], p["counts"], p["new_by_severity"], p["hosts"]) == (
                whole["from"], whole["to"], whole["org"], whole["counts"], whole["new_by_severity"], whole["hosts"])
        for k in SECTIONS:  # the pages joined are the whole feed, in order
            assert [r for p in pages for r in p[k]] == whole[k], (limit, k)
    # the first page of 620 is exactly the new findings; the second the rest
    first, second = _pages(admin, N, **window)
    assert len(first["new"]) == N and all(not first[k] for k in SECTIONS[1:])
    assert second["new"] == [] and sum(len(second[k]) for k in SECTIONS) == total - N
    # a cursor given with the same parameters as the first request is fine
    r = admin.get("/api/v1/changes", params=dict(window, limit=N, cursor=first["next"]))
    assert r.status_code == 200 and r.json()["fixed"] == whole["fixed"]


def test_bad_limits_and_cursors_are_422(site):
    admin, _other, _big, _late = site
    for bad in ("0", "-1", "10001", "ten"):
        r = admin.get("/api/v1/changes", params={"org": DEPT, "limit": bad})
        assert r.status_code == 422, bad
        assert "limit" in r.json()["message"], r.text
    assert admin.get("/api/v1/changes", params={"org": DEPT, "limit": 10000}).status_code == 200
    huge = base64.urlsafe_b64encode(json.dumps({"v": 1, "from": 0, "to": 10 ** 20, "org": None, "offset": 0})
                                    .encode()).decode()
    negative = base64.urlsafe_b64encode(json.dumps({"v": 1, "from": 0, "to": 10, "org": None, "offset": -5})
                                        .encode()).decode()
    # not base64 JSON, {}, {"v": 1}, too long, out of range
    for bad in ("nonsense!", "e30", "eyJ2IjoxfQ", "x" * 600, huge, negative):
        r = admin.get("/api/v1/changes", params={"cursor": bad})
        assert r.status_code == 422, bad
        assert r.json()["error"] in ("bad_cursor", "invalid_request") and "cursor" in r.json()["message"], r.text
    nxt = admin.get("/api/v1/changes", params={"org": DEPT, "limit": 10}).json()["next"]
    r = admin.get("/api/v1/changes", params={"org": OTHER, "cursor": nxt, "limit": 10})
    assert r.status_code == 422 and r.json()["error"] == "bad_cursor"
    r = admin.get("/api/v1/changes", params={"from": "2020-01-01", "cursor": nxt, "limit": 10})
    assert r.status_code == 422 and r.json()["error"] == "bad_cursor"


def test_a_cursor_does_not_reach_outside_the_scope(site):
    admin, other, big, _late = site
    nxt = admin.get("/api/v1/changes", params={"org": DEPT, "limit": 10}).json()["next"]
    r = other.get("/api/v1/changes", params={"cursor": nxt})
    assert r.status_code == 404 and big.hostname not in r.text
    mine = other.get("/api/v1/changes").json()
    assert mine["counts"]["new"] == 0 and big.hostname not in repr(mine)


@pytest.fixture(scope="module")
def digest_server(tmp_path_factory):
    """A server whose change page reads the digest counted ahead (every day; at any number of records)."""
    from server_support import make_server
    srv = make_server(tmp_path_factory, "sqlite", settings={"change_digest_interval": DAY,
                                                             "change_digest_min_records": 0})
    yield srv
    srv.stop()


def test_default_view_is_read_from_the_digest_and_says_when_it_was_counted(digest_server):
    from scanner.server.store import change_digest
    srv = digest_server
    big = Agent("dg-big", machine_id=uuid.uuid4().hex)
    before = {r: "pass" for r in RULES}
    with srv.client() as c:
        assert big.enroll(c, srv.token(org=DEPT)).status_code == 201
        assert big.submit(c, _doc(big, [CENTOS], before), timestamp=time.time() - 9 * DAY).status_code == 200
        assert big.submit(c, _doc(big, [KYLIN], {r: "fail" for r in RULES}),
                          timestamp=time.time() - 2 * DAY).status_code == 200
    built = change_digest.build(srv.engine, change_digest.KEPT)
    assert built["orgs"] == 1 and built["skipped"] is None
    admin = srv.login()
    page = admin.get("/changes", params={"lang": "en"})
    assert page.status_code == 200
    assert re.search(r'id="digest-as-of" data-at="%d"' % built["at"], page.text)
    assert re.search(r'id="count-new"><div class="sub">[^<]+</div><div class="big">%d<' % N, page.text)
    first = re.findall(r'class="change-new" data-rule="([^"]+)"', page.text)
    assert len(first) == 50
    # the list's next pages keep the digest's window (?at=), not a window moved on since: the first
    # change_digest.PAGES pages come from the digest, the next ones are folded live over its window
    nxt = re.search(r'id="pager-new".*?<a rel="next" href="([^"]+)"', page.text, re.S).group(1).replace("&amp;", "&")
    assert "at=%d" % built["at"] in nxt and "new_page=2" in nxt
    # a malformed or out-of-range window time is ignored: the default view, not an error
    for bad in ("x1", "-5", "9" * 20, "1e9", str(int(time.time()) + 10 * DAY)):
        r = admin.get("/changes", params={"at": bad})
        assert r.status_code == 200 and 'id="digest-as-of"' in r.text, bad
    rule = r'class="change-new" data-rule="([^"]+)"'
    walked, link, served = list(first), nxt, []
    for n in range(2, change_digest.PAGES + 3):
        got = admin.get(link)
        rows = re.findall(rule, got.text)
        assert len(rows) == 50 and not set(rows) & set(walked), n
        walked += rows
        served.append('id="digest-as-of"' in got.text)
        # the same rows as the window folded live (the pager keeps ?at=)
        live = admin.get(link.split("#")[0] + "&live=1")
        assert 'id="digest-as-of"' not in live.text and re.findall(rule, live.text) == rows, n
        link = re.search(r'id="pager-new".*?<a rel="next" href="([^"]+)"', got.text, re.S).group(1).replace("&amp;", "&")
        assert "at=%d" % built["at"] in link and "new_page=%d" % (n + 1) in link
    assert served == [True] * (change_digest.PAGES - 1) + [False, False]
    # a change after the count: the digest still shows the count it made (and says when), on its next
    # pages too; ?live=1 counts now
    with srv.client() as c:
        fixed = dict({r: "fail" for r in RULES}, **{r: "pass" for r in RULES[:20]})
        assert big.submit(c, _doc(big, [KYLIN], fixed), timestamp=time.time() - 3600).status_code == 200
    count = r'id="count-new"><div class="sub">[^<]+</div><div class="big">(\d+)<'
    assert re.search(count, admin.get("/changes").text).group(1) == str(N)
    assert re.search(count, admin.get(nxt).text).group(1) == str(N)
    # (the report is stamped before the digest's time: the same window folded live counts it)
    assert re.search(count, admin.get(nxt.split("#")[0] + "&live=1").text).group(1) == str(N - 20)
    live = admin.get(re.search(r'id="count-now" href="([^"]+)"', page.text).group(1).replace("&amp;", "&"))
    assert re.search(count, live.text).group(1) == str(N - 20) and 'id="digest-as-of"' not in live.text
    change_digest.build(srv.engine, change_digest.KEPT, t=built["at"] + 1)  # (a later second than the first)
    assert re.search(count, admin.get("/changes").text).group(1) == str(N - 20)
    # a next page of the digest made before is folded live over its window: no digest of that time is kept
    again = admin.get(nxt)
    assert 'id="digest-as-of"' not in again.text and re.search(count, again.text).group(1) == str(N - 20)
    # an explicit window is always counted live
    day = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 3 * DAY))
    explicit = admin.get("/changes", params={"from": day})
    assert 'id="digest-as-of"' not in explicit.text and re.search(count, explicit.text).group(1) == str(N - 20)
    admin.close()
