"""Renderers: each module has ``render(report, lang) -> str``. Loaded lazily by format name."""
from __future__ import absolute_import

import importlib

RENDERERS = {
    "json": "scanner.render.json_out",
    "table": "scanner.render.table",
    "html": "scanner.render.html",
    "summary": "scanner.render.html_summary",
    "junit": "scanner.render.junit",
    "csv": "scanner.render.csv_out",
}


def render(report, fmt, lang="en", pretty=True):
    """``pretty=False``: the output is not for a person (JSON is then compact)."""
    if fmt not in RENDERERS:
        raise ValueError("unknown format %r" % fmt)
    module = importlib.import_module(RENDERERS[fmt])
    if fmt == "json":
        return module.render(report, lang, pretty=pretty)
    return module.render(report, lang)
