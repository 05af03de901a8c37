"""`xcscan agent status`: last run, spool depth, last upload, server reachability."""
from __future__ import absolute_import

import os

from scanner.agent import state
from scanner.agent.spool import Spool


def collect_status(cfg, probe=True):
    spool = Spool(cfg.spool_path)
    doc = state.load(cfg.state_path)
    out = {
        "config": cfg.path,
        "server": cfg.server,
        "host_id": cfg.host_id,
        "org": cfg.org,
        "last_run": doc.get("last_run"),
        "last_upload": doc.get("last_upload"),
        "spool": {"dir": cfg.spool_path, "depth": spool.depth(), "bytes": spool.total_bytes(),
                  "rejected": len(spool.rejected_names()),
                  "oldest": (spool.names() or [None])[0]},
        "key": {"path": cfg.key_path, "present": os.path.exists(cfg.key_path)},
        "server_reachable": None,
        "server_detail": None,
    }
    if probe:
        from scanner.agent.runner import make_client
        from scanner.errors import XcscanError
        try:
            ok, detail = make_client(cfg).probe()
        except XcscanError as exc:
            ok, detail = False, str(exc)
        out["server_reachable"], out["server_detail"] = ok, detail
    return out
