"""Rule files: loading, validation and the compiled cache.

One YAML file per rule under ``rules/checks/<area>/``. The area is the
directory name. Validation problems carry the file and, where the YAML can be
located, the line (scanner.engine.yamlpos).

Loading ~150 YAML files costs tens of milliseconds, so the validated rules are
kept in one JSON bundle in a user cache directory, keyed by every rule file's
path, size and mtime and the engine version; any problem with the cache falls
back silently to parsing the files. A loaded rule set never carries the rules'
embedded test cases (a quarter of the bundle, which a scan never reads):
``xcscan rules test`` and the tests read them from the rule file
(scanner.engine.selftest.rule_tests).
"""
from __future__ import absolute_import

import hashlib
import os
import re

from scanner.engine import CATEGORIES, SEVERITIES
from scanner.errors import DataError

ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*(\.[a-z0-9][a-z0-9_-]*)+$")
RULE_KEYS = ("id", "title", "description", "rationale", "category", "severity", "refs", "applies_to", "levels",
             "params", "check", "remediation", "tests", "evidence_facts", "fix")
REQUIRED = ("id", "title", "category", "severity", "check", "remediation", "tests")
REF_KEYS = ("gbt22239", "gbt28448", "gbt39786", "cac", "cis", "dsl", "csl", "note")
APPLIES_KEYS = ("os_family", "live", "arch", "when")
OS_FAMILIES = ("rhel", "debian", "suse")
TEST_KEYS = ("pass", "fail", "error", "not_applicable", "manual")
CASE_KEYS = ("facts", "inventory", "params", "live", "now", "note")
ENGINE_VERSION = "3"   # 2: the bundle holds no test cases; 3: the fact names each rule reads
LEVELLED_AREAS = ("mlps",)


class Rule(dict):
    """A validated rule: the YAML mapping plus ``area`` and ``source``."""

    @property
    def id(self):
        return self["id"]


class RuleSet(object):
    def __init__(self, rules, directory, fact_names=None):
        self.rules = rules            # list of Rule, sorted by id
        self.by_id = dict((r["id"], r) for r in rules)
        self.directory = directory
        # rule id -> the top-level fact names it reads (engine.facts_read), kept with the rules cache
        self.fact_names = fact_names if fact_names is not None else {}

    def __iter__(self):
        return iter(self.rules)

    def __len__(self):
        return len(self.rules)

    def get(self, rule_id):
        return self.by_id.get(rule_id)


class RuleProblem(object):
    __slots__ = ("path", "line", "message")

    def __init__(self, path, line, message):
        self.path, self.line, self.message = path, line, message

    def __str__(self):
        return self.text("en")

    def text(self, lang="en"):
        """``path:line: message`` in ``lang``: the message is one of this module's or checks.py's texts
        (their Chinese is in scanner/locale/errors.zh.yaml) or a DataError of a file it names."""
        loc = "%s:%d" % (self.path, self.line) if self.line else self.path
        message = self.message
        if isinstance(message, Exception):
            if lang == "zh":
                from scanner.i18n import error_text
                return error_text(message, lang)   # it names its file (and line) itself
            return str(message)
        if lang == "zh":
            from scanner.i18n import error_part
            message = error_part(message, lang)
        return "%s%s%s" % (loc, "：" if lang == "zh" else ": ", message)


def checks_dir(directory=None):
    if directory:
        return directory
    from scanner.paths import rules_dir
    return os.path.join(rules_dir(), "checks")


def rule_files(directory):
    """rules/checks/<area>/*.yaml (also a single file, or a flat directory of rules)."""
    if os.path.isfile(directory):
        return [directory]
    out = []
    for dirpath, dirnames, filenames in os.walk(directory):
        dirnames.sort()
        for name in sorted(filenames):
            if name.endswith((".yaml", ".yml")) and not name.startswith("."):
                out.append(os.path.join(dirpath, name))
    return out


def area_of(path, directory):
    rel = os.path.relpath(path, directory) if os.path.isdir(directory) else os.path.basename(path)
    parts = rel.split(os.sep)
    return parts[0] if len(parts) > 1 else os.path.basename(os.path.dirname(os.path.abspath(path)))


# ------------------------------------------------------------------ validation
def _pair_problem(value, field):
    if isinstance(value, dict) and value.get("zh") and value.get("en") and set(value) <= {"zh", "en"}:
        return None
    return "%r must be a mapping with non-empty 'zh' and 'en'" % field


def validate_rule(doc, registry=None):
    """Return a list of (where-tuple, message) problems for a rule document."""
    from scanner.engine.checks import validate_check
    problems = []
    if not isinstance(doc, dict):
        return [((), "a rule file must hold one mapping (the rule), got %s" % type(doc).__name__)]
    for key in doc:
        if key not in RULE_KEYS:
            problems.append(((key,), "unknown field %r; allowed: %s" % (key, ", ".join(RULE_KEYS))))
    for key in REQUIRED:
        if key not in doc:
            problems.append(((), "missing required field %r" % key))
    rid = doc.get("id")
    if "id" in doc and not (isinstance(rid, str) and ID_RE.match(rid)):
        problems.append((("id",), "id must be dotted lowercase words such as 'crypto.ssh.weak-ciphers', got %r" % (rid,)))
    for field in ("title", "remediation", "description", "rationale"):
        if field in doc:
            msg = _pair_problem(doc[field], field)
            if msg:
                problems.append(((field,), msg))
    if "category" in doc and doc["category"] not in CATEGORIES:
        problems.append((("category",), "category must be one of %s" % ", ".join(CATEGORIES)))
    if "severity" in doc and doc["severity"] not in SEVERITIES:
        problems.append((("severity",), "severity must be one of %s" % ", ".join(SEVERITIES)))
    refs = doc.get("refs")
    if refs is not None:
        if not isinstance(refs, dict):
            problems.append((("refs",), "refs must be a mapping"))
        else:
            for k, v in refs.items():
                if k not in REF_KEYS:
                    problems.append((("refs", k), "unknown reference %r; allowed: %s" % (k, ", ".join(REF_KEYS))))
                elif not isinstance(v, (str, list)):
                    problems.append((("refs", k), "a reference is a string or a list of strings"))
    params = doc.get("params") or {}
    if not isinstance(params, dict):
        problems.append((("params",), "params must be a mapping of name: default value"))
        params = {}
    if isinstance(doc.get("title"), dict):
        from scanner.remediate.params import placeholders
        for lang, text in sorted(doc["title"].items()):
            for name in placeholders(text):
                if name not in params:
                    problems.append((("title", lang), "{%s} in the title is not a declared param; declare it under "
                                     "params (its default fills the title) or write the value" % name))
    fact_paths = []
    applies = doc.get("applies_to")
    if applies is not None:
        if not isinstance(applies, dict):
            problems.append((("applies_to",), "applies_to must be a mapping"))
        else:
            for k, v in applies.items():
                if k not in APPLIES_KEYS:
                    problems.append((("applies_to", k), "unknown applies_to key %r; allowed: %s" % (
                        k, ", ".join(APPLIES_KEYS))))
            fams = applies.get("os_family")
            if fams is not None and (not isinstance(fams, list) or any(f not in OS_FAMILIES for f in fams)):
                problems.append((("applies_to", "os_family"), "os_family is a list of %s" % ", ".join(OS_FAMILIES)))
            if "when" in applies:
                validate_check(applies["when"], ("applies_to", "when"), params, problems, fact_paths)
            if "live" in applies and not isinstance(applies["live"], bool):
                problems.append((("applies_to", "live"), "live must be true or false"))
    levels = doc.get("levels")
    if levels is not None and (not isinstance(levels, list) or not levels or
                               any(lv not in (1, 2, 3, 4) for lv in levels)):
        problems.append((("levels",), "levels is a list of MLPS levels, e.g. [2, 3]"))
    if "check" in doc:
        validate_check(doc["check"], ("check",), params, problems, fact_paths)
    ev = doc.get("evidence_facts")
    if ev is not None:
        if not isinstance(ev, list) or not all(isinstance(p, str) for p in ev):
            problems.append((("evidence_facts",), "evidence_facts is a list of fact paths"))
        else:
            for i, p in enumerate(ev):
                fact_paths.append((("evidence_facts", i), p))
    if "fix" in doc:
        from scanner.remediate.vocab import validate_fix
        validate_fix(doc["fix"], params, problems)
        if isinstance(doc["fix"], dict) and "when" in doc["fix"]:
            validate_check(doc["fix"]["when"], ("fix", "when"), params, problems, fact_paths)
    if registry is not None:
        for where, path in fact_paths:
            if not registry.known(path):
                problems.append((where, "unknown fact path %r (not in scanner/engine/fact_paths.yaml; "
                                        "a collector owner registers the facts it provides there)" % path))
    tests = doc.get("tests")
    if "tests" in doc:
        if not isinstance(tests, dict):
            problems.append((("tests",), "tests must be a mapping with 'pass' and 'fail' case lists"))
        else:
            for k, cases in tests.items():
                if k not in TEST_KEYS:
                    problems.append((("tests", k), "unknown test group %r; allowed: %s" % (k, ", ".join(TEST_KEYS))))
                    continue
                if not isinstance(cases, list):
                    problems.append((("tests", k), "tests.%s must be a list of cases" % k))
                    continue
                for i, case in enumerate(cases):
                    if not isinstance(case, dict) or not ("facts" in case or "inventory" in case):
                        problems.append((("tests", k, i), "a test case is a mapping with 'facts' and/or 'inventory'"))
                        continue
                    for ck in case:
                        if ck not in CASE_KEYS:
                            problems.append((("tests", k, i, ck), "unknown test case key %r; allowed: %s" % (
                                ck, ", ".join(CASE_KEYS))))
            for k in ("pass", "fail"):
                if not tests.get(k) and not _manual_only(doc):
                    problems.append((("tests",), "every rule needs at least one '%s' case" % k))
            if _manual_only(doc) and not tests.get("manual"):
                problems.append((("tests",), "a manual rule needs at least one 'manual' case"))
    return problems


def _normalise(check):
    """YAML 1.1 reads `op: true` / `op: false` as booleans; accept them as the op names."""
    if isinstance(check, dict):
        if isinstance(check.get("op"), bool):
            check["op"] = "true" if check["op"] else "false"
        for value in check.values():
            _normalise(value)
    elif isinstance(check, list):
        for value in check:
            _normalise(value)


def _manual_only(doc):
    check = doc.get("check")
    return isinstance(check, dict) and "manual" in check


# ------------------------------------------------------------------ loading
def _locate(path, text, where):
    from scanner.engine.yamlpos import locate
    return locate(text, where)


def parse_rule_file(path, directory, registry=None):
    """Return (Rule or None, [RuleProblem])."""
    from scanner.yamlio import load_yaml_text
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
        text = raw.decode("utf-8")
    except (IOError, OSError) as exc:
        return None, [RuleProblem(path, None, "cannot read rule file: %s" % (exc.strerror or exc))]
    except UnicodeDecodeError as exc:
        return None, [RuleProblem(path, None, "not valid UTF-8 at byte %d" % exc.start)]
    try:
        doc = load_yaml_text(text, path)
    except DataError as exc:
        line = None
        m = re.match(r".*:(\d+):\d+$", exc.path or "")
        if m:
            line = int(m.group(1))
        return None, [RuleProblem(path, line, exc.message)]
    _normalise(doc.get("check") if isinstance(doc, dict) else None)
    _normalise(doc.get("fix") if isinstance(doc, dict) else None)
    problems = validate_rule(doc, registry)
    if problems:
        return None, [RuleProblem(path, _locate(path, text, where), msg) for where, msg in problems]
    rule = Rule(doc)
    rule["area"] = area_of(path, directory)
    rule["source"] = path
    rule.setdefault("refs", {})
    rule.setdefault("params", {})
    return rule, []


def lint(directory=None, registry=None):
    """Parse and validate every rule file; return (rules, problems) without raising."""
    from scanner.engine.factpaths import default_registry
    directory = checks_dir(directory)
    registry = registry or default_registry()
    rules, problems, seen = [], [], {}
    files = rule_files(directory)
    if not files:
        problems.append(RuleProblem(directory, None, "no rule files (*.yaml) found"))
    for path in files:
        rule, probs = parse_rule_file(path, directory, registry)
        problems.extend(probs)
        if rule is None:
            continue
        if rule["id"] in seen:
            from scanner.engine.yamlpos import locate_file
            problems.append(RuleProblem(path, locate_file(path, ("id",)),
                                        "duplicate rule id %r (also in %s)" % (rule["id"], seen[rule["id"]])))
            continue
        seen[rule["id"]] = path
        if rule["area"] in LEVELLED_AREAS and not rule.get("levels"):
            from scanner.engine.yamlpos import locate_file
            problems.append(RuleProblem(path, locate_file(path, ("id",)),
                                        "rules under %s/ need 'levels' (e.g. [2, 3] or [3]) so the MLPS "
                                        "profiles can select them" % rule["area"]))
            continue
        rules.append(rule)
    return rules, problems


def lint_data(rule_ids, rules_root=None):
    """Problems in the shipped profiles and controls: unloadable files, controls naming unknown rules."""
    from scanner.engine.coverage import load_controls
    from scanner.engine.profiles import list_profiles, load_profile, profiles_dir
    from scanner.engine.yamlpos import locate_file
    if rules_root is None:
        from scanner.paths import rules_dir
        rules_root = rules_dir()
    problems = []
    pdir = os.path.join(rules_root, "profiles")
    for name in list_profiles(pdir):
        path = os.path.join(pdir, name + ".yaml")
        try:
            profile = load_profile(path)
        except DataError as exc:
            problems.append(RuleProblem(path, None, exc))
            continue
        if profile.controls and not os.path.isfile(os.path.join(rules_root, "controls", profile.controls + ".yaml")):
            problems.append(RuleProblem(path, locate_file(path, ("controls",)),
                                        "controls %r: no rules/controls/%s.yaml" % (profile.controls, profile.controls)))
    cdir = os.path.join(rules_root, "controls")
    for name in sorted(os.listdir(cdir)) if os.path.isdir(cdir) else []:
        if not name.endswith(".yaml"):
            continue
        path = os.path.join(cdir, name)
        if name == "high-risk.yaml":   # the high-risk determination guide, not a standard's items
            problems.extend(_lint_high_risk(path, rule_ids))
            continue
        try:
            doc = load_controls(path)
        except DataError as exc:
            problems.append(RuleProblem(path, None, exc))
            continue
        for i, item in enumerate(doc["items"]):
            for j, rid in enumerate(item.get("rules") or []):
                if rid not in rule_ids:
                    problems.append(RuleProblem(path, locate_file(path, ("items", i, "rules", j)),
                                                "control %s names unknown rule %r" % (item.get("id"), rid)))
    return problems


def _fingerprint(files):
    h = hashlib.sha1(("engine-%s" % ENGINE_VERSION).encode("utf-8"))
    try:
        from scanner.engine import checks as checks_mod
        from scanner.engine.factpaths import registry_file
        from scanner.remediate import vocab
        # the engine's own loader and validator are part of the key: a newer xcscan never trusts an old bundle
        files = list(files) + [registry_file(), os.path.abspath(__file__), os.path.abspath(checks_mod.__file__),
                                                    os.path.abspath(vocab.__file__)]
        for path in files:
            st = os.stat(path)
            h.update(("%s|%d|%d\n" % (path, st.st_size, st.st_mtime_ns)).encode("utf-8", "replace"))
    except OSError:
        return None
    return h.hexdigest()


def cache_dir():
    from scanner.jsoncache import cache_dir as _dir
    return _dir()


def _cache_path(directory):
    key = hashlib.sha1(os.path.abspath(directory).encode("utf-8", "replace")).hexdigest()[:16]
    return os.path.join(cache_dir(), "rules-%s.marshal" % key)


def _read_cache(directory, fingerprint):
    """(rules, fact names by rule id) from the cache, or (None, None)."""
    from scanner import jsoncache
    try:
        doc = jsoncache.load(_cache_path(directory))
        if doc is None or doc.get("fingerprint") != fingerprint:
            return None, None
        names = doc.get("fact_names")
        return [Rule(r) for r in doc["rules"]], (names if isinstance(names, dict) else None)
    except Exception:  # any cache problem: parse the files instead
        return None, None


def _fact_names(rules):
    from scanner.engine import rule_fact_names
    return dict((r["id"], rule_fact_names(r)) for r in rules)


def _write_cache(directory, fingerprint, rules, fact_names):
    from scanner import jsoncache
    try:
        doc = {"fingerprint": fingerprint, "rules": jsoncache.json_shaped(rules), "fact_names": fact_names}
    except Exception:
        return
    jsoncache.store(_cache_path(directory), doc)


_LOADED = {}


def load_ruleset(directory=None, use_cache=True):
    """All rules under ``directory`` (default: the shipped rules/checks); raises DataError on problems."""
    directory = os.path.abspath(checks_dir(directory))
    if not os.path.exists(directory):
        raise DataError("rules directory not found", path=directory,
                        hint="reinstall xcscan or set XCSCAN_RULES to a rules directory")
    files = rule_files(directory)
    fingerprint = _fingerprint(files) if use_cache else None
    if fingerprint and (directory, fingerprint) in _LOADED:
        return _LOADED[(directory, fingerprint)]
    rules, fact_names = _read_cache(directory, fingerprint) if fingerprint else (None, None)
    if rules is None:
        rules, problems = lint(directory)
        for rule in rules:
            rule.pop("tests", None)  # only `rules test` reads them, from the file (selftest.rule_tests)
        if problems:
            more = "" if len(problems) == 1 else " (and %d more problem(s); run `xcscan rules lint`)" % (
                len(problems) - 1)
            first = problems[0]
            raise DataError(first.message + more,
                            path="%s:%d" % (first.path, first.line) if first.line else first.path,
                            hint="fix the rule file; `xcscan rules lint` lists every problem")
        fact_names = _fact_names(rules)
        if fingerprint:
            _write_cache(directory, fingerprint, rules, fact_names)
    rules.sort(key=lambda r: r["id"])
    ruleset = RuleSet(rules, directory, fact_names)
    if fingerprint:
        _LOADED[(directory, fingerprint)] = ruleset
    return ruleset


def _lint_high_risk(path, rule_ids):
    """rules/controls/high-risk.yaml: entries with an id, match any|all and rules that exist."""
    from scanner.yamlio import load_yaml_file
    try:
        doc = load_yaml_file(path)
    except DataError as exc:
        return [RuleProblem(path, None, exc)]
    entries = doc.get("entries") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        return [RuleProblem(path, None, "the high-risk guide holds a top-level 'entries' list")]
    problems = []
    for i, entry in enumerate(entries):
        where = "entries[%d]" % i
        if not isinstance(entry, dict) or not entry.get("id"):
            problems.append(RuleProblem(path, None, "%s needs an 'id'" % where))
            continue
        if entry.get("match", "any") not in ("any", "all"):
            problems.append(RuleProblem(path, None, "%s (%s): match must be any or all" % (where, entry["id"])))
        for rid in entry.get("rules") or []:
            if rid not in rule_ids:
                problems.append(RuleProblem(path, None, "%s (%s): unknown rule %r" % (where, entry["id"], rid)))
    return problems
