"""Classification: facts + catalog -> inventory components with an origin.

One module per kind of evidence, each exposing ``classify(facts, catalog)``
that returns a list of components (see :mod:`scanner.classify.component`).
Add a classifier by writing the module and appending its name here.
"""
from __future__ import absolute_import

import importlib

from scanner.classify.component import unknown_component  # noqa: F401  (re-export)

CLASSIFIERS = [
    "os",
    "cpu",
    "server",
    "storage",
    "accelerator",
    "software",
]


def classify(facts, catalog):
    components = []
    for name in CLASSIFIERS:
        try:
            module = importlib.import_module("scanner.classify." + name)
            components.extend(module.classify(facts, catalog) or [])
        except Exception as exc:  # a classifier bug must not lose the rest of the inventory
            facts.setdefault("errors", []).append({
                "collector": "classify." + name, "path": None,
                "message": "classifier crashed: %s: %s" % (type(exc).__name__, exc)})
    return components
