"""Collectors: one module per domain, read-only, never raising.

Each module listed in :data:`COLLECTORS` defines:

* ``NAME``      -- the key of its facts in the facts document;
* ``LIVE_ONLY`` -- True when the facts only exist on a running host
  (processes, sockets); for an offline root the facts are ``None`` and the
  collection status says ``not_collected`` -- never "absent";
* ``collect(ctx)`` -- returns a JSON-serialisable dict (or None when unknown);
* ``ON_DEMAND`` (optional) -- True for a costly collector that runs only when
  asked for by name in ``wanted`` (the scan asks for the ones its selected rules
  read); otherwise its facts are ``None`` with the status ``not_collected``.

Add a collector by writing the module and appending its name here.
"""
from __future__ import absolute_import

import importlib
import time
import traceback

SCHEMA = "xcscan.facts/1"

# Order matters only for readability of the facts document.
COLLECTORS = [
    "host",
    "os",
    "cpu",
    "dmi",
    "storage",
    "pci",
    "login_defs",
    "pam",
    "accounts",
    "sshd",
    "shell",
    "audit",
    "logging",
    "file_perms",
    "mac",
    "firewall",
    "time_sync",
    "sysctl",
    "coredump",
    "sudo",
    "bootloader",
    "home_files",
    "special_files",
    "packages",
    "processes",
    "sockets",
    "services",
    "software_paths",
    "crypto_libs",
    "tls",
    "db_config",
]

DEFAULT_COLLECTOR_BUDGET = 20.0  # seconds; a stuck collector must not stall a cron run


def load(name):
    return importlib.import_module("scanner.collect." + name)


def collect_facts(ctx, only=None, budget=DEFAULT_COLLECTOR_BUDGET, wanted=()):
    """Run collectors against ``ctx`` and return the facts document; on-demand collectors run
    only when named in ``wanted`` (or in ``only``)."""
    facts = {"schema": SCHEMA, "collection": {}, "errors": ctx.errors}
    for name in COLLECTORS:
        if only is not None and name not in only:
            continue
        facts_key, status = name, {}
        start = time.monotonic()
        try:
            module = load(name)
            facts_key = getattr(module, "NAME", name)
            if getattr(module, "LIVE_ONLY", False) and not ctx.live:
                facts[facts_key] = None
                facts["collection"][facts_key] = {
                    "status": "not_collected",
                    "reason": "live-only fact; the target is an offline root",
                }
                continue
            if getattr(module, "ON_DEMAND", False) and facts_key not in wanted \
                    and not (only is not None and name in only):
                facts[facts_key] = None
                facts["collection"][facts_key] = {
                    "status": "not_collected",
                    "reason": "collected only for rules that read it; none of the selected rules does",
                }
                continue
            ctx.set_collector(facts_key)
            # a collector may set its own default BUDGET (the special-file walk: every local filesystem);
            # a budget the caller chose stays the caller's
            own = getattr(module, "BUDGET", None) if budget == DEFAULT_COLLECTOR_BUDGET else None
            ctx.deadline = start + (own or budget) if budget else None
            value = module.collect(ctx)
            facts[facts_key] = value
            status = {"status": "ok" if value is not None else "unknown"}
        except Exception as exc:  # a collector bug must never kill the scan
            facts[facts_key] = None
            status = {"status": "failed", "reason": "%s: %s" % (type(exc).__name__, exc)}
            ctx.error(None, "collector crashed: %s: %s (%s)" % (
                type(exc).__name__, exc, traceback.format_exc(limit=3).strip().splitlines()[-1]),
                collector=facts_key)
        finally:
            ctx.deadline = None
            ctx.set_collector(None)
        status["seconds"] = round(time.monotonic() - start, 4)
        facts["collection"][facts_key] = status
    return facts
