"""One Chinese vocabulary: scanner/locale/glossary.yaml has one term per concept, and zh.yaml uses
those terms — the keys a concept owns carry exactly its term, an English text naming the concept has
a Chinese counterpart using the term, and no rejected variant appears anywhere."""
import re

import pytest

from scanner import i18n


def _prose(text):
    """The words of a text: without --options, {placeholders} and dotted names (commands, keys)."""
    return re.sub(r"--[a-z][a-z0-9-]*|\{[^}]*\}|\b[\w-]+(?:\.[\w-]+)+\b|xcscan [a-z ]+", " ", str(text))


@pytest.fixture(scope="module")
def gloss():
    return i18n.glossary()


@pytest.fixture(scope="module")
def cats():
    return i18n.catalogue("en"), i18n.catalogue("zh")


def test_one_term_per_concept(gloss):
    assert len(gloss) > 40
    by_term = {}
    for concept, entry in gloss.items():
        assert isinstance(entry.get("zh"), str) and entry["zh"].strip(), concept
        assert entry.get("en") and all(isinstance(e, str) for e in entry["en"]), concept
        by_term.setdefault(entry["zh"], []).append(concept)
        assert entry["zh"] not in (entry.get("avoid") or []), concept
    assert {t: c for t, c in by_term.items() if len(c) > 1} == {}
    # a concept's term is never another concept's rejected variant
    terms = set(by_term)
    clashes = [(c, a) for c, e in gloss.items() for a in (e.get("avoid") or []) if a in terms]
    assert clashes == []


def test_the_standards_terms_are_there(gloss):
    zh = {e["zh"] for e in gloss.values()}
    for standard_term in ("安全类", "控制点", "测评项", "测评单元", "符合", "部分符合", "不符合", "不适用",
                          "检查方案", "安全保护等级", "口令", "国产化率"):
        assert standard_term in zh


def test_owned_keys_carry_the_term(gloss, cats):
    _en, zh = cats
    wrong = []
    for concept, entry in gloss.items():
        for key in entry.get("keys") or ():
            assert key in zh, "%s names unknown key %s" % (concept, key)
            if zh[key] != entry["zh"]:
                wrong.append("%s: %s = %r, glossary says %r" % (concept, key, zh[key], entry["zh"]))
    assert wrong == []


def test_zh_text_uses_the_term_where_en_names_the_concept(gloss, cats):
    en, zh = cats
    wrong = []
    for concept, entry in gloss.items():
        pattern = entry.get("en_re")
        if not pattern:
            continue
        forms = [entry["zh"]] + list(entry.get("forms") or ())
        skip = set(entry.get("except") or ())
        matched = 0
        for key, text in en.items():
            if key in skip or not re.search(pattern, _prose(text), re.I):
                continue
            matched += 1
            if not any(f in str(zh.get(key, "")) for f in forms):
                wrong.append("%s (%s): en %r -> zh %r lacks %s" % (key, concept, text, zh.get(key), entry["zh"]))
        assert matched or concept in ("security_category",), "en_re of %s matches nothing" % concept
    assert wrong == []


def test_no_rejected_variant_in_zh(gloss, cats):
    _en, zh = cats
    found = ["%s: %r contains %r (say %r)" % (key, text, bad, entry["zh"])
             for concept, entry in gloss.items() for bad in (entry.get("avoid") or ())
             for key, text in zh.items() if bad in str(text)]
    assert found == []


def test_term_lookup():
    assert i18n.term("profile") == "检查方案"
    assert i18n.term("profile", "en") == "profile"
