"""The fleet views that judge every host of an org subtree, in bounded memory.

The summary by 控制点 of an org subtree (web/rollup.py) reads each host's kept working-paper summary
(store/paper_summaries.py); the summaries it has to make come from the hosts' latest report documents
(queries.documents), a batch of them at a time as the roll-up takes them, never the subtree's at once.
Before, a department of 1,000 hosts held 1,000 parsed reports (2 GB of the worker, 13.8 s at 10,000 hosts,
bench/fleet_scale.py's data). Real reports stored by a real server; the memory is what Python allocates
(tracemalloc) while the roll-up runs, with batches of one, three and all documents. The GB/T 28448
coverage of a subtree reads its hosts' rule ids a batch at a time (on PostgreSQL each host's set kept as
a digest) and agrees with each host's own coverage."""
from __future__ import annotations

import gc
import json
import tracemalloc
import time
import uuid

from fleet import Agent

ORG = "/rollup-%s" % uuid.uuid4().hex[:6]
HOSTS = 12


def _peak(fn):
    """The most memory Python held at once while ``fn`` ran (bytes)."""
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _forget(server, host_ids):
    """Drop the kept summaries of these hosts (store/paper_summaries.py): the next roll-up reads reports."""
    from sqlalchemy import delete
    from scanner.server.store import db
    with server.engine.begin() as conn:
        conn.execute(delete(db.host_papers).where(db.host_papers.c.host_id.in_(list(host_ids))))


def _kept(server, host_ids):
    """{host_id: (report_id, stamp, summary)} of the kept summaries."""
    from sqlalchemy import select
    from scanner.server.store import db
    hp = db.host_papers
    with server.engine.connect() as conn:
        return dict((x[0], tuple(x[1:])) for x in conn.execute(
            select(hp.c.host_id, hp.c.report_id, hp.c.stamp, hp.c.summary).where(hp.c.host_id.in_(list(host_ids)))))


def test_the_rollup_holds_a_batch_of_documents_not_the_subtrees(server):
    from scanner.server.store import paper_summaries, queries
    from scanner.server.store.scope import Scope
    from scanner.server.web import rollup
    with server.client() as c:
        for i in range(HOSTS):
            a = Agent("rollup-%02d" % i, machine_id=uuid.uuid4().hex)
            assert a.enroll(c, server.token(org=ORG)).status_code == 201
            assert a.submit(c, a.report(profile="mlps-l3", packages=400)).status_code == 200
    count, hosts = queries.latest_hosts(server.engine, Scope.everything(), ORG)
    ids = [h["host_id"] for h in hosts]

    def made(batch):  # with no kept summary, every host's document is read, decoded and assessed
        _forget(server, ids)
        return rollup.controls_rollup(paper_summaries.latest(server.engine, hosts, doc_batch=batch))

    def peak(batch):
        def run():
            got = made(batch)
            assert count == got["hosts"] == HOSTS and not got["bad"]
        return _peak(run)
    one, three, all_ = peak(1), peak(3), peak(HOSTS)
    # the peak grows with the batch, not with the hosts: two documents more for a batch of three, eleven
    # more for all twelve at once (holding the subtree's documents, every batch size would cost the same)
    assert all_ - one > 500 * 1024, (one, three, all_)  # the documents are what the peak is made of
    assert three - one < 0.4 * (all_ - one), (one, three, all_)
    # the same roll-up however the documents are batched, and from the kept summaries
    a, b = made(1), made(HOSTS)
    assert a == b and a["hosts"] == HOSTS
    assert rollup.controls_rollup(paper_summaries.latest(server.engine, hosts)) == a
    assert len(_kept(server, ids)) == HOSTS


def test_a_kept_summary_is_read_until_what_it_was_made_from_changes(server):
    """The summary by 控制点 reads each host's kept summary (no report body) while the host's latest
    report, its re-evaluation and the valid recorded verdicts for it are what the summary was made from;
    a host whose report or verdicts changed, or whose kept row is damaged, is judged from its report again.
    A report that cannot be read is one bad host, and nothing is kept for it."""
    from sqlalchemy import event, text, update
    from scanner.server.store import db, paper_summaries, queries
    from scanner.server.store.scope import Scope
    from scanner.server.web import rollup
    from test_verdict_scores import _doc  # real mlps-l3 rule ids with manual parts, and the coverage level
    org = "/kept-%s" % uuid.uuid4().hex[:6]
    agents = []
    with server.client() as c:
        for i in range(4):
            a = Agent("kept-%d" % i, machine_id=uuid.uuid4().hex)
            assert a.enroll(c, server.token(org=org)).status_code == 201
            assert a.submit(c, _doc(a)).status_code == 200
            agents.append(a)
    ids = [a.host_id for a in agents]
    count, hosts = queries.latest_hosts(server.engine, Scope.everything(), org)
    assert count == 4

    def view():
        return rollup.controls_rollup(paper_summaries.latest(server.engine, hosts))

    def fresh():
        _forget(server, ids)
        return view()

    made = fresh()
    kept = _kept(server, ids)
    assert sorted(kept) == sorted(ids) and made["hosts"] == 4 and not made["bad"]
    assert made["score"]["pending"] == 8  # each host's two backup items await an assessor
    statements = []

    def seen(conn, cursor, statement, *args):
        statements.append(statement)
    event.listen(server.engine, "before_cursor_execute", seen)
    try:
        assert view() == made
    finally:
        event.remove(server.engine, "before_cursor_execute", seen)
    assert statements and not [s for s in statements if "body_gz" in s or "report_bases" in s]  # no report read
    assert _kept(server, ids) == kept
    # what is shown is the kept row (a score written into it with its stamp intact is the host's score)
    with server.engine.begin() as conn:
        doctored = dict(json.loads(kept[ids[0]][2]), score=12.5)
        conn.execute(update(db.host_papers).where(db.host_papers.c.host_id == ids[0]).values(
            summary=json.dumps(doctored)))
    assert [h["score"] for h in view()["per_host"] if h["host_id"] == ids[0]] == [12.5]
    # a damaged kept row is made again from the report
    with server.engine.begin() as conn:
        conn.execute(update(db.host_papers).where(db.host_papers.c.host_id == ids[0]).values(summary="{not json"))
    assert view() == made and _kept(server, ids) == kept
    # a verdict recorded for one host changes its summary (and only its row); revoked, the first row again
    admin = server.login()
    try:
        r = admin.post("/api/v1/assessments", json={
            "item_id": "L3-CES1-29", "target_kind": "host", "target": agents[1].hostname, "verdict": "nonconform",
            "record": "本机无本地备份", "valid_until": int(time.time()) + 3600})
        assert r.status_code == 201, r.text
        judged = view()
        assert judged["score"]["pending"] == 7 and judged != made
        now_kept = _kept(server, ids)
        assert now_kept[ids[1]][1] != kept[ids[1]][1]
        assert dict((k, v) for k, v in now_kept.items() if k != ids[1]) == \
            dict((k, v) for k, v in kept.items() if k != ids[1])
        assert judged == fresh()  # what the kept rows say is what the reports say
        assert admin.post("/api/v1/assessments/%d/revoke" % r.json()["id"]).status_code == 200
    finally:
        admin.close()
    assert view() == made and _kept(server, ids) == kept
    # a new report of a host: its row follows the report
    with server.client() as c:
        doc = _doc(agents[2])
        for res in doc["results"]:
            if res["status"] == "fail":
                res["status"] = "pass"
        assert agents[2].submit(c, doc).status_code == 200
    count, hosts = queries.latest_hosts(server.engine, Scope.everything(), org)
    newer = view()
    assert _kept(server, [ids[2]])[ids[2]][0] == doc["report_id"] != kept[ids[2]][0]
    assert newer["risks"]["medium"] == made["risks"]["medium"] - 1 and newer == fresh()
    # a re-evaluated report is judged again (its evaluated_at is part of the stamp)
    with server.engine.begin() as conn:
        conn.execute(text("UPDATE reports SET evaluated_at = 1 WHERE id = :i"), {"i": doc["report_id"]})
    before = _kept(server, [ids[2]])[ids[2]][1]
    assert view() == newer and _kept(server, [ids[2]])[ids[2]][1] != before
    # an unreadable latest report: one bad host, nothing kept for it, the others still summed up
    with server.engine.begin() as conn:
        conn.execute(text("UPDATE reports SET body_gz = :b, body_kind = 0, evaluated_gz = NULL WHERE id = :i"),
                     {"b": b"not gzip", "i": [h for h in hosts if h["host_id"] == ids[3]][0]["latest_report_id"]})
    _forget(server, [ids[3]])
    broken = view()
    assert broken["bad"] == [agents[3].hostname] and broken["hosts"] == 3
    assert ids[3] not in _kept(server, ids)


def test_an_org_coverage_agrees_with_the_coverage_of_each_of_its_hosts(server):
    """GB/T 28448 coverage of an org subtree is read 500 hosts at a time (on PostgreSQL each host's rule ids
    as one array, without their results): each item's count of hosts with a result or a verdict, and its
    first open hosts, are what the hosts' own coverage says."""
    from sqlalchemy import event, text
    from scanner.server.store import coverage
    from scanner.server.store.scope import Scope
    org = "/coverage-%s" % uuid.uuid4().hex[:6]
    with server.client() as c:
        for i in range(5):
            a = Agent("cov-%d" % i, machine_id=uuid.uuid4().hex)
            assert a.enroll(c, server.token(org=org + ("/unit" if i % 2 else ""))).status_code == 201
            doc = a.report(profile="mlps-l3", results=i != 2)  # one host reports no results at all
            if i == 3:  # one reports only some of its rules
                doc["results"] = doc["results"][::3]
            assert a.submit(c, doc).status_code == 200
    everything = Scope.everything()
    whole = coverage.coverage(server.engine, everything, "mlps-l3", org=org)
    with server.engine.connect() as conn:  # the subtree's hosts in the page's order
        hosts = [tuple(x) for x in conn.execute(text(
            "SELECT id, hostname FROM hosts WHERE org_path = :o OR org_path LIKE :p ORDER BY org_path, hostname"),
            {"o": org, "p": org + "/%"})]
    assert whole["hosts"] == len(hosts) == 5
    own = dict((hid, dict((it["id"], it["state"]) for it in coverage.coverage(
        server.engine, everything, "mlps-l3", host_id=hid)["items"])) for hid, _name in hosts)
    partly = 0
    for item in whole["items"]:
        states = [own[hid][item["id"]] for hid, _name in hosts]
        assert item["complete_hosts"] == sum(1 for s in states if s != "open"), item["id"]
        assert [e["hostname"] for e in item["per_host"]] == [name for (hid, name), s in zip(hosts, states)
                                                            if s == "open"][:50]
        partly += 0 < item["complete_hosts"] < 5
    assert partly > 0  # some item is covered on some hosts and not on others: the counts tell them apart
    # the same counts and first open hosts read two hosts at a time and showing two open hosts an item (the
    # batches' edges, and items that stop collecting open hosts while others still do)
    from scanner.server.util import now
    items = coverage.level_items("mlps-l3")
    rules = sorted({rid for it in items.values() for rid in it.get("rules") or ()})
    with server.engine.connect() as conn:
        rows = coverage.subtree_hosts(conn, everything, org)
        assert [(x.id, x.hostname) for x in rows] == hosts
        verdicts = coverage.valid_verdicts(conn, "mlps-l3", dict((x.id, x.org_path) for x in rows), now())
        small = dict((item_id, {"done": 0, "shown": []}) for item_id in items)
        coverage._count_org(conn, rows, items, rules, verdicts, small, batch=2, shown=2)
    for item in whole["items"]:
        assert small[item["id"]]["done"] == item["complete_hosts"], item["id"]
        assert [e["hostname"] for e in small[item["id"]]["shown"]] == [e["hostname"] for e in item["per_host"]][:2]
    if server.engine.dialect.name != "postgresql":
        return
    # on PostgreSQL each host's set of rule ids is kept as a digest (host_rule_sets): a second view reads no
    # host's results to make one, and says the same
    ids = [x.id for x in rows]
    with server.engine.connect() as conn:
        kept = conn.execute(text("SELECT count(*) FROM host_rule_sets WHERE host_id = ANY(:i)"), {"i": ids}).scalar()
    assert kept == 4  # the host that reported no results has no profile, no set
    statements = []

    def seen(conn, cursor, statement, *args):
        statements.append(statement)
    event.listen(server.engine, "before_cursor_execute", seen)
    try:
        assert coverage.coverage(server.engine, everything, "mlps-l3", org=org) == whole
    finally:
        event.remove(server.engine, "before_cursor_execute", seen)
    assert statements and not [s for s in statements if "sha256" in s]
    # the digests' memo is bounded: full, it starts again
    with server.engine.begin() as conn:  # (the counts above are checked) one host loses one rule's result
        conn.execute(text("DELETE FROM results WHERE host_id = :h AND rule_id = 'mlps.au.auditd-enabled'"),
                     {"h": ids[0]})
        # behind the key's back (intake and re-evaluation change the key or drop the row): forgotten here
        conn.execute(text("DELETE FROM host_rule_sets WHERE host_id = :h"), {"h": ids[0]})
    with server.engine.connect() as conn:
        memo, part = {}, coverage.subtree_hosts(conn, everything, org)  # with their kept digests
        want = coverage._rule_sets(conn, part, memo)
        assert len(want) == 4 and len(memo) == 3  # (one host reported a third of the rules; one none)
        common = [(d, got) for d, got in memo.items() if got != want[ids[0]]]
        full = dict(common + [("digest-%d" % i, frozenset(["x"])) for i in range(2000)])
        # a batch with a digest the memo knows and one it does not, the memo full: the same sets
        assert coverage._rule_sets(conn, part, full) == want and len(full) == 1
    # re-evaluated with the current rules, the hosts' results are other rule ids under the same reports: the
    # kept sets go with it, and the org's coverage agrees with each host's own again
    out = server.cli("server", "reevaluate", "--latest-only", "--org", org)
    assert "re-evaluated" in out.stdout, out.stdout + out.stderr
    with server.engine.connect() as conn:
        left = conn.execute(text("SELECT count(*) FROM host_rule_sets WHERE host_id = ANY(:i)"), {"i": ids}).scalar()
    assert left == 0
    whole = coverage.coverage(server.engine, everything, "mlps-l3", org=org)
    own = dict((hid, dict((it["id"], it["state"]) for it in coverage.coverage(
        server.engine, everything, "mlps-l3", host_id=hid)["items"])) for hid in ids)
    for item in whole["items"]:
        assert item["complete_hosts"] == sum(1 for hid in ids if own[hid][item["id"]] != "open"), item["id"]
