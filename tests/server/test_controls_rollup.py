"""The fleet views that judge every host of an org subtree, in bounded memory.

The summary by 控制点 of an org subtree (web/rollup.py) reads every host's latest report document
(queries.latest_documents): a batch of them at a time as the roll-up takes them, never the subtree's at
once. Before, a department of 1,000 hosts held 1,000 parsed reports (2 GB of the worker, 13.8 s at
10,000 hosts, bench/fleet_scale.py's data). Real reports stored by a real server; the memory is what
Python allocates (tracemalloc) while the roll-up runs, with batches of one, three and all documents.
The GB/T 28448 coverage of a subtree reads its hosts' results 500 hosts at a time and agrees with each
host's own coverage."""
from __future__ import annotations

import gc
import tracemalloc
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


def test_the_rollup_holds_a_batch_of_documents_not_the_subtrees(server):
    from scanner.server.store import queries
    from scanner.server.store.scope import Scope
    from scanner.server.web import rollup
    with server.client() as c:
        for i in range(HOSTS):
            a = Agent("rollup-%02d" % i, machine_id=uuid.uuid4().hex)
            assert a.enroll(c, server.token(org=ORG)).status_code == 201
            assert a.submit(c, a.report(profile="mlps-l3", packages=400)).status_code == 200
    everything = Scope.everything()

    def peak(batch):
        def run():
            count, rows = queries.latest_documents(server.engine, everything, ORG, batch=batch)
            got = rollup.controls_rollup(rows)
            assert count == got["hosts"] == HOSTS and not got["bad"]
        return _peak(run)
    one, three, all_ = peak(1), peak(3), peak(HOSTS)
    # the peak grows with the batch, not with the hosts: two documents more for a batch of three, eleven
    # more for all twelve at once (holding the subtree's documents, every batch size would cost the same)
    assert all_ - one > 500 * 1024, (one, three, all_)  # the documents are what the peak is made of
    assert three - one < 0.4 * (all_ - one), (one, three, all_)
    # the same roll-up however the documents are batched
    a = rollup.controls_rollup(queries.latest_documents(server.engine, everything, ORG, batch=1)[1])
    b = rollup.controls_rollup(queries.latest_documents(server.engine, everything, ORG, batch=HOSTS)[1])
    assert a == b and a["hosts"] == HOSTS


def test_an_org_coverage_agrees_with_the_coverage_of_each_of_its_hosts(server):
    """GB/T 28448 coverage of an org subtree is read 500 hosts at a time (on PostgreSQL each host's rule ids
    as one array, without their results): each item's count of hosts with a result or a verdict, and its
    first open hosts, are what the hosts' own coverage says."""
    from sqlalchemy import text
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
