"""User-facing strings: one catalogue per language (scanner/locale/<lang>.yaml).

``t("key", lang, **fields)`` returns the text in ``lang`` with ``{field}``
placeholders filled. Both catalogues must have the same keys (a test checks).
"""
from __future__ import absolute_import

import os

LANGS = ("zh", "en")
_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "locale")
_CACHE = {}


def default_lang(environ=None):
    """zh when the locale (LC_ALL, LC_MESSAGES, LANG, LANGUAGE) is Chinese, else en."""
    environ = os.environ if environ is None else environ
    for var in ("LC_ALL", "LC_MESSAGES", "LANG", "LANGUAGE"):
        value = environ.get(var)
        if value:
            return "zh" if value.lower().startswith("zh") else "en"
    return "en"


def catalogue(lang):
    if lang not in _CACHE:
        from scanner.yamlio import load_yaml_file
        _CACHE[lang] = load_yaml_file(os.path.join(_DIR, "%s.yaml" % lang)) or {}
    return _CACHE[lang]


def t(key, lang="en", **fields):
    lang = lang if lang in LANGS else "en"
    text = catalogue(lang).get(key)
    if text is None:
        text = catalogue("en").get(key, key)
    if fields:
        try:
            text = text.format(**fields)
        except (KeyError, IndexError, ValueError):
            pass
    return text


def pick(pair, lang="en"):
    """Choose one language from a {"zh": ..., "en": ...} pair (or pass a plain string through)."""
    if isinstance(pair, dict):
        return pair.get(lang) or pair.get("en") or pair.get("zh") or ""
    return "" if pair is None else str(pair)


VIRT_KINDS = ("bare-metal", "vm", "container", "unknown")


def virt_label(kind, lang="en"):
    """Localized target kind (bare metal / VM / container); unknown values pass through."""
    return t("virt." + kind, lang) if kind in VIRT_KINDS else ("" if kind is None else str(kind))


def glossary():
    """The Chinese glossary (scanner/locale/glossary.yaml): concept -> {zh, en, ...}; one term per
    concept, used by every zh text."""
    if "_glossary" not in _CACHE:
        from scanner.yamlio import load_yaml_file
        _CACHE["_glossary"] = load_yaml_file(os.path.join(_DIR, "glossary.yaml")) or {}
    return _CACHE["_glossary"]


def term(concept, lang="zh"):
    """The glossary term for ``concept`` in ``lang`` (zh term, or the first en term)."""
    entry = glossary()[concept]
    if lang == "zh":
        return entry["zh"]
    return entry["en"][0]


_MESSAGES = []
MESSAGE_FALLBACK_ZH = "采集时出现问题（该说明尚无中文，原文见 JSON 报告的 facts.errors）"
MESSAGE_NESTED_ZH = "原因见 JSON 报告的 facts.errors"


def _message_table():
    if not _MESSAGES:
        import re
        from scanner.yamlio import load_yaml_file
        for entry in load_yaml_file(os.path.join(_DIR, "messages.zh.yaml")) or []:
            _MESSAGES.append((re.compile(entry["en"] + r"\Z"), entry["zh"]))
    return _MESSAGES


def message(text, lang="en", depth=0):
    """A collector's message (facts.errors, facts.collection reasons) in ``lang``. Collectors write
    English; scanner/locale/messages.zh.yaml gives the Chinese. A message without an entry reads as a
    generic Chinese sentence pointing to the original, never as English inside Chinese text."""
    if lang != "zh" or not text:
        return text
    text = str(text)
    for pattern, template in _message_table():
        m = pattern.match(text)
        if m:
            fields = dict((k, message(v, lang, depth + 1) if v and depth < 2 and _translatable(v) else (v or ""))
                          for k, v in m.groupdict().items())
            return template.format(**fields)
    if depth == 0:
        return MESSAGE_FALLBACK_ZH
    return MESSAGE_NESTED_ZH if _translatable(text) else text


def _translatable(value):
    """Only sentence-like parts are translated again; names, values and paths stay."""
    return " " in value.strip()


_ERRORS = []


def _error_table():
    if not _ERRORS:
        import re
        from scanner.yamlio import load_yaml_file
        for entry in load_yaml_file(os.path.join(_DIR, "errors.zh.yaml")) or []:
            _ERRORS.append((re.compile(entry["en"] + r"\Z"), entry["zh"]))
    return _ERRORS


def error_part(text, lang="zh", depth=0):
    """One sentence of an error (its message or its hint) in ``lang``, or as it is."""
    if lang != "zh" or not text:
        return text
    for pattern, template in _error_table():
        m = pattern.match(text)
        if m:
            return template.format(**dict((k, _reason(v, depth) if k == "why" else
                                           _detail(v, depth) if k == "detail" else (v or ""))
                                          for k, v in m.groupdict().items()))
    return text


def _detail(text, depth=0):
    """An optional detail ('{detail}': a YAML parser's reason): '：' and its Chinese, or nothing when
    errors.zh.yaml has none (the English stays in the English output only)."""
    zh = error_part(text, "zh", depth + 1) if text and depth < 2 else text
    return "：" + zh if zh != text else ""


def _reason(text, depth=0):
    """The reason inside an error ('{why}': a connection error, Permission denied...) in Chinese where
    errors.zh.yaml or the strerror entries of scanner/locale/messages.zh.yaml have it; else as it is."""
    if not text:
        return ""
    if depth < 2:
        zh = error_part(text, "zh", depth + 1)
        if zh != text:
            return zh
    for pattern, template in _message_table():
        m = pattern.match(text)
        if m:
            return template.format(**dict((k, v or "") for k, v in m.groupdict().items()))
    return text


def error_text(exc, lang="en"):
    """A user-facing error (XcscanError) in ``lang``: in zh its message and hint each through
    scanner/locale/errors.zh.yaml; a part without an entry stays English (an error is never lost)."""
    if lang != "zh" or not hasattr(exc, "message"):
        return str(exc)
    text = error_part(str(exc.message))
    if exc.path:
        text = "%s：%s" % (exc.path, text)
    if exc.hint:
        text = "%s（%s）" % (text, error_part(str(exc.hint)))
    return text
