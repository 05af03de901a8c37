"""Compile catalog signatures of software products and match processes against them."""
from __future__ import absolute_import

import fnmatch
import posixpath
import re

from scanner.classify.software import jvm
from scanner.globmatch import fnmatchcase

SOFTWARE_CATEGORIES = ("database", "middleware", "message-queue", "web-server", "cache", "crypto")


class LazyRegex(object):
    """A catalog regex compiled on first use. The catalog holds ~500 of them and a scan uses few
    (the prefilter alternations below reject most processes, packages and units first); compiling
    them all cost ~40 ms per run on Python 3.7. A syntax error still surfaces when the catalog is
    compiled (``check``), naming the product."""

    def __init__(self, pattern, globs=None, parts=None):
        if globs is None and not isinstance(pattern, str):
            raise TypeError("a signature must be a string, not %s" % type(pattern).__name__)
        self._pattern = pattern
        self._globs = globs  # path globs: translated (fnmatch) on first use too
        self._rx = None
        self._text = None
        if globs:
            # a path can match a glob only if it starts with the glob's literal head (before * ? [)
            self._heads = tuple(re.split(r"[*?\[]", g, 1)[0] for g in globs)
            self.match = self._glob_match
        else:
            # a full match starts with the literal head of the pattern (of one of its parts)
            heads = tuple(_literal_head(p) for p in (parts or [pattern]))
            self._heads = heads if all(heads) else None
            # a pattern without metacharacters ("redis-server", "mosquitto\\.service") matches itself only
            self._text = _literal_text(pattern) if parts is None else None

    @property
    def pattern(self):
        if self._pattern is None:
            self._pattern = "|".join("(?:%s)" % fnmatch.translate(p) for p in self._globs)
        return self._pattern

    def compiled(self):
        rx = self._rx
        if rx is None:
            rx = self._rx = re.compile(self.pattern)
            # later calls go straight to the compiled pattern's methods (instance attributes win)
            self.search, self.match, self.fullmatch = rx.search, rx.match, rx.fullmatch
        return rx

    def _glob_match(self, text, *args):
        """A match (True before the globs are compiled) when ``text`` matches one of the globs whole."""
        if self._rx is None and not args:
            if not text.startswith(self._heads):
                return None  # no glob can match
            return True if any(fnmatchcase(text, g) for g in self._globs) else None  # fnmatch, mostly no regex
        return self.compiled().match(text, *args)

    def search(self, text, *args):
        return self.compiled().search(text, *args)

    def match(self, text, *args):
        return self.compiled().match(text, *args)

    def fullmatch(self, text, *args):
        """A match (True for a literal pattern, decided by equality) or None."""
        if self._rx is None and not args:
            if self._text is not None:
                return True if text == self._text else None
            if self._heads and not text.startswith(self._heads):
                return None  # cannot match: not worth compiling
        return self.compiled().fullmatch(text, *args)

    def __repr__(self):
        return "LazyRegex(%r)" % self.pattern


_LITERAL = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-/:=")
_ESCAPED_LITERAL = frozenset(".-+/_:=@ ")
# the same two sets as character classes: one C-level match per pattern instead of a loop over its characters
_LITERAL_RUN = re.compile(r"[a-zA-Z0-9_\-/:=]*")
_LITERAL_ONLY = re.compile(r"(?:[a-zA-Z0-9_\-/:=]|\\[.\-+/_:=@ ])*")


def _literal_text(pattern):
    """The one text ``pattern`` fully matches when it has no metacharacter (letters, digits, ``_-/:=``
    and escaped punctuation such as ``\\.``), else None."""
    if not _LITERAL_ONLY.fullmatch(pattern):
        return None
    # every backslash escapes the (literal, never a backslash) character after it
    return pattern.replace("\\", "")


def _literal_head(pattern):
    """The text every full match of ``pattern`` starts with ('' when unsure): the leading literal
    characters, without the last one when a quantifier that allows zero follows it. A pattern with
    an alternation anywhere (or inline flags) gets ''."""
    if "|" in pattern or pattern.startswith("(?"):
        return ""
    i = _LITERAL_RUN.match(pattern).end()
    head = pattern[:i]
    if i < len(pattern) and pattern[i] in "?*{":
        head = head[:-1]
    return head


def _lazy(pattern):
    return LazyRegex(pattern)


class Signature(object):
    """One process or JVM signature of a product."""

    def __init__(self, product, raw, java):
        self.product = product
        self.java = java
        self.name = _lazy(raw.get("main") if java else raw.get("name"))
        self.exe = _lazy(raw["exe"]) if raw.get("exe") else None
        self.args = _lazy(raw["args"]) if raw.get("args") else None
        self.cmdline = _lazy(raw["cmdline"]) if raw.get("cmdline") else None
        self.package = _lazy(raw["package"]) if raw.get("package") else None
        self.model = raw.get("model")
        conditions = sum(1 for c in (self.exe, self.args, self.cmdline, self.package) if c is not None)
        self.score = int(raw.get("priority") or 0) * 100 + conditions


def _compile_list(values):
    return [_lazy(v) for v in values or []]


def _glob_any(patterns):
    """One regex for a list of path globs (fnmatch semantics), or None."""
    if not patterns:
        return None
    if not all(isinstance(p, str) for p in patterns):
        raise TypeError("a path glob must be a string")
    return LazyRegex(None, globs=list(patterns))


def _alternation(patterns, lazy=True):
    """One regex matching any of ``patterns`` (full match), or None when one uses inline flags."""
    if not patterns or any("(?" in p and "(?:" not in p for p in patterns):
        return None
    joined = "|".join("(?:%s)" % p for p in patterns)
    return LazyRegex(joined, parts=patterns) if lazy else re.compile(joined)


class AnyFullmatch(object):
    """``fullmatch(text)``: a match of the first of ``regexes`` (LazyRegex) that matches all of ``text``,
    else None -- what one alternation of them finds, without compiling that alternation (~1 ms for each of
    the catalog-wide ones, per run): a pattern is tried, and compiled on first use, only for a text that
    starts with its literal head."""

    def __init__(self, regexes):
        self._by_first, self._headless = {}, []
        for rx in regexes:
            head = _literal_head(rx.pattern)
            if head:
                self._by_first.setdefault(head[0], []).append((head, rx))
            else:
                self._headless.append(rx)

    def fullmatch(self, text):
        for head, rx in self._by_first.get(text[:1], ()):
            if text.startswith(head):
                m = rx.fullmatch(text)
                if m:
                    return m
        for rx in self._headless:
            m = rx.fullmatch(text)
            if m:
                return m
        return None


def _any_fullmatch(regexes):
    """AnyFullmatch of ``regexes``, or None when there are none or one uses inline flags (as _alternation)."""
    if not regexes or any("(?" in rx.pattern and "(?:" not in rx.pattern for rx in regexes):
        return None
    return AnyFullmatch(regexes)


class CompiledProduct(object):
    def __init__(self, product):
        m = product.get("match") or {}
        self.product = product
        self.id = product["id"]
        self.signatures = [Signature(product, s, False) for s in m.get("processes") or []]
        self.signatures += [Signature(product, s, True) for s in m.get("java") or []]
        self.packages = _compile_list(m.get("packages"))
        self.packages_any = _alternation(m.get("packages"))
        self.services = _compile_list(m.get("services"))
        self.paths = _glob_any(m.get("paths"))
        self.config_files = _glob_any(m.get("config_files"))
        self.version_files = [(_glob_any([v["path"]]), _lazy(v["regex"])) for v in m.get("version_files") or []
                              if v.get("path") and v.get("regex")]
        version = m.get("version") or {}
        self.version_exe = _compile_list(version.get("exe"))
        self.version_cmdline = _compile_list(version.get("cmdline"))
        self.version_paths = _compile_list(version.get("paths"))
        details = m.get("details") or {}
        self.detail_data_dir = _compile_list(details.get("data_dir"))
        self.detail_config = _compile_list(details.get("config"))
        self.ports = set(int(p) for p in m.get("ports") or [])
        self.crypto_lib = m.get("crypto_lib")
        self.instance_key = product.get("instance_key") or "process"


_CACHE = {}


def compile_catalog(catalog):
    """The software signatures of ``catalog``. Each regex is compiled on first use, except for a
    catalog not yet checked (``catalog.checked``, set for the validated cache of
    scanner.catalog.load_catalog_cached): then every one is compiled now, so a bad one is a
    DataError naming its product, not a failure in the middle of a scan."""
    key = id(catalog)
    cached = _CACHE.get(key)
    if cached is not None and cached[0] is catalog:
        return cached[1]
    eager = not getattr(catalog, "checked", False)
    compiled = CompiledCatalog(_compile_product(p, catalog, eager) for p in catalog.products.values()
                               if p["category"] in SOFTWARE_CATEGORIES and p.get("match"))
    _CACHE[key] = (catalog, compiled)
    return compiled


def _lazy_regexes(cp):
    for value in list(vars(cp).values()) + [v for sig in cp.signatures for v in vars(sig).values()]:
        for item in (value if isinstance(value, (list, tuple)) else [value]):
            for rx in (item if isinstance(item, tuple) else (item,)):
                if isinstance(rx, LazyRegex):
                    yield rx


def _compile_product(product, catalog, eager=True):
    """CompiledProduct, or a DataError naming the catalog file, product and bad signature."""
    from scanner.errors import DataError
    try:
        cp = CompiledProduct(product)
        if eager:
            for rx in _lazy_regexes(cp):
                rx.compiled()
        return cp
    except (re.error, TypeError, KeyError, ValueError, AttributeError) as exc:
        source = getattr(catalog, "sources", {}).get(product["id"], "catalog")
        raise DataError("invalid software signature: %s: %s" % (type(exc).__name__, exc),
                        path="%s: product %s" % (source, product["id"]),
                        hint="signatures are regular expressions (see docs/software-inventory.md)")


class CompiledCatalog(list):
    """The compiled products plus one alternation of every native executable-name pattern,
    so most processes (shells, sleep, daemons of no interest) are rejected with one regex."""

    def __init__(self, items):
        list.__init__(self, items)
        natives = [sig for cp in self for sig in cp.signatures if not sig.java]
        # catch-all names ('.+') are only as selective as their exe condition
        catch = [sig for sig in natives if sig.name.fullmatch("x" * 40)]
        names = [sig.name for sig in natives if sig not in catch]
        plain = [rx for rx in names if "(?" not in rx.pattern]  # inline flags: tried one by one (name_rest)
        self.name_any = AnyFullmatch(plain) if plain else None
        self.name_rest = [re.compile(rx.pattern) for rx in names if rx not in plain]
        self.exe_list = [sig.exe for sig in catch if sig.exe is not None]
        self.catch_all = any(sig.exe is None for sig in catch)
        # prefilters: a package / unit name no product lists is dropped (by the patterns' literal heads)
        self.package_any = _any_fullmatch([rx for cp in self for rx in cp.packages])
        self.service_any = _any_fullmatch([rx for cp in self for rx in cp.services])

    def may_match(self, view):
        """False when no native signature can match this (non-JVM) process."""
        if self.catch_all:
            return True
        for n in view.names:
            if self.name_any is not None and self.name_any.fullmatch(n):
                return True
            if any(rx.fullmatch(n) for rx in self.name_rest):
                return True
        return bool(view.exe) and any(rx.search(view.exe) for rx in self.exe_list)


class ProcView(object):
    """What the matchers look at for one process (computed once)."""

    def __init__(self, proc):
        self.proc = proc
        cmd = [c for c in (proc.get("cmdline") or [])]
        self.cmdline = cmd
        argv0 = cmd[0] if cmd else ""
        self.exe = proc.get("exe") or (argv0 if argv0.startswith("/") else None)
        names = set()
        if proc.get("name"):
            names.add(proc["name"])
        if proc.get("exe"):
            names.add(posixpath.basename(proc["exe"]))
        if argv0 and " " not in argv0:
            names.add(posixpath.basename(argv0))
        self.names = names
        self.args_text = " ".join(cmd[1:])
        self.cmdline_text = " ".join(cmd)
        self.java = jvm.parse(cmd) if jvm.is_jvm(proc) else None
        if self.java is not None:
            self.java_app_args = " ".join(self.java["args"])
            self.java_vm_text = " ".join(self.java["options"] + [self.java["main"] or ""])


def match_signature(sig, view, installed=()):
    """Every condition of ``sig`` holds for the process; the package condition (a pass over every installed
    package) is checked last, for the few processes whose name already matched."""
    if sig.java:
        java = view.java
        if java is None or not java["main"] or not sig.name.fullmatch(java["main"]):
            return False
        if sig.args is not None and not sig.args.search(view.java_app_args):
            return False
        if sig.cmdline is not None and not sig.cmdline.search(view.java_vm_text):
            return False
    else:
        if not any(sig.name.fullmatch(n) for n in view.names):
            return False
        if sig.exe is not None and not (view.exe and sig.exe.search(view.exe)):
            return False
        if sig.args is not None and not sig.args.search(view.args_text):
            return False
        if sig.cmdline is not None and not sig.cmdline.search(view.cmdline_text):
            return False
    return sig.package is None or any(sig.package.fullmatch(n) for n in installed)


def best_match(view, compiled, installed=()):
    """(CompiledProduct, Signature) with the most specific matching signature, or None."""
    if view.java is None and isinstance(compiled, CompiledCatalog) and not compiled.may_match(view):
        return None
    best = None
    for cp in compiled:
        for sig in cp.signatures:
            if (best is None or sig.score > best[1].score) and match_signature(sig, view, installed):
                best = (cp, sig)
    return best


def first_group(regexes, texts):
    """First capture (groups joined with '.') of the first regex matching any text."""
    for rx in regexes:
        for text in texts:
            if not text:
                continue
            m = rx.search(text)
            if m:
                groups = [g for g in m.groups() if g] or [m.group(0)]
                return ".".join(groups)
    return None
