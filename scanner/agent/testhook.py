"""Pause points for crash tests (SIGKILL at an exact moment). Inert unless the env var is set.

``XCSCAN_AGENT_TEST_PAUSE=<point>`` makes the agent stop at ``<point>``, write its pid
to ``$XCSCAN_AGENT_TEST_PAUSE_FILE`` (so the test knows it got there) and sleep, so
the test can ``kill -9`` the real process at that moment. Points: ``spool-write``
(half the report written to the temporary spool file), ``upload-sent`` (request sent,
response not read), ``upload-acked`` (acknowledgement received, spool file not yet
deleted).
"""
from __future__ import absolute_import

import os
import time


def pause(point):
    if os.environ.get("XCSCAN_AGENT_TEST_PAUSE") != point:
        return
    marker = os.environ.get("XCSCAN_AGENT_TEST_PAUSE_FILE")
    if marker:
        with open(marker, "w") as fh:
            fh.write(str(os.getpid()))
    time.sleep(float(os.environ.get("XCSCAN_AGENT_TEST_PAUSE_SECONDS", "3600")))
