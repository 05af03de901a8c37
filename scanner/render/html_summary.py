"""The summary edition of the HTML report (``--format summary``): the working paper's frame, the
summary per 控制点 and the problems with their risk, without every record (scanner/render/html.py)."""
from __future__ import absolute_import


def render(report, lang="en"):
    from scanner.render import html
    return html.render(report, lang, mode="summary")
