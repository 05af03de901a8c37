"""The working paper's frame (``--assessment FILE``): who is assessed, which system, at which
protection level, by whom and when. A small YAML (or JSON) mapping, checked strictly; the result is
stored in the report as ``report["assessment"]`` (an added field of xcscan.report/1) so that every
rendering of the report, here or on the aggregator, shows the same 基本信息.

    organization: 某市财政局           # 被测单位
    system: 非税收入管理系统           # 系统名称
    record_number: 11010013001-20001   # 备案号 (optional)
    report_number: CP-2026-0042        # 报告编号 (optional)
    level: 3                           # 安全保护等级 (1-4)
    assessors: [张伟, 李娜]            # 测评人员
    assessed_on: 2026-12-05            # 测评时间 (optional; default: the scan time)
    timezone: "+08:00"                 # time zone of the times shown (default +08:00, Beijing time)
    manual:                            # the assessor's verdicts on the manual parts (rule id: ...)
      mlps.br.local-backup-manual: {verdict: pass, note: 查看了备份策略与最近一次恢复测试记录}
      mlps.ac.default-passwords-manual: fail
"""
from __future__ import absolute_import

import datetime
import re

FIELDS = ("organization", "system", "record_number", "report_number", "level", "assessors", "assessed_on",
          "timezone", "manual")
MANUAL_VERDICTS = ("pass", "fail", "partial")
NOTE_LIMIT = 1000
TEXT_LIMIT = 200
# names accepted for zones without daylight saving time (Python 3.7 has no zoneinfo)
ZONE_NAMES = {"Asia/Shanghai": "+08:00", "Asia/Chongqing": "+08:00", "Asia/Urumqi": "+06:00",
              "Asia/Hong_Kong": "+08:00", "Asia/Macau": "+08:00", "Asia/Taipei": "+08:00", "UTC": "+00:00"}
DEFAULT_TZ = "+08:00"
_OFFSET = re.compile(r"^(?:UTC)?([+-])(\d{1,2}):?(\d{2})$")


def _error(path, what):
    from scanner.errors import DataError
    return DataError(what, path=path, hint="fix the assessment file; fields: %s" % ", ".join(FIELDS))


def _text(path, key, value):
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise _error(path, "%s must be a non-empty text" % key)
    if len(value) > TEXT_LIMIT:
        raise _error(path, "%s is longer than %d characters" % (key, TEXT_LIMIT))
    return value.strip()


def parse_offset(text):
    """'+08:00' / 'UTC+8:00' / 'Asia/Shanghai' -> minutes east of UTC; None when not understood."""
    text = ZONE_NAMES.get(text, text)
    match = _OFFSET.match(text or "")
    if not match:
        return None
    minutes = int(match.group(2)) * 60 + int(match.group(3))
    if minutes > 14 * 60 or int(match.group(3)) >= 60:
        return None
    return -minutes if match.group(1) == "-" else minutes


def check(doc, path="--assessment"):
    """The validated frame (a new dict) or DataError naming the field."""
    if not isinstance(doc, dict):
        raise _error(path, "the assessment file holds a mapping of fields")
    unknown = sorted(str(k) for k in doc if k not in FIELDS)
    if unknown:
        raise _error(path, "unknown field(s): %s" % ", ".join(unknown))
    out = {}
    for key in ("organization", "system", "record_number", "report_number"):
        if doc.get(key) is not None:
            out[key] = _text(path, key, doc[key])
    if doc.get("level") is not None:
        level = doc["level"]
        if isinstance(level, str) and level.isdigit():
            level = int(level)
        if isinstance(level, bool) or level not in (1, 2, 3, 4):
            raise _error(path, "level must be 1, 2, 3 or 4 (the 安全保护等级), found %r" % (doc["level"],))
        out["level"] = level
    if doc.get("assessors") is not None:
        people = doc["assessors"]
        people = [people] if isinstance(people, str) else people
        if not isinstance(people, list) or not people or len(people) > 20:
            raise _error(path, "assessors must be a name or a list of 1 to 20 names")
        out["assessors"] = [_text(path, "assessors", p) for p in people]
    if doc.get("assessed_on") is not None:
        when = doc["assessed_on"]
        if isinstance(when, (datetime.date, datetime.datetime)):
            when = when.isoformat()
        when = _text(path, "assessed_on", when)
        if not re.match(r"^\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2})?)?(?:\s*(?:至|to|-|–|~)\s*\d{4}-\d{2}-\d{2})?$",
                        when):
            raise _error(path, "assessed_on must be a date (2026-12-05), a date and time or a range "
                               "(2026-12-01 至 2026-12-05), found %r" % when)
        out["assessed_on"] = when
    if doc.get("timezone") is not None:
        zone = _text(path, "timezone", doc["timezone"])
        if parse_offset(zone) is None:
            raise _error(path, "timezone must be a UTC offset such as +08:00 (or one of %s), found %r"
                         % (", ".join(sorted(ZONE_NAMES)), zone))
        out["timezone"] = zone
    if doc.get("manual") is not None:
        out["manual"] = _manual(path, doc["manual"])
    return out


def _manual(path, given):
    if not isinstance(given, dict):
        raise _error(path, "manual maps rule ids to a verdict (pass, fail, partial) or {verdict, note}")
    out = {}
    for rule_id, entry in given.items():
        rule_id = _text(path, "manual rule id", rule_id)
        if isinstance(entry, str):
            entry = {"verdict": entry}
        if not isinstance(entry, dict) or set(entry) - {"verdict", "note"}:
            raise _error(path, "manual.%s must be a verdict or {verdict, note}" % rule_id)
        verdict = entry.get("verdict")
        if verdict not in MANUAL_VERDICTS:
            raise _error(path, "manual.%s: verdict must be pass, fail or partial, found %r" % (rule_id, verdict))
        recorded = {"verdict": verdict}
        if entry.get("note") is not None:
            note = _text(path, "manual.%s.note" % rule_id, entry["note"]) if len(str(entry["note"])) <= NOTE_LIMIT \
                else None
            if note is None:
                raise _error(path, "manual.%s.note is longer than %d characters" % (rule_id, NOTE_LIMIT))
            recorded["note"] = note
        out[rule_id] = recorded
    return out


def apply_manual(report, frame, path="--assessment"):
    """Record the frame's manual verdicts on the report's manual results (``result.manual_verdict``
    {verdict, note, by, at}, an added field) and recompute the assessor's reading. A verdict for a
    rule that has no manual result in the report is an error naming the rule."""
    manual = (frame or {}).get("manual") or {}
    if not manual:
        return report
    results = dict((r.get("rule_id"), r) for r in report.get("results") or [] if isinstance(r, dict))
    for rule_id, recorded in manual.items():
        result = results.get(rule_id)
        if result is None or result.get("status") != "manual":
            raise _error(path, "manual.%s: the report has no manual result of that rule%s" % (
                rule_id, " (its status is %s)" % result.get("status") if result else ""))
        entry = dict(recorded)
        if frame.get("assessors"):
            entry["by"] = "、".join(frame["assessors"])
        if frame.get("assessed_on"):
            entry["at"] = frame["assessed_on"]
        result["manual_verdict"] = entry
    from scanner.render.assessment import annotate
    return annotate(report)


def load(path):
    from scanner.yamlio import load_yaml_file
    return check(load_yaml_file(path), path)


def local_time(utc_text, zone=None):
    """'2026-11-20T02:00:13Z' -> '2026-11-20 10:00:13 (UTC+08:00)'; the input when not a time."""
    zone = zone or DEFAULT_TZ
    minutes = parse_offset(zone)
    if minutes is None or not isinstance(utc_text, str):
        return utc_text
    match = re.match(r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:\.\d+)?(Z|[+-]00:?00)?$", utc_text.strip())
    if not match:
        return utc_text
    moment = datetime.datetime.strptime(match.group(1) + " " + match.group(2), "%Y-%m-%d %H:%M:%S")
    moment += datetime.timedelta(minutes=minutes)
    sign = "-" if minutes < 0 else "+"
    return "%s (UTC%s%02d:%02d)" % (moment.strftime("%Y-%m-%d %H:%M:%S"), sign, abs(minutes) // 60, abs(minutes) % 60)
