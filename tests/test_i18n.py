"""One catalogue per language: the same keys and placeholders in zh and en, and every key the code
names literally exists."""
import os
import re
import string

import pytest

from scanner import i18n
from scanner.render import view

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# t("key" ...), reason("key" ...) and similar helpers that take a catalogue key first
KEY_CALL = re.compile(r"""\b(?:t|_t|reason|page\.t|self\.t)\(\s*["']([a-z][a-z0-9_-]*(?:\.[a-zA-Z0-9_-]+)+)["'](?=\s*[,)])""")


def _fields(text):
    """Placeholder names; a zh text may use a `name_zh` variant of the en field `name`."""
    return sorted(set(re.sub(r"_zh$", "", f) for _lit, f, _spec, _conv in string.Formatter().parse(text) if f))


@pytest.fixture(scope="module")
def cats():
    return i18n.catalogue("en"), i18n.catalogue("zh")


def test_same_keys_in_both_languages(cats):
    en, zh = cats
    assert sorted(set(en) - set(zh)) == [], "keys missing in zh.yaml"
    assert sorted(set(zh) - set(en)) == [], "keys missing in en.yaml"


def test_same_placeholders_and_no_empty_text(cats):
    en, zh = cats
    bad = [k for k in en if k in zh and _fields(str(en[k])) != _fields(str(zh[k]))]
    assert bad == []
    empty = [k for c in cats for k, v in c.items() if not isinstance(v, str) or not v.strip()]
    assert empty == []


def _code_keys():
    found = {}
    for base, _dirs, files in os.walk(os.path.join(ROOT, "scanner")):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(base, name)
                with open(path, encoding="utf-8") as fh:
                    for key in KEY_CALL.findall(fh.read()):
                        found.setdefault(key, os.path.relpath(path, ROOT))
    return found


def test_every_key_the_code_uses_exists(cats):
    en, zh = cats
    used = _code_keys()
    assert len(used) > 20   # the scan is really finding the calls
    missing = sorted("%s (%s)" % (k, where) for k, where in used.items() if k not in en or k not in zh)
    assert missing == []


# Jinja templates of the aggregator call _('key'), which web.py maps to t("server." + key)
TEMPLATE_CALL = re.compile(r"""\b_\(\s*["']([a-z][A-Za-z0-9_.-]*)["'](?=\s*[,)])""")


def test_every_key_the_server_templates_use_exists(cats):
    en, zh = cats
    used = {}
    for base, _dirs, files in os.walk(os.path.join(ROOT, "scanner")):
        for name in files:
            if name.endswith((".html", ".j2", ".jinja")):
                path = os.path.join(base, name)
                with open(path, encoding="utf-8") as fh:
                    for key in TEMPLATE_CALL.findall(fh.read()):
                        used.setdefault("server." + key, os.path.relpath(path, ROOT))
    missing = sorted("%s (%s)" % (k, where) for k, where in used.items() if k not in en or k not in zh)
    assert missing == []


def test_keys_built_from_report_values_exist(cats):
    en, zh = cats
    keys = (["report.status." + s for s in view.STATUSES] + ["report.severity." + s for s in view.SEVERITIES]
            + ["report.coverage." + s for s in view.COVERAGE_STATUSES]
            + ["report.rule_category." + s for s in view.RULE_CATEGORIES]
            + ["origin." + o for o in ("domestic", "foreign", "unknown")])
    from scanner.catalog import CATEGORIES
    keys += ["category." + c for c in CATEGORIES]
    assert [k for k in keys if k not in en or k not in zh] == []


def test_chinese_catalogue_is_chinese(cats):
    _en, zh = cats
    mine = [k for k in zh if k.split(".")[0] in ("html", "report", "junit", "csv")]
    untranslated = [k for k in mine if not re.search(u"[\u4e00-\u9fff]", zh[k]) and k not in ("html.na",)]
    assert untranslated == []


@pytest.mark.parametrize("env, lang", [
    ({"LANG": "zh_CN.UTF-8"}, "zh"),
    ({"LANG": "en_US.UTF-8"}, "en"),
    ({"LC_ALL": "zh_TW.UTF-8", "LANG": "en_US.UTF-8"}, "zh"),
    ({"LC_ALL": "C", "LANG": "zh_CN.UTF-8"}, "en"),
    ({}, "en"),
])
def test_default_language_from_the_locale(env, lang):
    assert i18n.default_lang(env) == lang


def test_missing_key_detection_really_fails(tmp_path, monkeypatch):
    # guard against a vacuous test: a call to an unknown key is reported
    assert KEY_CALL.findall('x = t("html.no_such_key", lang)') == ["html.no_such_key"]
    assert KEY_CALL.findall('x = t("report.status." + status, lang)') == []     # built keys are not literal
    assert TEMPLATE_CALL.findall("{{ _('nav.hosts') }} {{ _('scope.' ~ s) }}") == ["nav.hosts"]
    assert "html.no_such_key" not in i18n.catalogue("en")
