"""The scan pipeline used by the CLI, the agent and the tests: collect -> classify -> report."""
from __future__ import absolute_import

import functools
import gc
import os

from scanner.report import build_report, utc_now_iso

# A scan allocates a few hundred thousand short-lived containers and almost no reference cycles (plain
# refcounting frees them), yet with the default first-generation threshold (700) the cyclic collector
# ran ~35 times per scan (17 per inventory) over the growing facts, rules and results: 3-5 ms of CPU.
# For the duration of one it runs only after this many net allocations (none in a scan of this machine,
# the walk included; peak RSS unchanged); the caller's thresholds are restored afterwards.
#
# Restored as they were, the first allocation after the scan ran one youngest-generation collection
# over everything the scan had made and kept (~23,000 objects: facts, inventory, results), 5-8 ms, again
# finding nothing. So the scan's survivors are moved to the oldest generation first (gc.freeze and
# gc.unfreeze, Python 3.7+: two list splices): they are long-lived (the report), and the oldest
# generation is examined only in a full collection, which still finds any cycle among them.
SCAN_GC_THRESHOLD = 50000


def _few_collections(fn):
    @functools.wraps(fn)
    def run(*args, **kwargs):
        old = gc.get_threshold()
        gc.set_threshold(max(old[0], SCAN_GC_THRESHOLD), *old[1:])
        try:
            return fn(*args, **kwargs)
        finally:
            gc.freeze()     # every tracked object -> the permanent generation (young counts reset)
            gc.unfreeze()   # ... -> the oldest generation
            gc.set_threshold(*old)
    return run


def collect(root="/", live=None, only=None, collector_budget=None, wanted=()):
    """Run the collectors; ``collector_budget`` (seconds) bounds each one (default 20 s);
    on-demand collectors run when named in ``wanted``."""
    from scanner.collect import DEFAULT_COLLECTOR_BUDGET, collect_facts
    from scanner.context import Context
    ctx = Context(root=root, live=live)
    budget = DEFAULT_COLLECTOR_BUDGET if collector_budget is None else collector_budget
    return ctx, collect_facts(ctx, only=only, budget=budget, wanted=wanted)


@_few_collections
def inventory_report(root="/", live=None, catalog=None):
    """Collect and classify; the report has no results (``xcscan inventory``)."""
    from scanner.catalog import default_catalog
    from scanner.inventory import build_inventory
    root = os.path.abspath(root or "/")
    collected_at = utc_now_iso()
    ctx, facts = collect(root, live)
    inventory = build_inventory(facts, catalog or default_catalog())
    return build_report(facts, inventory, root=root, live=ctx.live, collected_at=collected_at)


def _host_for_waivers(report):
    host = dict(report.get("host") or {})
    return host


def _load_engine_inputs(profile, waivers):
    from scanner.engine import load_profile, load_ruleset, load_waivers
    prof = load_profile(profile or "all")
    if waivers is None or isinstance(waivers, list):
        wv = load_waivers(waivers) if waivers else []
    else:
        wv = load_waivers(waivers)
    return load_ruleset(), prof, wv


@_few_collections
def scan_report(root="/", profile="all", waivers=None, live=None, catalog=None, now=None,
                collector_budget=None):
    """Collect, classify and evaluate the rules of ``profile``: the full report (``xcscan scan``).

    ``waivers`` is a path to a waivers YAML file, a list of waiver mappings, or None.
    Rules, profile and waivers are loaded before collecting, so a bad file fails fast.
    """
    from scanner.catalog import default_catalog
    from scanner.engine import evaluate
    from scanner.inventory import build_inventory
    ruleset, prof, wv = _load_engine_inputs(profile, waivers)
    root = os.path.abspath(root or "/")
    collected_at = utc_now_iso()
    from scanner.engine import facts_read
    ctx, facts = collect(root, live, collector_budget=collector_budget, wanted=facts_read(ruleset, prof))
    catalog = catalog or default_catalog()
    inventory = build_inventory(facts, catalog)
    report = build_report(facts, inventory, root=root, live=ctx.live, collected_at=collected_at)
    results, summary = evaluate(facts, inventory, ruleset, profile=prof, waivers=wv,
                                host=_host_for_waivers(report), now=now, catalog=catalog)
    report["results"] = results
    report["summary"] = summary
    from scanner.render.assessment import annotate
    return annotate(report)     # item verdicts, 测评记录 and risks, added fields of the report


def evaluate_report(report, profile=None, waivers=None, catalog=None, now=None):
    """A new report whose inventory, results and summary are recomputed from ``report["facts"]``
    with the current catalog and rules (the aggregator's re-evaluation, ``xcscan report``).

    ``profile`` defaults to the profile the report was scanned with (or "all"). The input is not modified.
    """
    import copy
    from scanner.catalog import default_catalog
    from scanner.engine import evaluate
    from scanner.inventory import build_inventory
    if profile is None:
        profile = (report.get("summary") or {}).get("profile") or "all"
    ruleset, prof, wv = _load_engine_inputs(profile, waivers)
    facts = copy.deepcopy(report.get("facts") or {})
    catalog = catalog or default_catalog()
    inventory = build_inventory(facts, catalog)
    out = dict(report)
    out["facts"] = facts
    out["inventory"] = inventory
    results, summary = evaluate(facts, inventory, ruleset, profile=prof, waivers=wv,
                                host=_host_for_waivers(report), now=now, catalog=catalog)
    out["results"] = results
    out["summary"] = summary
    from scanner.render.assessment import annotate
    return annotate(out)
