"""测评记录: one short sentence per result in the report's language saying what was examined and
what was found ("/etc/login.defs 中 PASS_MAX_DAYS 为 99999，要求不小于 1 且不大于 90"), built from the
result's own data (evidence, expected, items) and the phrases in scanner/locale/records.yaml.

The wording is data: fact labels (exact paths or ``prefix.*`` patterns), nouns for the lists a rule
walks, field labels, operator phrases, value words and sentence templates all live in records.yaml.
A fact without a label is named by its path (an id, never prose); a result this module cannot
phrase (no evidence, a reason that is not about facts) keeps the engine's localized reason."""
from __future__ import absolute_import

import os
import re

from scanner.render import view

_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "locale")
_CACHE = {}
MAX_LISTED = 5        # failing entries named in a list sentence
MAX_VALUES = 8        # elements of a list value shown
MAX_TEXT = 120        # characters of a text value shown

# the operator words the engine writes in `expected` (scanner/engine/checks.py OP_TEXT and op names)
_OPS = ("mode within", "not in", "intersects", "not_empty", "contains", "<=", ">=", "!=", "!~", "in", "<", ">", "=",
        "~", "empty", "true", "false", "exists", "absent")
_OP_RE = "|".join(re.escape(o) for o in _OPS)
_REQUIREMENT_TAIL = re.compile(r" (%s)(?: (.*?))?(?=\) and \(|\)$|$)" % _OP_RE)


def catalog():
    if "doc" not in _CACHE:
        from scanner.yamlio import load_yaml_file
        doc = load_yaml_file(os.path.join(_DIR, "records.yaml")) or {}
        facts, prefixes = {}, []
        for key, pair in (doc.get("facts") or {}).items():
            if key.endswith(".*"):
                prefixes.append((key[:-1], pair))
            else:
                facts[key] = pair
        prefixes.sort(key=lambda kp: -len(kp[0]))
        doc["_facts"], doc["_prefixes"] = facts, prefixes
        exact_values, prefix_values = {}, []
        for key, words in (doc.get("fact_values") or {}).items():
            if key.endswith(".*"):
                prefix_values.append((key[:-1], words))
            else:
                exact_values[key] = words
        prefix_values.sort(key=lambda kp: -len(kp[0]))
        doc["_values"], doc["_value_prefixes"] = exact_values, prefix_values
        _CACHE["doc"] = doc
    return _CACHE["doc"]


def _text(pair, lang, **fields):
    text = view.pick(pair, lang)
    for key, value in fields.items():
        text = text.replace("{%s}" % key, value)
    return text


def _template(name, lang, **fields):
    return _text(catalog()["templates"][name], lang, **fields)


def fact_label(path, lang):
    """'/etc/login.defs 中 PASS_MAX_DAYS' for login_defs.PASS_MAX_DAYS; the path when unknown."""
    cat = catalog()
    if path in cat["_facts"]:
        return _text(cat["_facts"][path], lang)
    for prefix, pair in cat["_prefixes"]:
        if path.startswith(prefix):
            return _text(pair, lang, rest=path[len(prefix):])
    return path


def field_label(field, lang):
    pair = (catalog().get("fields") or {}).get(field)
    return _text(pair, lang) if pair else field


def noun(collection, lang):
    pair = (catalog().get("collections") or {}).get(collection)
    return _text(pair, lang) if pair else _template("entries", lang)


def value_words(value, lang):
    """A fact value as words: 是/否, 未知, 空, lists joined and shortened, long texts cut."""
    words = catalog().get("values") or {}
    if value is True:
        return _text(words["true"], lang)
    if value is False:
        return _text(words["false"], lang)
    if value is None:
        return _text(words["null"], lang)
    if isinstance(value, (list, tuple)):
        if not value:
            return _text(words["empty"], lang)
        shown = [value_words(v, lang) for v in value[:MAX_VALUES]]
        text = ("、" if lang == "zh" else ", ").join(shown)
        if len(value) > MAX_VALUES:
            text += _text(words["more"], lang, count=str(len(value)))
        return text
    if isinstance(value, dict):
        if set(value) <= {"zh", "en"} and value:
            return view.pick(value, lang)
        return ("，" if lang == "zh" else ", ").join(
            "%s %s" % (field_label(view.scalar_text(k), lang), value_words(v, lang)) for k, v in value.items())
    text = view.scalar_text(value)
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT - 1] + "…"


def fact_value_words(path, value, lang):
    """A fact's value as words: the collector's own tokens that records.yaml ``fact_values`` words
    for that fact ("kernel default" -> 内核默认值), else value_words."""
    cat = catalog()
    words = cat["_values"].get(path)
    if words is None:
        words = next((w for prefix, w in cat["_value_prefixes"] if path.startswith(prefix)), None)
    key = view.scalar_text(value) if isinstance(value, str) else None
    if words and key in words:
        return _text(words[key], lang)
    return value_words(value, lang)


def _requirements(expected, path):
    """[(op, value text)] the expected expression states for ``path`` (empty under an ``or``)."""
    expected = view.scalar_text(expected)
    if not expected or " or " in expected or "none of:" in expected:
        return []
    # what re.finditer(r"(?:^|\()PATH (OP)(?: (.*?))?(?=...)") finds, without compiling a pattern per path:
    # each place PATH starts the text or follows "(", matched from there on, never overlapping the last one
    found, end, at = [], 0, expected.find(path)
    while at != -1:
        start = at - 1 if at else 0
        if start >= end and (not at or expected[at - 1] == "("):
            match = _REQUIREMENT_TAIL.match(expected, at + len(path))
            if match:
                found.append((match.group(1), (match.group(2) or "").strip()))
                end = match.end()
        at = expected.find(path, at + 1)
    return found


def _requirement_words(reqs, lang):
    ops = catalog()["ops"]
    words = catalog().get("values") or {}
    parts = []
    for op, value in reqs:
        if op not in ops:
            return ""
        value = value[1:-1] if value.startswith("[") and value.endswith("]") else value
        if value in ("true", "false"):
            value = _text(words[value], lang)
        if len(value) > MAX_TEXT // 2:
            value = value[:MAX_TEXT // 2 - 1] + "…"
        parts.append(_text(ops[op], lang, value=_spaced(value, lang, before=True)))
    return _text(catalog()["templates"]["and"], lang).join(parts)


def _spaced(text, lang, before=False, after=False):
    """In Chinese, a space between a Latin word and the Chinese next to it ("PASS_MAX_DAYS 为 90")."""
    if lang != "zh" or not text:
        return text
    if after and ord(text[-1]) < 128:
        text += " "
    if before and ord(text[0]) < 128:
        text = " " + text
    return text


def _fact_sentence(path, value, expected, lang, label=None, shown=None):
    label = _spaced(label or fact_label(path, lang), lang, after=True)
    shown = _spaced(fact_value_words(path, value, lang) if shown is None else fact_value_words(path, shown, lang),
                    lang, before=True)
    req = _requirement_words(_requirements(expected, path), lang)
    if req:
        return _template("fact_required", lang, label=label, value=shown, requirement=req)
    return _template("fact", lang, label=label, value=shown)


_ITEM_PATH = re.compile(r"^(.*?)\[(.*)\]\.(.+)$")


def _split_evidence(result):
    """(top-level [(path, value)], {collection: {key: [(field, path, value)]}})."""
    top, per_item = [], {}
    for ev in view.as_list(result.get("evidence")):
        if not isinstance(ev, dict) or "fact" not in ev:
            continue
        path = view.scalar_text(ev.get("fact"))
        match = _ITEM_PATH.match(path)
        if match:
            per_item.setdefault(match.group(1), {}).setdefault(match.group(2), []).append(
                (match.group(3), path, ev.get("value")))
        else:
            top.append((path, ev.get("value")))
    return top, per_item


def _items_sentence(result, per_item, lang):
    items = [i for i in view.as_list(result.get("items")) if isinstance(i, dict)]
    if not items:
        return None
    collection = next(iter(per_item), None)
    if collection is None:
        for item in items:
            match = _ITEM_PATH.match(re.sub(r"^\(+", "", view.scalar_text(item.get("expected")).split(" ")[0]))
            if match:
                collection = match.group(1)
                break
    fields = per_item.get(collection, {}) if collection else {}
    name = _spaced(noun(collection, lang) if collection else _template("entries", lang), lang, before=True)
    total = len(items)
    sep = "、" if lang == "zh" else "; "
    sentences = []
    for status, template in (("fail", "items_fail"), ("error", "items_error"), ("manual", "items_manual")):
        bad = [i for i in items if i.get("status") == status]
        if not bad:
            continue
        listed, required = [], []
        for item in bad[:MAX_LISTED]:
            key = view.scalar_text(item.get("key"))
            failing = _failing_paths(item)
            detail = []
            for field, path, value in fields.get(key, []):
                if (failing and path not in failing) or view.scalar_text(value) == key:
                    continue
                label = field_label(field, lang)
                detail.append(_template("fact", lang, label=_spaced(label, lang, after=True),
                                        value=_spaced(value_words(value, lang), lang, before=True)))
                req = _requirement_words(_requirements(item.get("expected"), path), lang)
                if req:
                    req = _template("field_required", lang, label=_spaced(label, lang, after=True), requirement=req)
                    if req not in required:
                        required.append(req)
            listed.append(_template("item_detail", lang, key=key, detail=("，" if lang == "zh" else ", ").join(detail))
                          if detail else key)
        text = sep.join(listed)
        if len(bad) > MAX_LISTED:
            text += _template("and_more", lang, count=str(len(bad)))
        if required:
            text += _template("requirements", lang, list=("；" if lang == "zh" else "; ").join(required))
        sentences.append(_template(template, lang, total=str(total), count=str(len(bad)), noun=name, list=text))
    if not sentences:
        passed = sum(1 for i in items if i.get("status") == "pass")
        if passed == total:
            return _template("items_pass", lang, total=str(total), noun=name)
        return _template("items_checked", lang, total=str(total), noun=name, count=str(passed))
    return _template("sentence_join", lang).join(sentences)


def record(result, lang="en"):
    """The 测评记录 of one result (text in ``lang``)."""
    status = view.scalar_text(result.get("status"))
    reason = view.pick(result.get("reason"), lang) if result.get("reason") else ""
    if status == "manual":
        recorded = result.get("manual_verdict") if isinstance(result.get("manual_verdict"), dict) else None
        if recorded and recorded.get("verdict") in ("pass", "fail", "partial", "not_applicable"):
            verdict = _text(catalog()["manual_verdicts"][recorded["verdict"]], lang)
            text = _template("manual_recorded", lang, verdict=verdict,
                             who=view.scalar_text(recorded.get("by")) or "-", when=view.scalar_text(recorded.get("at")) or "-")
            if recorded.get("note"):
                text += _template("sentence_join", lang) + view.scalar_text(recorded.get("note"))
            return text
        return _template("manual", lang, what=reason) if reason else _template("manual_bare", lang)
    if status in ("not_applicable", "error"):
        return _template(status, lang, why=_unjudged_reason(result, lang))
    components = any(isinstance(i, dict) and "category" in i for i in view.as_list(result.get("items")))
    if _is_prose(result) and (components or not result.get("items")):
        return reason
    top, per_item = _split_evidence(result)
    parts = [_fact_sentence(path, value, result.get("expected"), lang) for path, value in top]
    if not top and not per_item:
        parts = [_fact_sentence(path, None, result.get("expected"), lang, shown=shown)
                 for path, shown in _reason_facts(result)]
    if not result.get("items"):
        for collection in re.findall(r"\beach ([\w.]+)", view.scalar_text(result.get("expected"))):
            parts.append(_template("none_in_scope", lang, noun=noun(collection, lang)))
    items = _items_sentence(result, per_item, lang)
    if items:
        parts.append(items)
    if not parts:
        return reason or _template("nothing", lang)
    unique = []
    for part in parts:          # alternatives of an any/or read the same fact twice
        if part not in unique:
            unique.append(part)
    text = _template("sentence_join", lang).join(unique)
    if view.scalar_text(result.get("status")) == "fail" and not result.get("items"):
        either = _alternatives_words(result.get("expected"), lang)
        if either:
            text += _template("alternatives", lang, list=either)
    return text


def _split_top(text, joiner):
    """``(a) JOINER (b) JOINER (c)`` -> [a, b, c] at parenthesis depth 0; None when the text is not that."""
    text = text.strip()
    parts, depth, start, i = [], 0, 0, 0
    while i < len(text):
        ch = text[i]
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif depth == 0 and text.startswith(joiner, i):
            parts.append(text[start:i])
            start = i + len(joiner)
            i = start
            continue
        i += 1
    parts.append(text[start:])
    if len(parts) < 2 or not all(p.startswith("(") and p.endswith(")") for p in parts):
        return None
    return [p[1:-1] for p in parts]


def _clause_words(clause, lang):
    """'path op value' as '{label}{requirement}', or '' when the clause is not that simple shape."""
    path = clause.split(" ")[0]
    if "(" in clause or not re.match(r"^[\w.\[\]/-]+$", path):
        return ""
    reqs = _requirements(clause, path)
    words = _requirement_words(reqs, lang) if len(reqs) == 1 else ""
    if not words:
        return ""
    return _template("field_required", lang, label=_spaced(fact_label(path, lang), lang, after=True), requirement=words)


def _alternatives_words(expected, lang):
    """The requirement of a rule satisfied by any of several conditions, each in words
    ("日志外发为是；或审计记录外发不为空"); '' unless every condition is a fact compared with a value
    (or several, all required)."""
    branches = _split_top(view.scalar_text(expected), " or ")
    if not branches:
        return ""
    out = []
    for branch in branches:
        clauses = _split_top(branch, " and ") or [branch]
        words = [_clause_words(c, lang) for c in clauses]
        if not all(words):
            return ""
        out.append(_joined(words, _template("and", lang), lang))
    return _joined(out, _text(catalog()["templates"]["or"], lang), lang)


def _joined(words, joiner, lang):
    return joiner.join([words[0]] + [_spaced(w, lang, before=True) if joiner[-1] != " " else w for w in words[1:]])


_WHEN_EN = re.compile(r"^does not apply: (.+) is not met \(found (.*)\)$")
# a fact path inside an engine reason ("sockets", "audit.conf.write_logs"), not part of a file path
_FACT_TOKEN = re.compile(r"(?<![\w./\[\]-])([a-z_][a-z0-9_]*(?:\.[a-z0-9_]+)*)(?![\w/\[\]-]|\.\w)")
# the engine's "{path} is unknown (null)" / "{path} 未知（null）" and "{path} 未知：why" (scanner/locale)
_UNKNOWN = {"zh": re.compile(u"(\\S+) 未知(?:（null）|(?=：))"), "en": re.compile(r"(\S+) is unknown(?: \(null\)|(?=:))")}
_PUNCT = u"（）：；，、。"
_CJK_GAP = re.compile(u"(?<=[\u4e00-\u9fff%s]) +(?=[\u4e00-\u9fff%s])" % (_PUNCT, _PUNCT))


def _unjudged_reason(result, lang):
    """Why a rule did not apply or could not be judged, as the record says it: the engine's reason
    with the facts named as records.yaml names them (zh), an applicability condition phrased from
    the fact it read ("已安装 sshd 为否，不满足适用条件（已安装 sshd 为是）"), an unknown value said in
    words (no "(null)"), no repeated "不适用：" and no clause said twice."""
    en = view.pick(result.get("reason"), "en") if result.get("reason") else ""
    reason = view.pick(result.get("reason"), lang) if result.get("reason") else ""
    when = _WHEN_EN.match(en)
    if when:
        condition, found = when.group(1), when.group(2)
        path = condition.split(" ")[0]
        values = dict((view.scalar_text(ev.get("fact")), ev.get("value")) for ev in view.as_list(result.get("evidence"))
                      if isinstance(ev, dict) and "fact" in ev)
        label = fact_label(path, lang)
        if path in values:
            seen = _fact_sentence(path, values[path], None, lang)
        elif found == "absent":
            seen = _template("fact_absent", lang, label=_spaced(label, lang, after=True))
        else:
            seen = _fact_sentence(path, None, None, lang, shown=found)
        requirement = _requirement_words(_requirements(condition, path), lang)
        if requirement:
            return _template("condition_unmet", lang, found=seen, condition=_template(
                "field_required", lang, label=_spaced(label, lang, after=True), requirement=requirement))
        return seen
    if view.scalar_text(result.get("status")) == "error" and result.get("items"):
        items = _items_sentence(result, _split_evidence(result)[1], lang)
        if items:
            return items
    prefix = _text(catalog()["templates"]["not_applicable"], lang).split("{why}")[0]
    while prefix and reason.startswith(prefix):
        reason = reason[len(prefix):]
    reason = _UNKNOWN[lang if lang in _UNKNOWN else "en"].sub(
        lambda m: _template("unknown", lang, label=_spaced(fact_label(m.group(1), lang), lang, after=True)), reason)
    if lang == "zh":
        lists = catalog().get("collections") or {}
        reason = _FACT_TOKEN.sub(lambda m: noun(m.group(1), "zh") if m.group(1) in lists
                                 else fact_label(m.group(1), "zh"), reason)
        reason = _CJK_GAP.sub("", reason)
    joiner = _template("sentence_join", lang)
    parts = []
    for part in reason.split(joiner):
        part = re.sub(u"(：|: )-$", "", part)      # a collector status without a reason
        if not parts or part != parts[-1]:        # the same clause twice in a row (alternatives of a check)
            parts.append(part)
    return joiner.join(parts)


def _failing_paths(item):
    """The fact paths an entry's reason says did not match ('path = value; expected ...')."""
    en = view.pick(item.get("reason"), "en") if item.get("reason") else ""
    return set(re.findall(r"(?:^|; )(\S+) = [^;]*; expected ", en))


_REASON_FACT = re.compile(r"(?:^|; )([\w.]+) = (.*?)(?=, as required \(|; expected |$)")


def _reason_facts(result):
    """[(path, value text)] from an engine reason 'path = value; expected ...' (facts read with a
    default leave no evidence entry)."""
    en = view.pick(result.get("reason"), "en") if result.get("reason") else ""
    return [(m.group(1), m.group(2)) for m in _REASON_FACT.finditer(en)]


def _is_prose(result):
    """True when the reason is already a sentence (inventory, localization), not 'path = value'."""
    en = view.pick(result.get("reason"), "en") if result.get("reason") else ""
    return bool(en) and not re.search(r"[\w\]]+ = |\bexpected\b|\bis (?:not )?present\b", en)
