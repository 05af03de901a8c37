"""The command line's entry point (the ``xcscan`` script, ``python -m scanner``, the offline bundle):
start-up work done before click and the sub-command's modules are imported, then scanner.cli.main.

- The regular expressions earlier runs compiled are installed first (scanner/recache.py), so the
  patterns compiled while importing click and the standard library (gettext, platform, urllib.parse,
  tokenize, json: ~2% of a scan's instructions) are built from the kept data like the rest.
- The cyclic collector's first threshold is raised while modules are imported: the imports allocate
  tens of thousands of long-lived objects (functions, classes, module dicts) and the ~18 collections
  they caused found nothing to free (~2 ms of a scan). ``settle()`` (scanner.cli calls it once the
  sub-command is imported) moves what the imports made to the oldest generation and restores the
  thresholds, so every command runs with the collector as before (a scan raises it again for itself,
  scanner/pipeline.py; a long-running ``server serve`` or ``agent run`` collects as usual).

Importing this module changes nothing: the work is in ``begin()``, which ``main()`` calls.
"""
from __future__ import absolute_import

import gc

IMPORT_GC_THRESHOLD = 50000
_state = {}   # "restore": the thresholds to give back, while raised


def begin():
    """Install the kept regular expressions and raise the collector's first threshold (once)."""
    if "begun" in _state:
        return
    _state["begun"] = True
    old = gc.get_threshold()
    if old[0] < IMPORT_GC_THRESHOLD:
        gc.set_threshold(IMPORT_GC_THRESHOLD, *old[1:])
        _state["restore"] = old
    from scanner import recache
    recache.install()


def settle():
    """The thresholds as they were before ``begin()``; what was allocated so far goes to the oldest
    generation first (gc.freeze and gc.unfreeze: two list splices), so restoring them does not set off a
    collection over it. Nothing when ``begin()`` raised nothing or someone changed the threshold since."""
    old = _state.pop("restore", None)
    if old is None or gc.get_threshold()[0] != IMPORT_GC_THRESHOLD:
        return
    gc.freeze()
    gc.unfreeze()
    gc.set_threshold(*old)


def main(argv=None):
    begin()
    from scanner.cli import main as cli_main
    cli_main(argv)
