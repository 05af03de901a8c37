"""The scan pipeline used by the CLI, the agent and the tests: collect -> classify -> report."""
from __future__ import absolute_import

import os

from scanner.report import build_report, utc_now_iso


def collect(root="/", live=None, only=None):
    from scanner.collect import collect_facts
    from scanner.context import Context
    ctx = Context(root=root, live=live)
    return ctx, collect_facts(ctx, only=only)


def inventory_report(root="/", live=None, catalog=None):
    """Collect and classify; the report has no results (``xcscan inventory``)."""
    from scanner.catalog import default_catalog
    from scanner.inventory import build_inventory
    root = os.path.abspath(root or "/")
    collected_at = utc_now_iso()
    ctx, facts = collect(root, live)
    inventory = build_inventory(facts, catalog or default_catalog())
    return build_report(facts, inventory, root=root, live=ctx.live, collected_at=collected_at)
