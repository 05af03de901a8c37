from __future__ import absolute_import

from scanner.report import dumps


def render(report, lang="en"):
    return dumps(report) + "\n"
