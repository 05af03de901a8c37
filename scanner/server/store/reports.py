"""Stored report documents."""
from __future__ import annotations

import gzip
import json


def report_document(row):
    """The stored document: re-evaluated when available, else the original signed body."""
    blob = row["evaluated_gz"] if row.get("evaluated_gz") else row["body_gz"]
    return json.loads(gzip.decompress(blob).decode("utf-8"))
