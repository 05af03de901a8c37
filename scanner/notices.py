"""Notices a report carries at its top: conditions that change how every result must be read (no
operating system found under --root, an unprivileged scan). Stored as codes with fields in
``report["notices"]`` and worded at render time in the reader's language (``notice.<code>``)."""
from __future__ import absolute_import


def add(report, code, **fields):
    report.setdefault("notices", []).append({"code": code, "fields": fields})
    return report


def texts(report, lang="en"):
    """The report's notices as sentences in ``lang``; unknown codes are shown by their code."""
    from scanner.i18n import catalogue, t
    out = []
    for notice in report.get("notices") or []:
        if not isinstance(notice, dict):
            continue
        key = "notice.%s" % notice.get("code")
        fields = dict((k, _field(v, lang)) for k, v in (notice.get("fields") or {}).items())
        out.append(t(key, lang, **fields) if key in catalogue("en") else str(notice.get("code")))
    return out


def _field(value, lang):
    if isinstance(value, (list, tuple)):
        sep = "、" if lang == "zh" else ", "
        return sep.join(str(v) for v in value)
    return value
