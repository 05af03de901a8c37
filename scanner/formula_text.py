"""How the rule engine's expected/actual formulas read in Chinese.

The engine (scanner/engine/checks.py) writes a result's ``expected`` and ``actual`` as short,
language-neutral formulas: ``sshd.effective.permitrootlogin = no``, ``(audit.categories contains
identity) and (...)``, ``each accounts.users``, ``0 items``, ``2/5 fail``. Fact paths and values are
data and stay as they are; the operator words and counts around them are ours and read in the
glossary's terms in Chinese. Works on stored reports too (the aggregator re-renders old ones).
"""
from __future__ import absolute_import

import re

# expected: operator words between operands, in the engine's exact spelling (OP_TEXT / op names)
_INFIX = (
    (" not in ", " 不属于 "), (" in ", " 属于 "), (" not_contains ", " 不包含 "), (" contains ", " 包含 "),
    (" mode within ", " 权限不宽于 "), (" intersects ", " 包含其一 "), (" and ", " 且 "), (" or ", " 或 "),
    (" nor ", "、"),
)
# value-less operators end an operand: "path exists", "path not_empty"
_POSTFIX = re.compile(r"(?<=\S) (exists|absent|true|false|empty|not_empty)(?=\)|;|$)")
_POSTFIX_ZH = {"exists": " 存在", "absent": " 不存在", "true": " 为 true", "false": " 为 false",
               "empty": " 为空", "not_empty": " 非空"}
_PREFIX = ((re.compile(r"(^|\()each "), r"\1每个 "), (re.compile(r"(^|\()not \("), r"\1非 ("),
           (re.compile(r"^none of: "), "以下均不成立："))
_PREFIX_WORDS = ("each ", "not (", "none of: ")  # what each of _PREFIX needs in the text to match
_POSTFIX_WORDS = tuple(" " + word for word in _POSTFIX_ZH)
_COMPONENTS = re.compile(r"^(no|a) component with (.+)$")
_RATE = re.compile(r"localization rate \(([^)]*)\)")

STATUS_ZH = {"pass": "符合", "fail": "不符合", "error": "检查出错", "manual": "需人工核查",
             "not_applicable": "不适用", "waived": "已豁免"}
# actual: the engine's own summaries
_ACTUAL = (
    (re.compile(r"^(\d+) items$"), lambda m: "%s 个条目" % m.group(1)),
    (re.compile(r"^(\d+)/(\d+) (pass|fail|error|manual|not_applicable)$"),
     lambda m: "%s 个条目中 %s 个%s" % (m.group(2), m.group(1), STATUS_ZH[m.group(3)])),
    (re.compile(r"^(\d+) components$"), lambda m: "%s 个组件" % m.group(1)),
    (re.compile(r"^(\d+) component\(s\), none matching$"), lambda m: "%s 个组件，均不匹配" % m.group(1)),
    (re.compile(r"^([\d.]+%) \((\d+) domestic, (\d+) foreign, (\d+) unknown\)$"),
     lambda m: "%s（国产 %s，国外 %s，未知 %s）" % m.groups()),
    (re.compile(r"^absent$"), lambda m: "不存在"),
    (re.compile(r"^null$"), lambda m: "未知"),
)
# an operator's detail after the value read: "0755 (extra permission bits 0005)"
_DETAIL = re.compile(r" \((extra permission bits|found|not allowed|matching):? (.*)\)$")
_DETAIL_ZH = {"extra permission bits": "多出的权限位", "found": "发现", "not allowed": "不允许的值",
              "matching": "匹配的值"}
_MORE = re.compile(r"\.\.\. (\d+) more (?:keys )?\(see facts\)")


def scope_zh(scope):
    """A localization-rate scope (overall or a component category) in Chinese."""
    if scope == "overall":
        return "总体"
    from scanner.i18n import catalogue
    return catalogue("zh").get("category." + str(scope), scope)


def data_zh(text):
    """Bounded evidence: "... 28 more (see facts)" in Chinese; everything else is data."""
    return _MORE.sub(lambda m: "……另有 %s 项（见 JSON 报告的 facts）" % m.group(1), text)


# a formula starts with a fact path, "(", "each ", "not (" or "none of: "; a rule's free-text
# label does not and is left alone
_FORMULA = re.compile(r"^(\(|each |not \(|none of: |[\w$][\w-]*(?:\.[\w*-]+|\[[^\]]*\])+(?: |$))")


def expected_zh(text):
    """The Chinese reading of an ``expected`` formula (other text passes through)."""
    if not isinstance(text, str) or not text:
        return text
    m = _COMPONENTS.match(text)
    if m:
        return ("没有 %s 的组件" if m.group(1) == "no" else "存在 %s 的组件") % m.group(2)
    if _RATE.match(text) or (text.startswith("(") and _RATE.search(text)):
        text = _RATE.sub(lambda m: "国产化率（%s）" % scope_zh(m.group(1)), text)
    elif not _FORMULA.match(text):
        return text
    # a regex rewrite is tried only when its word is in the text (a regex pass costs more than the test)
    for (pattern, repl), word in zip(_PREFIX, _PREFIX_WORDS):
        if word in text:
            text = pattern.sub(repl, text)
    if any(word in text for word in _POSTFIX_WORDS):
        text = _POSTFIX.sub(lambda m: _POSTFIX_ZH[m.group(1)], text)
    for word, zh in _INFIX:
        text = text.replace(word, zh)
    return text


def actual_zh(text):
    """The Chinese reading of an ``actual`` summary (values read from the host pass through)."""
    if not isinstance(text, str):
        return text
    if "; " in text:   # a combinator joins its children's actual values
        return "；".join(actual_zh(part) for part in text.split("; "))
    for pattern, fmt in _ACTUAL:
        m = pattern.match(text)
        if m:
            return fmt(m)
    m = _DETAIL.search(text)
    if m:
        return "%s（%s：%s）" % (text[:m.start()], _DETAIL_ZH[m.group(1)], m.group(2))
    return text


def formula(text, lang, kind="expected"):
    if lang != "zh":
        return text
    return expected_zh(text) if kind == "expected" else actual_zh(text)
