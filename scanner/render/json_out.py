"""The JSON report. Indented for a person (a terminal); compact otherwise (a file, a pipe, the agent's
upload): a 650 KB indented report is ~40% whitespace and costs as much to write as to build."""
from __future__ import absolute_import

from scanner.report import dumps


def render(report, lang="en", pretty=True):
    if pretty:
        return dumps(report) + "\n"
    return dumps(report, indent=None, separators=(",", ":")) + "\n"
