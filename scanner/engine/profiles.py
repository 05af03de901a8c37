"""Profiles (rules/profiles/<name>.yaml): which rules run, with which thresholds.

::

    id: mlps-l3
    title: {zh: 等保三级, en: MLPS level 3}
    select:                      # union of selectors; a rule is in when any selector matches
      - {areas: [mlps], levels: [3]}
      - {areas: [crypto, data-security]}
      - {ids: ["xinchuang.os.*"]}   # glob on rule ids
    exclude: [some.rule.id]      # globs
    params: {localization_min: 0.8}           # any selected rule declaring this param gets it
    rule_params: {xinchuang.localization.overall: {localization_min: 0.9}}
    severity: {crypto.sm.availability: info}  # per-rule severity overrides
    controls: mlps-l3            # rules/controls/mlps-l3.yaml -> summary.coverage

A selector's keys are ANDed: areas, categories, ids (globs), levels (a rule
without ``levels`` matches any level).
"""
from __future__ import absolute_import

import os

from scanner.engine import SEVERITIES
from scanner.errors import DataError
from scanner.globmatch import fnmatchcase  # fnmatch's, without a regex per pattern

PROFILE_KEYS = ("id", "title", "description", "select", "exclude", "params", "rule_params", "severity",
                "controls")
SELECT_KEYS = ("areas", "categories", "ids", "levels")


def profiles_dir(directory=None):
    if directory:
        return directory
    from scanner.paths import rules_dir
    return os.path.join(rules_dir(), "profiles")


def list_profiles(directory=None):
    d = profiles_dir(directory)
    try:
        names = sorted(n[:-5] for n in os.listdir(d) if n.endswith(".yaml"))
    except OSError:
        names = []
    return names


class Profile(object):
    def __init__(self, doc, source):
        self.doc = doc
        self.source = source
        self.id = doc["id"]
        self.title = doc.get("title") or {"zh": self.id, "en": self.id}
        self.select = doc.get("select") or []
        self.exclude = doc.get("exclude") or []
        self.params = doc.get("params") or {}
        self.rule_params = doc.get("rule_params") or {}
        self.severity = doc.get("severity") or {}
        self.controls = doc.get("controls")

    def selects(self, rule):
        rid = rule["id"]
        if any(fnmatchcase(rid, pat) for pat in self.exclude):
            return False
        for sel in self.select:
            if _selector_matches(sel, rule):
                return True
        return False

    def params_for(self, rule):
        params = dict(rule.get("params") or {})
        for name, value in self.params.items():
            if name in params:
                params[name] = value
        for pat, values in self.rule_params.items():
            if fnmatchcase(rule["id"], pat):
                for name, value in (values or {}).items():
                    if name in params:
                        params[name] = value
        return params

    def severity_for(self, rule):
        for pat, sev in self.severity.items():
            if fnmatchcase(rule["id"], pat):
                return sev
        return rule["severity"]


def _selector_matches(sel, rule):
    if "areas" in sel and rule.get("area") not in sel["areas"]:
        return False
    if "categories" in sel and rule.get("category") not in sel["categories"]:
        return False
    if "ids" in sel and not any(fnmatchcase(rule["id"], pat) for pat in sel["ids"]):
        return False
    if "levels" in sel and rule.get("levels") and not set(sel["levels"]) & set(rule["levels"]):
        return False
    return True


def validate_profile(doc, source):
    def bad(msg, field=None):
        raise DataError(msg, path="%s%s" % (source, (": " + field) if field else ""),
                        hint="see docs/rules.md (Profiles)")
    if not isinstance(doc, dict):
        bad("a profile file holds one mapping")
    for key in doc:
        if key not in PROFILE_KEYS:
            bad("unknown field %r; allowed: %s" % (key, ", ".join(PROFILE_KEYS)), str(key))
    if not isinstance(doc.get("id"), str):
        bad("missing 'id'")
    select = doc.get("select")
    if not isinstance(select, list) or not select:
        bad("'select' must be a non-empty list of selectors", "select")
    for i, sel in enumerate(select):
        if not isinstance(sel, dict) or not sel:
            bad("a selector is a mapping with some of: %s" % ", ".join(SELECT_KEYS), "select[%d]" % i)
        for k, v in sel.items():
            if k not in SELECT_KEYS:
                bad("unknown selector key %r; allowed: %s" % (k, ", ".join(SELECT_KEYS)), "select[%d]" % i)
            if not isinstance(v, list):
                bad("selector %r takes a list" % k, "select[%d]" % i)
    for field in ("params", "rule_params", "severity"):
        if field in doc and not isinstance(doc[field], dict):
            bad("%r must be a mapping" % field, field)
    for pat, sev in (doc.get("severity") or {}).items():
        if sev not in SEVERITIES:
            bad("severity must be one of %s" % ", ".join(SEVERITIES), "severity.%s" % pat)
    if "exclude" in doc and not isinstance(doc["exclude"], list):
        bad("'exclude' must be a list of rule id globs", "exclude")


_CACHE = {}


def load_profile(name_or_path, directory=None):
    """A profile by name (rules/profiles/<name>.yaml) or by file path."""
    from scanner.yamlio import load_yaml_file
    if isinstance(name_or_path, Profile):
        return name_or_path
    name = name_or_path or "all"
    if os.sep in name or name.endswith((".yaml", ".yml")):
        path = name
    else:
        path = os.path.join(profiles_dir(directory), name + ".yaml")
        if not os.path.isfile(path):
            from scanner.suggest import did_you_mean
            known = list_profiles(directory)
            raise DataError("unknown profile %r%s" % (name, did_you_mean(name, known)), path=None,
                            hint="choose one of: %s" % (", ".join(known) or "(no profiles installed)"))
    try:
        key = (os.path.abspath(path), os.stat(path).st_mtime_ns)
    except OSError:
        key = None
    if key in _CACHE:
        return _CACHE[key]
    doc = load_yaml_file(path)
    validate_profile(doc, path)
    profile = Profile(doc, path)
    if key:
        _CACHE[key] = profile
    return profile
