#!/usr/bin/env python3
"""The change feed, the 信创 progress view and scores with recorded verdicts, timed at N hosts.

    python bench/progress_feed.py                       # 500 hosts on SQLite (a temporary file)
    python bench/progress_feed.py --hosts 10000 --pg --old-samples 1   # a throw-away PostgreSQL database

Each host is enrolled and gets ``--reports`` reports (default 3: 9, 5 and 2 days ago) through the
intake's own ``derive`` and the batch writer's ``store_batch`` in batches of 64 (synthetic fleet
reports, tests/server/fleet.py, ~50 results, 6 components; each later report drifts from the one
before: a few statuses flip, now and then a foreign component is replaced by a domestic one), so the
change records are written as intake writes them. A department-wide verdict for a manual item is
recorded through the workflow. Then the store calls behind the pages are timed, before and after
interleaved in one run: the change feed of the last 7 days and the 90-day substitution count as they
were computed before the change records (tests/server/changes_replay.py: two stored report documents
read per host) against the feed from the records (scanner/server/store/changes.py), which must give
the same answer; the progress view; the org tree with the verdict applied to every host's mlps-l3
score against the org tree without a verdict."""
from __future__ import annotations

import argparse
import copy
import gzip
import hashlib
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "server"))
from fleet import PRODUCTS, Agent, body_of, component, make_report  # noqa: E402

PG_BASE = os.environ.get("XCSCAN_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
DAY = 86400
PAGE = 50  # rows of each list the change page shows (web/pages.py CHANGES_SHOWN)


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def drift(rng, prev):
    """The next report of a host: a few statuses flip; now and then a foreign component goes domestic."""
    doc = copy.deepcopy(prev)
    doc["report_id"] = str(uuid.uuid4())
    for r in rng.sample(doc["results"], 3):
        r["status"] = rng.choice(["pass", "fail", "error", "pass"])
    comps = doc["inventory"]["components"]
    for i, c in enumerate(comps):
        if c["origin"] == "foreign" and rng.random() < 0.15:
            pick = rng.choice([p for p in PRODUCTS[c["category"]] if p[3] == "domestic"])
            comps[i] = component(c["category"], pick[0], pick[1], pick[2], pick[3], "1.0")
    return doc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, default=500)
    ap.add_argument("--reports", type=int, default=3, help="reports per host (9, 5, 2, ... days ago)")
    ap.add_argument("--pg", action="store_true")
    ap.add_argument("--samples", type=int, default=5, help="timed calls of each store function")
    ap.add_argument("--keep", action="store_true", help="keep the PostgreSQL database (its URL is printed)")
    ap.add_argument("--reuse", metavar="URL", default=None, help="time a database seeded by an earlier --keep run")
    ap.add_argument("--old-samples", type=int, default=None,
                    help="timed calls of the on-demand reading (default: --samples); it takes long at 10,000 hosts")
    opts = ap.parse_args()
    old_samples = opts.samples if opts.old_samples is None else opts.old_samples
    import changes_replay
    from scanner.server.access import accounts
    from scanner.server.intake import ingest
    from scanner.server.intake.batch import Item, store_batch
    from scanner.server.store import changes, db, localization, migrate, queries
    from scanner.server.store.scope import Scope
    from scanner.server.workflow import assessments, targets
    tmp = tempfile.mkdtemp()
    dbname = None
    if opts.reuse:
        url = opts.reuse
    elif opts.pg:
        import psycopg
        dbname = "xcscan_progbench_%s" % secrets.token_hex(4)
        with psycopg.connect(PG_BASE, autocommit=True) as c:
            c.execute('CREATE DATABASE "%s"' % dbname)
        url = PG_BASE.rsplit("/", 1)[0] + "/" + dbname
    else:
        url = os.path.join(tmp, "bench.db")
    engine = db.make_engine(url)
    migrate.upgrade(engine)
    everything = Scope.everything()
    rng = random.Random(15)
    try:
        t0 = time.time()
        now = int(time.time())
        if opts.reuse:
            return measure(opts, engine, everything, now, old_samples)
        orgs = ["/gov/d%d/u%d" % (i % 5, i % 20) for i in range(20)]
        tokens = {o: accounts.create_token(engine, o, uses=10**6, scope=everything)["token"] for o in set(orgs)}
        agents, docs = [], []
        for i in range(opts.hosts):
            a = Agent("h%05d" % i, machine_id=uuid.uuid4().hex)
            a.host_id = ingest.enroll(engine, tokens[orgs[i % 20]], a.hostname, a.machine_id, a.public_key)["host_id"]
            agents.append(a)
            docs.append(make_report(a.hostname, a.machine_id, rng=random.Random(i), domestic_bias=0.4, packages=20))
        ages = [9 * DAY - k * (7 * DAY // max(1, opts.reports - 1)) for k in range(opts.reports)]
        store_s = 0.0
        for k, age in enumerate(ages):  # round k: every host's k-th report, in batches of 64
            items = []
            for i, a in enumerate(agents):
                if k:
                    docs[i] = drift(rng, docs[i])
                body = body_of(docs[i])
                items.append(Item(docs[i]["report_id"], a.host_id, now, now - age - i % 3600,
                                  ingest.derive(ingest.parse_report(body)), gzip.compress(body, 6), len(body),
                                  hashlib.sha256(body).hexdigest()))
            for j in range(0, len(items), 64):
                t = time.perf_counter()
                with db.write_tx(engine) as conn:
                    store_batch(conn, items[j:j + 64])
                store_s += time.perf_counter() - t
        with engine.connect() as conn:
            from sqlalchemy import func, select
            n_rc = conn.execute(select(func.count()).select_from(db.result_changes)).scalar()
            n_cc = conn.execute(select(func.count()).select_from(db.component_changes)).scalar()
        print("seeded %d hosts x %d reports (%s) in %.1fs; store_batch %.2f ms per report; change rows: %d results, "
              "%d components" % (opts.hosts, opts.reports, "PostgreSQL" if opts.pg else "SQLite", time.time() - t0,
                                 1000.0 * store_s / (opts.hosts * opts.reports), n_rc, n_cc))
        targets.set_target(engine, {"org": "/gov/d1", "category": "os", "target": 1.0, "deadline": now + 300 * DAY},
                           "bench", scope=everything, role="admin")
        if opts.keep:
            print("kept: --reuse %s" % url)
            dbname = None
        measure(opts, engine, everything, now, old_samples)
    finally:
        engine.dispose()
        if dbname:
            import psycopg
            with psycopg.connect(PG_BASE, autocommit=True) as c:
                c.execute('DROP DATABASE IF EXISTS "%s"' % dbname)


def measure(opts, engine, everything, now, old_samples):
    import changes_replay
    from scanner.server.store import changes, localization, queries
    from scanner.server.workflow import assessments
    if True:
        # before and after, interleaved: the same machine load for both
        clock = int(time.time())
        times = {"feed_old": [], "feed_new": [], "subs_old": [], "subs_new": [], "progress": [], "page": []}
        from scanner.server.store import change_summary
        for s in range(max(opts.samples, old_samples)):
            if s < old_samples:
                dt, old = timed(lambda: changes_replay.feed(engine, everything, None, clock - 7 * DAY, clock))
                times["feed_old"].append(dt)
            if s < opts.samples:
                dt, new = timed(lambda: changes.feed(engine, everything, None, clock - 7 * DAY, clock))
                times["feed_new"].append(dt)
                # the change page: the same window folded in the database, each list's page of rows (the
                # second page of the findings lists, as a click on their pagers asks)
                offsets = {"new": PAGE, "fixed": PAGE} if s % 2 else {}
                dt, page = timed(lambda: change_summary.summary(engine, everything, None, clock - 7 * DAY, clock,
                                                                PAGE, offsets))
                times["page"].append(dt)
                assert page == change_summary.cut(new, PAGE, offsets), "the change page differs from the feed"
            if s < old_samples:
                dt, old_subs = timed(lambda: changes_replay.feed(engine, everything, None, clock - 90 * DAY, clock))
                times["subs_old"].append(dt)
            if s < opts.samples:
                dt, new_subs = timed(lambda: changes.substitutions(engine, everything, None, clock - 90 * DAY, clock))
                times["subs_new"].append(dt)
                times["progress"].append(timed(lambda: localization.progress(engine, everything))[0])
        print("change page (store/change_summary.py), 7 days: %.3fs median of %d (%s); the whole feed: %.3fs "
              "(interleaved)" % (statistics.median(times["page"]), len(times["page"]),
                                 ", ".join("%.3f" % x for x in times["page"]), statistics.median(times["feed_new"])))
        # the default view counted ahead (store/change_digest.py, the server's job): its build, and its
        # read for the whole fleet against the same window folded live
        from scanner.server.store import change_digest
        builds, reads, lives, reads_last = [], [], [], []
        for s in range(opts.samples):
            dt, built = timed(lambda: change_digest.build(engine, change_digest.KEPT))
            builds.append(dt)
            dt, kept = timed(lambda: change_digest.read(engine, everything, None, PAGE, 600))
            reads.append(dt)
            dt, live = timed(lambda: change_summary.summary(engine, everything, None, built["at"] - 7 * DAY,
                                                            built["at"], PAGE))
            lives.append(dt)
            assert kept.pop("as_of") == built["at"] and kept == live, "the digest differs from the page folded live"
            # a list's last page kept (?new_page=4 ...): from the digest as well
            last = {k: PAGE * (change_digest.PAGES - 1) for k in changes.SECTIONS}
            dt, kept = timed(lambda: change_digest.read(engine, everything, None, PAGE, 600, offsets=last))
            reads_last.append(dt)
            live = change_summary.summary(engine, everything, None, built["at"] - 7 * DAY, built["at"], PAGE, last)
            assert kept.pop("as_of") == built["at"] and kept == live, "the digest's last page differs"
        print("change page's default view from the digest (store/change_digest.py): read %.1f ms median of %d "
              "(%s), a list's page %d %.1f ms; folded live %.3fs; the digest's build %.3fs (%d orgs, %d records)" % (
                  1000 * statistics.median(reads), len(reads), ", ".join("%.1f" % (1000 * x) for x in reads),
                  change_digest.PAGES, 1000 * statistics.median(reads_last),
                  statistics.median(lives), statistics.median(builds), built["orgs"], built["records"]))
        if not old_samples:
            print("change feed, 7 days: %.3fs (%d new); substitutions, 90 days: %.3fs (%d)" % (
                statistics.median(times["feed_new"]), new["counts"]["new"], statistics.median(times["subs_new"]),
                new_subs["count"]))
            return
        same = old == new and old_subs["substitutions"] == new_subs["rows"]
        med = {k: statistics.median(v) for k, v in times.items() if v}
        print("change feed, 7 days:   before %.3fs (%d samples)  after %.3fs (%d)  -> %.0fx   (%d new, %d fixed, "
              "%d substitutions; same answer: %s)" % (med["feed_old"], len(times["feed_old"]), med["feed_new"],
                                                       len(times["feed_new"]), med["feed_old"] / med["feed_new"],
                                                       new["counts"]["new"], new["counts"]["fixed"],
                                                       new["counts"]["substitutions"], same))
        print("substitutions, 90 days: before %.3fs  after %.3fs  -> %.0fx   (%d)" % (
            med["subs_old"], med["subs_new"], med["subs_old"] / med["subs_new"], new_subs["count"]))
        print("progress view (after): %.3fs" % med["progress"])
        from scanner.server.store import worst

        def part(fn):
            with engine.connect() as conn:
                return fn(conn)
        w_old, w_new = [], []
        for _ in range(opts.samples):  # interleaved: one profile for the scope (before), each host's own (after)
            w_old.append(timed(lambda: part(lambda conn: queries.worst_hosts(conn, everything, None, "mlps-l3")))[0])
            w_new.append(timed(lambda: part(lambda conn: worst.worst_hosts(conn, everything)))[0])
        print("worst hosts: scope's main profile %.3fs, each host's main profile %.3fs" % (
            statistics.median(w_old), statistics.median(w_new)))
        print("overview (worst hosts, top rules): %.3fs" % timed(lambda: queries.overview(engine, everything))[0])
        print("org tree, no verdict:            %.3fs" % timed(lambda: queries.org_tree(engine, everything))[0])
        assessments.record_assessment(engine, {"item_id": "L3-CES1-29", "target_kind": "org", "target": "/gov",
                                               "verdict": "nonconform", "record": "bench",
                                               "valid_until": now + DAY}, "bench", scope=everything, role="admin")
        print("org tree, verdict on every host: %.3fs" % timed(lambda: queries.org_tree(engine, everything))[0])
        if not same:
            sys.exit("the feed from the change records differs from the reading of the stored documents")


if __name__ == "__main__":
    main()
