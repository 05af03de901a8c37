"""<state_dir>/status.json: what the last run and the last upload did (read by `agent status`)."""
from __future__ import absolute_import

import json
import os


def path_for(state_dir):
    return os.path.join(state_dir, "status.json")


def load(state_dir):
    try:
        with open(path_for(state_dir)) as fh:
            doc = json.load(fh)
        return doc if isinstance(doc, dict) else {}
    except (IOError, OSError, ValueError):
        return {}


def update(state_dir, **sections):
    """Merge ``sections`` into the state file atomically; never fails the run."""
    doc = load(state_dir)
    doc.update(sections)
    target = path_for(state_dir)
    tmp = "%s.tmp%d" % (target, os.getpid())
    try:
        with open(tmp, "w") as fh:
            json.dump(doc, fh, indent=2, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.rename(tmp, target)
    except (IOError, OSError):
        try:
            os.unlink(tmp)
        except OSError:
            pass
    return doc
