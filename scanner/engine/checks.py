"""The closed check vocabulary: evaluation and validation.

A check is a mapping whose shape names its type:

* comparison   ``{fact: path, op: OP, value: V, split: ",", ignore_case: true,
                  default: V, on_missing: error|fail|not_applicable}``
* combinators  ``{all: [...]}``, ``{any: [...]}``, ``{none: [...]}``, ``{not: check}``
* per item     ``{for_each: path, key: field, where: check, assert: check,
                  if_empty: not_applicable|pass|fail|error, on_missing: ...}``
* inventory    ``{components: {category: [...], origin: foreign, product: [...]},
                  expect: none|any, if_none: not_applicable|pass|fail|error}``
* localization ``{localization_rate: overall | {category: cpu}, min: V}``
* manual       ``{manual: {zh: ..., en: ...}}``

Evaluation returns an outcome dict: status (pass|fail|error|not_applicable|manual),
expected, actual, reason ({zh, en}) and, for per-item checks, items.
"""
from __future__ import absolute_import

from scanner.engine import env as envmod
from scanner.engine.ops import OPS, PRESENCE_OPS, VALUELESS_OPS, OpError
from scanner.engine.text import reason, short
from scanner.formula_text import expected_zh, scope_zh
from scanner.i18n import t

PASS, FAIL, ERROR, NA, MANUAL = "pass", "fail", "error", "not_applicable", "manual"
MISSING_STATUSES = (ERROR, FAIL, NA)
IF_EMPTY_STATUSES = (NA, PASS, FAIL, ERROR)
MAX_ITEMS = 200

COMPARISON_KEYS = ("fact", "op", "value", "split", "ignore_case", "default", "on_missing", "label")
FOR_EACH_KEYS = ("for_each", "key", "where", "assert", "if_empty", "on_missing", "label")
COMPONENTS_KEYS = ("components", "expect", "if_none", "label")
COMPONENT_FILTER_KEYS = ("category", "origin", "product")
LOCALIZATION_KEYS = ("localization_rate", "min", "label")
# How an operator reads in expected-value texts.
OP_TEXT = {"eq": "=", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">=", "in": "in", "not_in": "not in",
           "regex": "~", "not_regex": "!~", "mode_within": "mode within", "intersects": "intersects"}
CHECK_TYPES = ("fact", "all", "any", "none", "not", "for_each", "components", "localization_rate", "manual")


def outcome(status, expected=None, actual=None, why=None, items=None):
    out = {"status": status, "expected": expected, "actual": actual, "reason": why}
    if items is not None:
        out["items"] = items
    return out


def check_type(check):
    if not isinstance(check, dict):
        return None
    for name in CHECK_TYPES:
        if name in check:
            return name
    return None


# ---------------------------------------------------------------- evaluation
def evaluate_check(check, env):
    kind = check_type(check)
    if kind == "fact":
        return _comparison(check, env)
    if kind in ("all", "any", "none"):
        return _combinator(kind, check[kind], env)
    if kind == "not":
        inner = evaluate_check(check["not"], env)
        flipped = {PASS: FAIL, FAIL: PASS}.get(inner["status"], inner["status"])
        return outcome(flipped, "not (%s)" % inner["expected"], inner["actual"],
                       inner["reason"], inner.get("items"))
    if kind == "for_each":
        return _for_each(check, env)
    if kind == "components":
        return _components(check, env)
    if kind == "localization_rate":
        return _localization(check, env)
    if kind == "manual":
        return outcome(MANUAL, None, None, _pair(check["manual"]))
    return outcome(ERROR, None, None, reason("scan.reason.bad_check", check=short(check)))


def _pair(text):
    if isinstance(text, dict):
        return {"zh": text.get("zh") or text.get("en") or "", "en": text.get("en") or text.get("zh") or ""}
    return {"zh": str(text), "en": str(text)}


def _missing(check, miss, expected):
    if miss.kind == envmod.MISS_NOT_COLLECTED:
        return outcome(NA, expected, None, miss.reason)
    if miss.kind in envmod.COLLECTOR_LEVEL:
        return outcome(ERROR, expected, None, miss.reason)
    status = check.get("on_missing", ERROR)
    return outcome(status, expected, None, miss.reason)


def _comparison(check, env):
    path, op = check["fact"], check["op"]
    shown = env.display_path(path)
    try:
        value = env.value(check.get("value"))
    except KeyError as exc:
        return outcome(ERROR, None, None, reason("scan.reason.no_param", param=exc.args[0]))
    if env.terse:
        expected = None
    else:
        expected = check.get("label") or ("%s %s" % (shown, op) if op in VALUELESS_OPS
                                          else "%s %s %s" % (shown, OP_TEXT.get(op, op), short(value)))
    actual, miss = env.resolve(path)
    if miss is not None and miss.kind in (envmod.MISS_ABSENT, envmod.MISS_NULL) and "default" in check:
        actual, miss = check["default"], None
    if op in PRESENCE_OPS:
        if miss is not None and miss.kind in envmod.COLLECTOR_LEVEL:
            return _missing(check, miss, expected)
        present = miss is None
        ok = present if op == "exists" else not present
        return outcome(PASS if ok else FAIL, expected, short(actual) if present else "absent",
                       reason("scan.reason.present" if present else "scan.reason.not_present", path=shown))
    if miss is not None:
        return _missing(check, miss, expected)
    try:
        ok, detail = OPS[op](actual, value, check)
    except OpError as exc:
        return outcome(ERROR, expected, short(actual), reason("scan.reason.type", path=shown, why=str(exc)))
    if env.terse:
        return outcome(PASS if ok else FAIL)
    shown_actual = short(actual)
    if detail:
        shown_actual = "%s (%s)" % (shown_actual, detail)
    return outcome(PASS if ok else FAIL, expected, shown_actual,
                   reason("scan.reason.ok" if ok else "scan.reason.mismatch", path=shown,
                          actual=short(actual, 80), expected=expected, expected_zh=expected_zh(expected)))


def _combinator(kind, children, env):
    outs = [evaluate_check(c, env) for c in children]
    statuses = [o["status"] for o in outs]
    if kind == "all":
        order = (FAIL, ERROR, MANUAL, PASS)
    elif kind == "any":
        order = (PASS, ERROR, MANUAL, FAIL)
    else:  # none: pass when no child passes
        order = (PASS, ERROR, MANUAL, FAIL)
    status = NA
    chosen = None
    for st in order:
        if st in statuses:
            status = st
            chosen = [o for o in outs if o["status"] == st]
            break
    if kind == "none" and status in (PASS, FAIL):
        status = FAIL if status == PASS else PASS
    joiner = {"all": " and ", "any": " or ", "none": " nor "}[kind]
    expected = joiner.join("(%s)" % o["expected"] for o in outs if o["expected"])
    if kind == "none":
        expected = "none of: " + expected
    if chosen is None:
        chosen = outs
    actual = "; ".join(o["actual"] for o in chosen if o.get("actual")) or None
    why = _join_reasons([o["reason"] for o in chosen if o.get("reason")])
    items = None
    for o in chosen:
        if o.get("items"):
            items = (items or []) + o["items"]
    return outcome(status, expected, actual, why, items)


def _join_reasons(reasons):
    if not reasons:
        return None
    if len(reasons) == 1:
        return reasons[0]
    return {"zh": "；".join(r["zh"] for r in reasons[:4]), "en": "; ".join(r["en"] for r in reasons[:4])}


def _item_key(item, key, index):
    if isinstance(item, dict):
        if key and item.get(key) is not None:
            return short(item.get(key), 80)
        for k in ("name", "id", "path", "product_id"):
            if item.get(k) is not None:
                return short(item[k], 80)
    elif item is not None and not isinstance(item, list):
        return short(item, 80)
    return str(index)


def _aggregate(item_statuses):
    for st in (FAIL, ERROR, MANUAL, PASS):
        if st in item_statuses:
            return st
    return NA


def _for_each(check, env):
    path = check["for_each"]
    shown = env.display_path(path)
    expected = check.get("label") or "each %s" % shown
    seq, miss = env.resolve(path, record=False)  # the items carry the per-item evidence
    if miss is not None:
        return _missing(check, miss, expected)
    if isinstance(seq, dict):
        seq = [dict(v, _key=k) if isinstance(v, dict) else {"_key": k, "value": v} for k, v in seq.items()]
    if not isinstance(seq, list):
        return outcome(ERROR, expected, short(seq), reason("scan.reason.not_list", path=shown))
    items = []
    statuses = []
    quick = _quick_where(check, env) if seq and "where" in check else None
    for index, item in enumerate(seq):
        selected = _quick_select(quick, item) if quick is not None else None
        if selected is False:
            continue
        env.items.append((path if not env.items else env.display_path(path), item,
                          _item_key(item, check.get("key"), index)))
        try:
            if "where" in check and selected is None:
                terse, env.terse = env.terse, True
                try:
                    sel = evaluate_check(check["where"], env)
                finally:
                    env.terse = terse
                if sel["status"] != PASS:
                    continue
            res = evaluate_check(check["assert"], env) if "assert" in check else outcome(PASS)
        finally:
            key = env.items.pop()[2]
        statuses.append(res["status"])
        if len(items) < MAX_ITEMS:
            entry = {"key": key, "status": res["status"], "expected": res["expected"], "actual": res["actual"],
                     "reason": res["reason"]}
            if res.get("items"):
                entry["items"] = res["items"]
            items.append(entry)
    if not statuses:
        status = check.get("if_empty", NA)
        if seq and "where" in check:
            why = reason("scan.reason.no_items_in_scope", path=shown, total=len(seq))
        else:
            why = reason("scan.reason.no_items", path=shown)
        return outcome(status, expected, "0 items", why, [])
    status = _aggregate(statuses)
    bad = [i for i in items if i["status"] == status]
    if status == PASS:
        why = reason("scan.reason.items_pass", count=len(statuses))
    else:
        why = reason("scan.reason.items_" + status, count=statuses.count(status), total=len(statuses),
                     keys=", ".join(i["key"] for i in bad[:8]))
    return outcome(status, expected, "%d/%d %s" % (statuses.count(status), len(statuses), status), why, items)


def _quick_where(check, env):
    """For a ``where`` that compares one field of each item with a fixed value (the usual filter:
    ``{fact: name, op: in, value: [...]}``): (field, operator, value, where), so most items are
    rejected without the general evaluation; None for any other filter."""
    where = check["where"]
    if not isinstance(where, dict) or check_type(where) != "fact" or "default" in where:
        return None
    field, op = where.get("fact"), where.get("op")
    if not isinstance(field, str) or "." in field or field.startswith("$") or op in PRESENCE_OPS or op not in OPS:
        return None
    try:
        value = env.value(where.get("value"))
    except Exception:  # a missing param (or a bad one): the general evaluation says what
        return None
    texts = None
    if op == "in" and isinstance(value, list) and all(isinstance(v, str) for v in value) \
            and not where.get("split") and not where.get("ignore_case"):
        texts = frozenset(value)  # what ops.op_in decides for a text: membership in the texts
    return field, OPS[op], value, where, texts


def _quick_select(quick, item):
    """True / False when the quick filter decides ``item`` as the general terse evaluation would
    (a present, non-null field: PASS exactly when the operator holds); None to evaluate it in full."""
    field, op, value, where, texts = quick
    if not isinstance(item, dict):
        return None
    actual = item.get(field)
    if actual is None:
        return None  # absent or null: the general path names the miss (on_missing)
    if texts is not None and isinstance(actual, str):
        return actual in texts
    try:
        ok, _detail = op(actual, value, where)
    except OpError:
        return False  # the general path: error, not selected
    return bool(ok)


def _component_matches(comp, flt):
    for field, comp_key in (("category", "category"), ("origin", "origin"), ("product", "product_id")):
        want = flt.get(field)
        if want is None:
            continue
        want = want if isinstance(want, list) else [want]
        if comp.get(comp_key) not in want:
            return False
    return True


def _substitutes(comp, env):
    out = []
    for sid in comp.get("substitutes") or []:
        prod = env.catalog.get(sid) if env.catalog is not None else None
        out.append({"id": sid, "name": dict(prod["name"]) if prod else {"zh": sid, "en": sid}})
    return out


def _components(check, env):
    flt = check["components"] or {}
    expect = check.get("expect", "none")
    desc = ", ".join("%s=%s" % (k, "|".join(v) if isinstance(v, list) else v) for k, v in sorted(flt.items()))
    expected = check.get("label") or ("no component with %s" % desc if expect == "none"
                                      else "a component with %s" % desc)
    if env.inventory is None or not isinstance(env.inventory.get("components"), list):
        return outcome(ERROR, expected, None, reason("scan.reason.no_inventory"))
    comps = env.inventory["components"]
    cats = flt.get("category")
    cats = cats if isinstance(cats, list) else ([cats] if cats else None)
    in_scope = [c for c in comps if cats is None or c.get("category") in cats]
    matches = [c for c in comps if _component_matches(c, flt)]
    env.record("inventory.components", ["%s (%s)" % (c.get("product_id") or (c.get("name") or {}).get("en"),
                                                     c.get("origin")) for c in in_scope])
    if not in_scope:
        status = check.get("if_none", NA)
        return outcome(status, expected, "0 components",
                       reason("scan.reason.no_components", categories=", ".join(cats or ["*"]),
                              categories_zh="、".join(t("category.%s" % c, "zh") for c in cats or ["*"])))
    items = []
    for comp in matches:
        name = comp.get("name") or {}
        label = name.get("en") or comp.get("product_id") or "?"
        if comp.get("version"):
            label = "%s %s" % (label, comp["version"])
        subs = _substitutes(comp, env)
        items.append({
            "key": comp.get("product_id") or label,
            "status": FAIL if expect == "none" else PASS,
            "category": comp.get("category"),
            "actual": label,
            "expected": expected,
            "substitutes": subs,
            "reason": reason("scan.reason.component_substitutes" if subs else "scan.reason.component_found",
                             name_zh=name.get("zh") or label, name=label,
                             category=t("category.%s" % comp.get("category"), "en"),
                             category_zh=t("category.%s" % comp.get("category"), "zh"),
                             subs_zh="、".join(s["name"]["zh"] for s in subs),
                             subs=", ".join(s["name"]["en"] for s in subs)),
        })
    if expect == "none":
        if len(items) == 1:
            return outcome(FAIL, expected, items[0]["actual"], items[0]["reason"], items)
        if items:
            return outcome(FAIL, expected, ", ".join(i["actual"] for i in items),
                           reason("scan.reason.components_many", count=len(items),
                                  names=", ".join(i["actual"] for i in items)), items)
        return outcome(PASS, expected, "%d component(s), none matching" % len(in_scope),
                       reason("scan.reason.no_matching_components", count=len(in_scope)), [])
    if items:
        return outcome(PASS, expected, ", ".join(i["actual"] for i in items), items[0]["reason"], items)
    return outcome(FAIL, expected, "%d component(s), none matching" % len(in_scope),
                   reason("scan.reason.no_matching_components", count=len(in_scope)), [])


def _localization(check, env):
    spec = check["localization_rate"]
    try:
        minimum = env.value(check.get("min"))
    except KeyError as exc:
        return outcome(ERROR, None, None, reason("scan.reason.no_param", param=exc.args[0]))
    scope = "overall" if spec in (None, "overall") else spec.get("category")
    expected = check.get("label") or "localization rate (%s) >= %s" % (scope, short(minimum))
    if env.inventory is None or not isinstance(env.inventory.get("localization"), dict):
        return outcome(ERROR, expected, None, reason("scan.reason.no_inventory"))
    loc = env.inventory["localization"]
    node = loc if scope == "overall" else (loc.get("by_category") or {}).get(scope)
    rate = node.get("rate") if isinstance(node, dict) else None
    env.record("inventory.localization" + ("" if scope == "overall" else ".by_category." + scope),
               node if isinstance(node, dict) else None)
    if rate is None:
        return outcome(NA, expected, None, reason("scan.reason.no_rate", scope=scope, scope_zh=scope_zh(scope)))
    try:
        ok = float(rate) >= float(minimum)
    except (TypeError, ValueError):
        return outcome(ERROR, expected, short(rate), reason("scan.reason.type", path="min", why="not a number"))
    actual = "%.1f%% (%s domestic, %s foreign, %s unknown)" % (
        float(rate) * 100, node.get("domestic", 0), node.get("foreign", 0), node.get("unknown", 0))
    return outcome(PASS if ok else FAIL, expected, actual,
                   reason("scan.reason.rate_ok" if ok else "scan.reason.rate_low", scope=scope, scope_zh=scope_zh(scope),
                          rate="%.1f%%" % (float(rate) * 100), minimum="%.1f%%" % (float(minimum) * 100)))


# ---------------------------------------------------------------- validation
def validate_check(check, where, params, problems, fact_paths, list_prefix=None):
    """Append (where, message) problems for ``check``; collect fact paths used.

    ``where`` is a tuple of keys/indexes locating the check inside the rule
    document; ``fact_paths`` gets (where, absolute pattern path) pairs.
    """
    if not isinstance(check, dict):
        problems.append((where, "a check must be a mapping, got %s" % type(check).__name__))
        return
    kind = check_type(check)
    if kind is None:
        problems.append((where, "unknown check type (keys: %s); expected one of: %s" % (
            ", ".join(sorted(str(k) for k in check)) or "none", ", ".join(CHECK_TYPES))))
        return

    def allowed(keys):
        for k in check:
            if k not in keys:
                problems.append((where + (k,), "unknown key %r in a %r check; allowed: %s" % (
                    k, kind, ", ".join(keys))))

    def path_of(p, sub):
        if not isinstance(p, str) or not p or " " in p:
            problems.append((where + (sub,), "a fact path must be a dotted name, got %r" % (p,)))
            return None
        if p.startswith("$.") or list_prefix is None:
            return p[2:] if p.startswith("$.") else p
        return list_prefix + "[]." + p

    def value_ok(v, sub):
        if isinstance(v, dict) and len(v) == 1 and "param" in v:
            if v["param"] not in params:
                problems.append((where + (sub,), "unknown param %r; declare it under 'params'" % v["param"]))
        elif isinstance(v, dict) and len(v) == 1 and "now" in v:
            if isinstance(v["now"], dict) and set(v["now"]) == {"param"}:
                value_ok(v["now"], sub)
            elif isinstance(v["now"], bool) or not isinstance(v["now"], (int, float)):
                problems.append((where + (sub,), "{now: DAYS} needs a number of days (or {param: name})"))
        elif isinstance(v, list):
            for i, x in enumerate(v):
                value_ok(x, sub)

    if kind == "fact":
        allowed(COMPARISON_KEYS)
        full = path_of(check["fact"], "fact")
        if full:
            fact_paths.append((where + ("fact",), full))
        op = check.get("op")
        if op not in OPS:
            problems.append((where + ("op",), "unknown op %r; expected one of: %s" % (op, " ".join(sorted(OPS)))))
        elif op in VALUELESS_OPS:
            if "value" in check:
                problems.append((where + ("value",), "op %r takes no value" % op))
        elif "value" not in check:
            problems.append((where, "op %r needs a value" % op))
        else:
            value_ok(check["value"], "value")
            if op in ("in", "not_in", "intersects") and not isinstance(check["value"], list) and not (
                    isinstance(check["value"], dict) and "param" in check["value"]):
                problems.append((where + ("value",), "op %r needs a list value" % op))
            if op in ("regex", "not_regex"):
                import re
                try:
                    re.compile(check["value"])
                except (re.error, TypeError) as exc:
                    problems.append((where + ("value",), "invalid regular expression: %s" % exc))
        if check.get("on_missing", ERROR) not in MISSING_STATUSES:
            problems.append((where + ("on_missing",), "on_missing must be one of %s" % ", ".join(MISSING_STATUSES)))
        if "split" in check and not isinstance(check["split"], str):
            problems.append((where + ("split",), "split must be a separator string"))
    elif kind in ("all", "any", "none"):
        allowed((kind, "label"))
        children = check[kind]
        if not isinstance(children, list) or not children:
            problems.append((where + (kind,), "%r needs a non-empty list of checks" % kind))
            return
        for i, child in enumerate(children):
            validate_check(child, where + (kind, i), params, problems, fact_paths, list_prefix)
    elif kind == "not":
        allowed(("not", "label"))
        validate_check(check["not"], where + ("not",), params, problems, fact_paths, list_prefix)
    elif kind == "for_each":
        allowed(FOR_EACH_KEYS)
        full = path_of(check["for_each"], "for_each")
        if full:
            fact_paths.append((where + ("for_each",), full))
        if "assert" not in check:
            problems.append((where, "for_each needs an 'assert' check"))
        if check.get("if_empty", NA) not in IF_EMPTY_STATUSES:
            problems.append((where + ("if_empty",), "if_empty must be one of %s" % ", ".join(IF_EMPTY_STATUSES)))
        if check.get("on_missing", ERROR) not in MISSING_STATUSES:
            problems.append((where + ("on_missing",), "on_missing must be one of %s" % ", ".join(MISSING_STATUSES)))
        for sub in ("where", "assert"):
            if sub in check:
                validate_check(check[sub], where + (sub,), params, problems, fact_paths, full or "?")
    elif kind == "components":
        allowed(COMPONENTS_KEYS)
        flt = check["components"]
        if not isinstance(flt, dict):
            problems.append((where + ("components",), "components needs a filter mapping"))
        else:
            from scanner.catalog import CATEGORIES, ORIGINS
            for k, v in flt.items():
                if k not in COMPONENT_FILTER_KEYS:
                    problems.append((where + ("components", k), "unknown component filter %r; allowed: %s" % (
                        k, ", ".join(COMPONENT_FILTER_KEYS))))
                    continue
                vals = v if isinstance(v, list) else [v]
                known = {"category": CATEGORIES, "origin": ORIGINS}.get(k)
                for x in vals:
                    if known and x not in known:
                        problems.append((where + ("components", k), "unknown %s %r; expected one of: %s" % (
                            k, x, ", ".join(known))))
        if check.get("expect", "none") not in ("none", "any"):
            problems.append((where + ("expect",), "expect must be 'none' or 'any'"))
        if check.get("if_none", NA) not in IF_EMPTY_STATUSES:
            problems.append((where + ("if_none",), "if_none must be one of %s" % ", ".join(IF_EMPTY_STATUSES)))
    elif kind == "localization_rate":
        allowed(LOCALIZATION_KEYS)
        spec = check["localization_rate"]
        if not (spec in (None, "overall") or (isinstance(spec, dict) and set(spec) == {"category"})):
            problems.append((where + ("localization_rate",), "localization_rate is 'overall' or {category: NAME}"))
        if "min" not in check:
            problems.append((where, "localization_rate needs 'min'"))
        else:
            value_ok(check["min"], "min")
    elif kind == "manual":
        allowed(("manual",))
        text = check["manual"]
        if not (isinstance(text, dict) and text.get("zh") and text.get("en")):
            problems.append((where + ("manual",), "manual needs {zh: ..., en: ...} saying what the assessor checks"))
