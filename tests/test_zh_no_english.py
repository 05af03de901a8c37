"""No English inside Chinese output. Every zh message, every collector message translation, and the
table, HTML, CSV and JUnit renderings of real scans of the fixture roots in zh are searched for English
words. Allowed: ids, fact paths, file paths, options and other tokens with punctuation or digits,
CamelCase/ALLCAPS identifiers (PermitRootLogin, SELinux, TLS), the data a scan read (evidence, item
keys, values in the rules' expectations), and the names in tests/zh_allowed_words.yaml (commands,
configuration keywords, product names). Anything else is an untranslated word and fails."""
import ast
import glob
import html as htmlmod
import os
import re
import string

import pytest
import yaml

from scanner import i18n
from scanner.render import render, view

HERE = os.path.dirname(os.path.abspath(__file__))
ROOTS = (sorted(glob.glob(os.path.join(HERE, "fixtures", "engine", "*", "root"))) +
         sorted(p for p in glob.glob(os.path.join(HERE, "fixtures", "baseline", "*")) if os.path.isdir(p)) +
         [os.path.join(HERE, "fixtures", "hardware", "taishan-kylin")])
# a token with any of these is an id, path, option, value or command fragment, not prose
CODE_CHARS = re.compile(r"[/._=@:\[\]{}<>*'`$~^+|#%0-9\\-]")
# raw operator names of the rule language: an underscore must not hide them
RAW_OPERATORS = ("not_empty", "not_in", "not_contains", "not_regex", "mode_within")
QUOTED = re.compile(r"“[^”]*”")   # a literal quoted in Chinese text (a field name, a keyword)
TRUNCATED = re.compile(r"\S+…")   # a long value cut short: data
SPLIT = re.compile(r"[\s，。；：、（）“”‘’,;()\"！？!?【】《》…]+")


def allowed_words():
    with open(os.path.join(HERE, "zh_allowed_words.yaml"), encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    return set(w for group in data.values() for w in group)


ALLOWED = allowed_words()


def english_words(text, data=()):
    """(word, line) for every English prose word in ``text``; ``data`` strings are removed first."""
    chunks = sorted(set(d for d in data if d and len(d.strip()) > 1), key=len, reverse=True)
    if chunks:   # whole data strings only: "no" must not eat the end of "nano"
        text = re.sub(r"(?<![A-Za-z0-9])(?:%s)(?![A-Za-z0-9])" % "|".join(re.escape(c) for c in chunks), " ", text)
    for line in text.splitlines():
        for tok in SPLIT.split(TRUNCATED.sub(" ", QUOTED.sub(" ", line))):
            if tok in RAW_OPERATORS:
                yield tok, line.strip()[:160]
            if not tok or CODE_CHARS.search(tok):
                continue
            for word in re.findall(r"[A-Za-z]+", tok):
                if len(word) < 2 or re.search(r"[A-Z]", word[1:]) or word in ALLOWED or word.lower() in ALLOWED:
                    continue
                yield word, line.strip()[:160]


def _strip_markup(text):
    text = re.sub(r"<style.*?</style>|<script.*?</script>", " ", text, flags=re.S)
    return htmlmod.unescape(re.sub(r"<[^>]+>", "\n", text))


def _rule_values(ruleset):
    """Values the rules compare against (['md5', 'bigcrypt'], 'enforcing', ...): data in formulas."""
    out = set()

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("value", "key", "default") and not isinstance(value, (dict, list)):
                    out.add(str(value))
                elif key == "value" and isinstance(value, list):
                    out.update(str(v) for v in value if not isinstance(v, (dict, list)))
                else:
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
    for rule in ruleset:
        walk(rule.get("check"))
        walk(rule.get("applies"))
        walk(rule.get("params"))
    return out


def ids():
    """Fact (collector) and profile ids: shown as they are, like rule ids."""
    from scanner.collect import COLLECTORS
    names = set(COLLECTORS)
    names.update(os.path.splitext(p)[0] for p in os.listdir(os.path.join(HERE, "..", "rules", "profiles")))
    return names


def report_data(report):
    """The strings a report shows that are data the scan read, not words of ours."""
    data = set(ids())
    host = report.get("host") or {}
    data.update(str(v) for v in host.values() if v)
    for comp in (report.get("inventory") or {}).get("components") or []:
        name = comp.get("name") or {}
        data.update(str(v) for v in (name.get("en"), comp.get("version"), comp.get("model"), comp.get("vendor")) if v)
        for ev in comp.get("evidence") or []:
            data.add(view.value_text(ev.get("value"), "zh"))
    def leaves(node, depth=0):   # every value and key the collectors read is data (sshd keywords, sources)
        if depth > 12:
            return
        if isinstance(node, dict):
            for key, value in node.items():
                data.add(str(key))
                leaves(value, depth + 1)
        elif isinstance(node, list):
            for value in node[:500]:
                leaves(value, depth + 1)
        elif isinstance(node, str) and len(node) < 200:
            data.add(node)
    leaves({k: v for k, v in (report.get("facts") or {}).items() if k not in ("errors", "collection")})
    for res in report.get("results") or []:
        data.update(view.evidence_lines(res.get("evidence"), "zh"))
        # citations of documents by their own (English) titles, e.g. a CIS benchmark section
        data.update(view.value_text(v, "zh") for k, v in (res.get("refs") or {}).items()
                    if k not in ("gbt22239", "gbt28448", "gbt39786", "cac", "csl", "note"))

        def items(nodes):
            for item in nodes or []:
                data.add(str(item.get("key")))
                if item.get("actual") is not None:
                    data.add(view.actual_text(item.get("actual"), "zh"))
                items(item.get("items"))
        items(res.get("items"))
        # a configuration key the rule's requirement names is an id even where the host lacks it
        # (the record of "a or b" says what either branch requires)
        data.update(path.split(".")[-1] for path in
                    re.findall(r"\b[a-z_]+(?:\.[a-z0-9_]+)+", view.scalar_text(res.get("expected"))))
        actual = view.actual_text(res.get("actual"), "zh")
        if actual and not re.match(r"^\d+ [a-z]", str(res.get("actual"))):
            data.add(actual)   # a value read from the host (yes, disabled, [root]); engine summaries are ours
    return data


@pytest.fixture(scope="module")
def reports():
    from scanner.pipeline import scan_report
    return [scan_report(root=root, profile="all") for root in ROOTS]


@pytest.fixture(scope="module")
def ruleset():
    from scanner.engine import load_ruleset
    return load_ruleset()


def test_every_zh_message_is_chinese():
    zh = i18n.catalogue("zh")
    bad = []
    for key, text in zh.items():
        plain = "".join(lit for lit, _f, _s, _c in string.Formatter().parse(str(text)))
        bad.extend("%s: %s (%s)" % (key, w, line) for w, line in english_words(plain))
    assert bad == []


def test_collector_messages_have_chinese():
    with open(os.path.join(os.path.dirname(i18n.__file__), "locale", "messages.zh.yaml"), encoding="utf-8") as fh:
        table = yaml.safe_load(fh)
    bad = []
    for entry in table:
        plain = re.sub(r"\{[^}]*\}", " ", entry["zh"])
        bad.extend("%s: %s" % (entry["en"], w) for w, _l in english_words(plain))
    assert bad == []
    assert i18n.message("not found: PAM configuration cannot be established", "zh") == "目录不存在，无法确定 PAM 配置"
    assert i18n.message("cannot read: Permission denied", "zh") == "无法读取：权限不足"
    assert i18n.message("a sentence nobody translated yet", "zh") == i18n.MESSAGE_FALLBACK_ZH
    assert i18n.message("cannot read: Permission denied", "en") == "cannot read: Permission denied"


@pytest.mark.parametrize("fmt", ["table", "html", "csv", "junit"])
def test_zh_reports_have_no_english_words(reports, ruleset, fmt):
    values = _rule_values(ruleset)
    bad = {}
    for report in reports:
        text = render(report, fmt, "zh")
        if fmt in ("html", "junit"):
            text = _strip_markup(text)
        for word, line in english_words(text, report_data(report) | values):
            bad.setdefault(word, "%s: %s" % (os.path.basename(os.path.dirname(report["host"]["root"]))
                                             if report["host"]["root"].endswith("/root")
                                             else os.path.basename(report["host"]["root"]), line))
    assert bad == {}


def test_the_checker_sees_english(reports):
    """The sweep would catch a leak: an English reason, a raw operator or an engine summary."""
    assert [w for w, _l in english_words("检查发现：accounts.users 0 items；1/1 fail")] == ["items", "fail"]
    assert [w for w, _l in english_words("期望值：audit.categories contains sudo")] == ["contains"]
    assert [w for w, _l in english_words("期望值：pam.mfa_modules not_empty")] == ["not_empty"]
    assert [w for w, _l in english_words("无法确定 sudo：permission denied")] == ["permission", "denied"]
    assert list(english_words("设置 PermitRootLogin no；systemctl enable --now auditd")) == []


def test_engine_formulas_read_in_chinese():
    from scanner.formula_text import actual_zh, expected_zh
    assert expected_zh("(audit.categories contains identity) and (pam.mfa_modules not_empty)") == \
        "(audit.categories 包含 identity) 且 (pam.mfa_modules 非空)"
    assert expected_zh("each accounts.users") == "每个 accounts.users"
    assert expected_zh("not (sshd.effective.permitrootlogin in [yes, without-password])") == \
        "非 (sshd.effective.permitrootlogin 属于 [yes, without-password])"
    assert expected_zh("localization rate (overall) >= 0.6") == "国产化率（总体） >= 0.6"
    assert actual_zh("0 items") == "0 个条目"
    assert actual_zh("1/3 fail") == "3 个条目中 1 个不符合"
    assert actual_zh("50.0% (1 domestic, 1 foreign, 0 unknown)") == "50.0%（国产 1，国外 1，未知 0）"
    assert actual_zh("0755 (extra permission bits 0005)") == "0755（多出的权限位：0005）"


def test_rules_list_in_chinese():
    from click.testing import CliRunner
    from scanner.cli import cli
    res = CliRunner().invoke(cli, ["rules", "list", "--lang", "zh", "--profile", "mlps-l3"])
    assert res.exit_code == 0
    assert "严重程度" in res.output and " high " not in res.output and "baseline" not in res.output
    bad = [w for w, _l in english_words(res.output)]
    assert bad == []


def _cannot_fix_messages():
    """The format strings of every CannotFix the fix planner raises, filled with sample values."""
    import ast
    path = os.path.join(HERE, "..", "scanner", "remediate", "planner.py")
    with open(path, encoding="utf-8") as fh:
        tree = ast.parse(fh.read())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "CannotFix" and node.args:
            arg = node.args[0]
            fmt = arg.left if isinstance(arg, ast.BinOp) else arg
            if isinstance(fmt, ast.Constant) and isinstance(fmt.value, str):
                out.append(fmt.value.replace("%s", "/etc/sample.d/x.conf"))
    return out


def test_why_a_rule_cannot_be_fixed_reads_in_chinese():
    """`xcscan fix --lang zh` said '本机无法自动整改：/etc/audit does not exist on the target (...)': every
    reason the planner gives has its Chinese in scanner/locale/messages.zh.yaml."""
    messages = _cannot_fix_messages()
    assert len(messages) >= 10
    bad = []
    for text in messages:
        zh = i18n.message(text, "zh")
        if zh == i18n.MESSAGE_FALLBACK_ZH or list(english_words(zh, ["/etc/sample.d/x.conf"])):
            bad.append((text, zh))
    assert bad == []


def test_fix_dry_run_in_chinese_names_the_missing_software_in_chinese(tmp_path):
    from click.testing import CliRunner
    from scanner.cli import cli
    root = os.path.join(HERE, "fixtures", "engine", "rhel-default", "root")
    res = CliRunner().invoke(cli, ["fix", "--root", root, "--profile", "mlps-l3", "--dry-run", "--lang", "zh"])
    assert res.exit_code == 0, res.output
    reasons = [l for l in res.output.splitlines() if "本机无法自动整改" in l]
    assert reasons and any("目标上不存在" in l for l in reasons), reasons
    assert [w for l in reasons for w, _l in english_words(l)] == []


def test_error_table_is_chinese():
    with open(os.path.join(os.path.dirname(i18n.__file__), "locale", "errors.zh.yaml"), encoding="utf-8") as fh:
        table = yaml.safe_load(fh)
    assert len(table) >= 15
    bad = []
    names = sorted(rule_format_names())   # rules lint names the rule format's keys as they are
    for entry in table:
        # "word: " would pass as a token with punctuation (like "key:value"); it is a word
        plain = re.sub(r"\{[^}]*\}", " ", entry["zh"]).replace(": ", " ")
        bad.extend("%s: %s" % (entry["en"], w) for w, _l in english_words(plain, names))
        re.compile(entry["en"])
    assert bad == []


def test_errors_a_new_user_meets_read_in_chinese(tmp_path):
    """With --lang zh (or a Chinese locale) the errors of a first hour — an unmounted --root, a mistyped
    profile, an -o that would be refused — are Chinese, prefix included; in English they are unchanged."""
    from click.testing import CliRunner
    from scanner.cli import cli
    empty = tmp_path / "mnt"
    empty.mkdir()
    dangling = tmp_path / "r.json"
    os.symlink("missing/r.json", str(dangling))
    rhel = os.path.join(HERE, "fixtures", "engine", "rhel-default", "root")
    fixture = os.path.join(HERE, "fixtures", "reports", "kylin-l3.json")
    cases = [
        (["scan", "--root", str(empty)], "在 %s 下未找到操作系统——镜像是否已挂载？" % empty,
         "no operating system found under %s — is the image mounted?" % empty),
        (["inventory", "--root", str(empty)], "请先挂载镜像，或加 --allow-unknown-os 仍然扫描", "mount the image"),
        (["scan", "--root", rhel, "--profile", "mlps-13"], "未知的检查方案“mlps-13”，是否应为 mlps-l3？",
         "unknown profile 'mlps-13' — did you mean mlps-l3?"),
        (["report", fixture, "-o", str(dangling)], "拒绝写入输出：它是指向", "refusing to write output: it is a symlink"),
        (["report", fixture, "-o", str(tmp_path)], "拒绝写入输出：它是一个目录", "refusing to write output: it is a directory"),
    ]
    for args, zh, en in cases:
        for how in (["--lang", "zh"], ["--lang=zh"], []):
            env = {"LANG": "zh_CN.UTF-8" if not how else "en_US.UTF-8", "LC_ALL": ""}
            res = CliRunner().invoke(cli, args + how, env=env)
            assert res.exit_code == 1, (args, res.output)
            line = res.output.strip()
            assert line.startswith("xcscan：错误：") and zh in line, (args, how, line)
            assert [w for w, _l in english_words(line, ids())] == [], (args, line)
        res = CliRunner().invoke(cli, args + ["--lang", "en"], env={"LANG": "zh_CN.UTF-8", "LC_ALL": ""})
        assert res.output.startswith("xcscan: error: ") and en in res.output, (args, res.output)


def test_failing_commands_in_chinese_have_no_english(tmp_path):
    """Real mistakes, run with --lang zh: a mistyped --profile, a report file that is not there, a
    damaged report, a --waivers file that cannot be read as YAML or UTF-8. Each exits 1 with an error
    that is all Chinese (the names and paths the user gave stay as they are)."""
    from click.testing import CliRunner
    from scanner.cli import cli
    rhel = os.path.join(HERE, "fixtures", "engine", "rhel-default", "root")
    damaged = tmp_path / "damaged.json"
    damaged.write_text('{"schema": "xcscan.report/1",\n "host": ', encoding="utf-8")
    broken = tmp_path / "waivers.yaml"
    broken.write_text("waivers: [\n", encoding="utf-8")
    latin1 = tmp_path / "waivers-latin1.yaml"
    latin1.write_bytes(b"waivers:\n  - rule: x\n    justification: caf\xe9\n")
    incomplete = tmp_path / "waivers-incomplete.yaml"
    incomplete.write_text("waivers:\n  - rule: ssh-root-login\n", encoding="utf-8")
    cases = [
        (["scan", "--root", rhel, "--profile", "nope"], "未知的检查方案“nope”"),
        (["report", str(tmp_path / "missing.json")], "无法读取报告：文件不存在"),
        (["report", str(damaged)], "报告不是有效的 JSON：第 2 行"),
        (["scan", "--root", rhel, "--waivers", str(broken), "-q"], "YAML 语法错误"),
        (["scan", "--root", rhel, "--waivers", str(latin1), "-q"], "不是有效的 UTF-8 编码"),
        (["scan", "--root", rhel, "--waivers", str(incomplete), "-q"], "缺少 'hosts'"),
    ]
    for args, zh in cases:
        res = CliRunner().invoke(cli, args + ["--lang", "zh"], env={"LANG": "en_US.UTF-8", "LC_ALL": ""})
        assert res.exit_code == 1, (args, res.output)
        line = res.output.strip()
        assert line.startswith("xcscan：错误：") and zh in line, (args, line)
        assert [w for w, _l in english_words(line, ids())] == [], (args, line)


# ---- every agent-side error the code raises has its Chinese in errors.zh.yaml ---------------------
ERROR_BASES = {"XcscanError", "UsageError", "BadParameter",
               "TransportError", "TrustError"}   # the agent's connection errors: the {why} of the errors above
# CannotFix: a reason a rule cannot be fixed, shown through messages.zh.yaml
# (test_why_a_rule_cannot_be_fixed_reads_in_chinese), never as an error of the command
NOT_ERRORS = {"CannotFix"}
# templates whose values are English words from a fixed set (output_target._kind): real messages instead
EXAMPLES = {
    "refusing to write output: it is %s%s": [
        "refusing to write output: it is %s%s" % (kind, via) for via in ("", " (via symlink to /tmp/r.json)")
        for kind in ("a directory", "a block device", "a socket", "a special file (mode 10000)")],
    "refusing to write output: it names %s": [
        "refusing to write output: it names %s" % kind
        for kind in ("a directory", "a block device", "a socket", "a special file (mode 10000)")],
}
SPEC = re.compile(r"%(?:\([a-z_]+\))?[-#0-9.]*[sdrfxo]|%%|\{[a-z_0-9]*\}")


def _agent_sources():
    top = os.path.join(HERE, "..", "scanner")
    for path in sorted(glob.glob(os.path.join(top, "**", "*.py"), recursive=True)):
        rel = os.path.relpath(path, top).replace(os.sep, "/")
        if rel.startswith("server/") or rel == "cli/server.py":   # `xcscan server ...`: English only
            continue
        with open(path, encoding="utf-8") as fh:
            yield rel, ast.parse(fh.read())


def _name(func):
    return getattr(func, "id", None) or getattr(func, "attr", None)


def _error_classes(trees):
    names = set(ERROR_BASES)
    grew = True
    while grew:
        grew = False
        for _rel, tree in trees:
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef) and node.name not in names and \
                        any(_name(b) in names for b in node.bases):
                    names.add(node.name)
                    grew = True
    return names - NOT_ERRORS


def _templates(node, tree, seen=()):
    """The literal templates an expression can produce: a string, 'fmt' % args, a + b, 'fmt'.format(),
    either branch of `a if c else b`, a name assigned such a value in the module, or a parameter of the
    enclosing helper (then the arguments of the helper's calls). None when it is not ours to translate
    (another error's message re-raised, a catalogue text t(...))."""
    if isinstance(node, ast.Constant):
        return [node.value] if isinstance(node.value, str) else []
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
        left = _templates(node.left, tree, seen)
        if left and isinstance(node.right, ast.Name) and all(SPEC.findall(t) == ["%s"] for t in left):
            inner = _templates(node.right, tree, seen)   # "refusing to write output: %s" % why
            if inner:
                return [t.replace("%s", i) for t in left for i in inner]
        return left
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _templates(node.left, tree, seen), _templates(node.right, tree, seen)
        if left is None or right is None:
            return None
        return [a + b for a in left for b in right]
    if isinstance(node, ast.IfExp):
        out = []
        for branch in (node.body, node.orelse):
            out.extend(_templates(branch, tree, seen) or [])
        return out
    if isinstance(node, ast.Call) and _name(node.func) == "format" and isinstance(node.func, ast.Attribute):
        return _templates(node.func.value, tree, seen)
    if isinstance(node, ast.Name) and node.id not in seen:
        seen = seen + (node.id,)
        out = []
        for other in ast.walk(tree):
            if isinstance(other, ast.Assign) and any(getattr(t, "id", None) == node.id for t in other.targets):
                out.extend(_templates(other.value, tree, seen) or [])
            elif isinstance(other, (ast.FunctionDef, ast.Lambda)):
                params = [a.arg for a in other.args.args]
                if node.id in params and isinstance(other, ast.FunctionDef):
                    i = params.index(node.id)
                    for call in ast.walk(tree):
                        if isinstance(call, ast.Call) and _name(call.func) == other.name:
                            arg = call.args[i] if i < len(call.args) else next(
                                (k.value for k in call.keywords if k.arg == node.id), None)
                            if arg is not None:
                                out.extend(_templates(arg, tree, seen) or [])
        return out
    return None


def agent_error_templates():
    """(file:line, template) for the message and the hint of every error the agent-side code creates."""
    trees = list(_agent_sources())
    classes = _error_classes(trees)
    out = []
    for rel, tree in trees:
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and _name(node.func) in classes):
                continue
            parts = list(node.args[:1]) + list(node.args[2:3])
            parts += [k.value for k in node.keywords if k.arg in ("message", "hint")]
            for part in parts:
                for tpl in _templates(part, tree) or []:
                    out.append(("%s:%d" % (rel, node.lineno), tpl))
    return out


def _samples(template):
    """The template filled in: '%s' -> '7', '%r' -> "'7'", and once more with a '%s' straight after
    another value left empty (an optional suffix such as ' — did you mean X?')."""
    def fill(empty_suffix):
        out, last = [], 0
        for m in SPEC.finditer(template):
            out.append(template[last:m.start()])
            spec = m.group(0)
            follows = m.end() == len(template) and m.start() > 0 and not template[m.start() - 1].isspace()
            if spec == "%%":
                out.append("%")
            elif spec.endswith("r"):
                out.append("'7'")
            elif spec.endswith("o"):
                out.append("0644")
            elif not (empty_suffix and follows and spec == "%s"):
                out.append("7")
            last = m.end()
        out.append(template[last:])
        return "".join(out)
    return sorted(set([fill(False), fill(True)]))


def test_every_agent_error_has_chinese():
    """An error message or hint raised by scan, inventory, report, rules, fix or agent (not `xcscan server`)
    without an entry in scanner/locale/errors.zh.yaml would print English after 'xcscan：错误：'. Templates
    with no English word of their own ('%s: %s', '%s (HTTP %d: %s)') join translated parts and are skipped."""
    found = agent_error_templates()
    assert len(found) >= 200, len(found)
    missing, english = [], []
    for where, template in found:
        if not list(english_words(SPEC.sub(" ", template).replace(": ", " "))):   # 'refused:' is a word too
            continue
        samples = EXAMPLES.get(template) or _samples(template)
        zh = [z for z, s in ((i18n.error_part(s), s) for s in samples) if z != s]
        if not zh or (template in EXAMPLES and len(zh) < len(samples)):
            missing.append("%s: %r" % (where, template))
            continue
        for z in zh:
            english.extend("%s: %r -> %s (%s)" % (where, template, z, w)
                           for w, _l in english_words(z.replace(": ", " "), ["7"]))
    assert missing == []
    assert english == []
    assert set(EXAMPLES) <= set(t for _w, t in found)


def test_the_error_check_sees_an_untranslated_error():
    """The collector finds messages in all the shapes the code uses, and an unknown one fails."""
    found = dict((tpl, where) for where, tpl in agent_error_templates())
    assert "give one target: --root, --image, --ssh or --ssh-list" in found            # click.UsageError
    assert "the agent key is accessible by group or others (mode %04o)" in found        # a subclass
    assert "see docs/rules.md (Profiles)" in found                                      # a helper's hint
    assert "run as root or set state_dir in the agent configuration" in found          # composed
    assert "refusing to write output: too many levels of symbolic links" in found
    assert _samples("unknown profile %r%s") == ["unknown profile '7'", "unknown profile '7'7"]
    assert i18n.error_part("a brand new sentence nobody translated") == "a brand new sentence nobody translated"


def test_usage_errors_in_chinese(tmp_path):
    """Our own usage errors (two targets, --ca and --fingerprint) read in Chinese under --lang zh and keep
    click's usage text and exit code 2 in English; a misspelt rule id suggests the nearest in Chinese."""
    from click.testing import CliRunner
    from scanner.cli import cli
    rhel = os.path.join(HERE, "fixtures", "engine", "rhel-default", "root")
    env = {"LANG": "en_US.UTF-8", "LC_ALL": ""}
    res = CliRunner().invoke(cli, ["scan", "--root", rhel, "--image", "x.tar", "--lang", "zh"], env=env,
                             prog_name="xcscan")
    assert res.exit_code == 2
    assert res.output.strip() == "xcscan：错误：--root 与 --image 只能给出其一（“xcscan scan -h”显示用法）"
    res = CliRunner().invoke(cli, ["scan", "--root", rhel, "--image", "x.tar"], env=env)
    assert res.exit_code == 2 and "Error: give --root or --image, not both" in res.output
    # click's own: a --waivers file that is not there, a directory given for it, a misspelt option
    for args, zh in ((["--waivers", str(tmp_path / "waivers.yaml")], "'--waivers' 的值无效："),
                     (["--waivers", str(tmp_path)], "是目录"),
                     (["--format", "pdf"], "'--format' 的值 'pdf' 无效，应为以下之一："),
                     (["--bogus"], "没有选项 '--bogus'")):
        res = CliRunner().invoke(cli, ["scan", "--root", rhel] + args + ["--lang", "zh"], env=env,
                                 prog_name="xcscan")
        assert res.exit_code == 2, res.output
        line = res.output.strip()
        assert line.startswith("xcscan：错误：") and zh in line and "\n" not in line, line
        assert [w for w, _l in english_words(line, ids())] == [], line
    res = CliRunner().invoke(cli, ["scan", "--root", rhel, "--waivers", str(tmp_path / "waivers.yaml")], env=env)
    assert res.exit_code == 2 and "Error: Invalid value for '--waivers'" in res.output
    res = CliRunner().invoke(cli, ["rules", "show", "ssh-root-logn", "--lang", "zh"], env=env)
    assert res.exit_code == 1
    assert "未知的规则编号：ssh-root-logn（是否应为 mlps.ac.ssh-root-login？）" in res.output
    assert [w for w, _l in english_words(res.output, ids())] == []


def test_the_agents_connection_errors_read_in_chinese(tmp_path):
    """`agent enroll` to a server that is not listening: the reason inside the error is Chinese too."""
    from click.testing import CliRunner
    from scanner.cli import cli
    import socket
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()                                      # nothing listens there now
    cfg = str(tmp_path / "agent.yaml")
    res = CliRunner().invoke(cli, ["agent", "enroll", "--server", "https://127.0.0.1:%d" % port, "--token", "T",
                                   "--fingerprint", "a" * 64, "--config", cfg],
                             env={"LANG": "zh_CN.UTF-8", "LC_ALL": ""})
    assert res.exit_code == 1, res.output
    line = res.output.strip()
    assert line == "xcscan：错误：无法连接服务器：无法连接 127.0.0.1:%d：连接被拒绝（请检查服务器地址、网络和防火墙）" % port


def test_system_reasons_in_errors_read_in_chinese():
    """'{why}' in an error is the system's reason (strerror): in Chinese where messages.zh.yaml has it,
    as it is otherwise (an error is never lost)."""
    from scanner.errors import DataError
    assert i18n.error_part("cannot write output: Permission denied") == "无法写入输出：权限不足"
    assert i18n.error_part("cannot read the receipt: Not a directory") == "无法读取回执：不是目录"
    assert i18n.error_part("cannot reach the server: [Errno 111] Connection refused") == \
        "无法连接服务器：[Errno 111] Connection refused"
    err = DataError("cannot write to the spool: Permission denied", path="/var/spool/xcscan",
                    hint="check permissions of spool_dir; the existing spool is intact")
    assert i18n.error_text(err, "zh") == \
        "/var/spool/xcscan：无法写入暂存区：权限不足（请检查 spool_dir 的权限；已有的暂存内容完好）"
    assert i18n.error_text(err, "en") == str(err)


# ---- `xcscan rules lint --lang zh` and the agent's log lines -----------------------------------------
def lint_templates():
    """(file:line, template) of every problem `rules lint` reports: the message of each RuleProblem(...) and
    each problems.append((where, message)) in scanner/engine/rules.py and checks.py."""
    out = []
    for rel in ("engine/rules.py", "engine/checks.py"):
        with open(os.path.join(HERE, "..", "scanner", rel), encoding="utf-8") as fh:
            tree = ast.parse(fh.read())
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            part = None
            if _name(node.func) == "RuleProblem" and len(node.args) >= 3:
                part = node.args[2]
            elif _name(node.func) == "append" and node.args and isinstance(node.args[0], ast.Tuple) \
                    and len(node.args[0].elts) == 2:
                part = node.args[0].elts[1]
            for tpl in _templates(part, tree) or [] if part is not None else []:
                out.append(("%s:%d" % (rel, node.lineno), tpl))
    return out


def rule_format_names():
    """The keys and keywords of the rule format (title, on_missing, for_each, eq ...): written as they are
    in a Chinese message, like ids."""
    from scanner.engine import checks, rules
    names = set(["zh", "en", "any", "all", "none", "overall", "min", "assert", "check", "fix", "now",
                 "param", "name", "entries", "match", "params", "controls", "DAYS", "NAME", "UTF"])
    for mod in (checks, rules):
        for key, value in vars(mod).items():
            if key.isupper() and isinstance(value, (tuple, dict)):
                names.update(v for v in value if isinstance(v, str))
    return names


def _untranslated(found):
    missing, english = [], []
    names = sorted(rule_format_names())
    for where, template in found:
        if not list(english_words(SPEC.sub(" ", template).replace(": ", " "))):
            continue
        samples = _samples(template)
        zh = [z for z, s in ((i18n.error_part(s), s) for s in samples) if z != s]
        if not zh:
            missing.append("%s: %r" % (where, template))
            continue
        for z in zh:
            english.extend("%s: %r -> %s (%s)" % (where, template, z, w)
                           for w, _l in english_words(z.replace(": ", " "), ["7"] + names))
    return missing, english


def test_every_rule_lint_message_has_chinese():
    """A rule author running `xcscan rules lint --lang zh` reads every problem in Chinese (field names,
    ids and values stay as written)."""
    found = lint_templates()
    assert len(found) >= 60, len(found)
    assert ("engine/checks.py", "op %r needs a value") in [(w.split(":")[0], t) for w, t in found]
    assert _untranslated(found) == ([], [])
    assert _untranslated([("x", "a sentence of a new lint check nobody translated")])[0]


YAML_MISTAKES = ["a: {b: 1\n", "a: [1, 2\n", "a: b: c\n", "a:\n\tb: 1\n", "a: 1\n b: 2\nc\n", "- a\nb: 1\n",
                 'a: "\\q"\n', "a: !foo!bar x\n", "a: *x\n", "key\nother: 1\n", "a: @b\n", "a: `b\n",
                 "a: 1\n- b\n", "{a: 1}}\n", 'a: "x\n']


@pytest.mark.parametrize("loader", ["CSafeLoader", "SafeLoader"])
def test_yaml_mistakes_are_explained_in_chinese(loader, monkeypatch):
    """A YAML mistake in a rule, waiver or configuration file says in Chinese what the parser found, with
    libyaml (the installed package) and with the pure-Python parser (the offline bundle); a reason without
    Chinese leaves only 'YAML 语法错误' and the location (never English)."""
    import yaml
    from scanner import yamlio
    from scanner.errors import DataError
    if not hasattr(yaml, loader):
        pytest.skip("this PyYAML has no libyaml")
    monkeypatch.setattr(yamlio, "_loader", lambda: getattr(yaml, loader))
    for text in YAML_MISTAKES:
        with pytest.raises(DataError) as err:
            yamlio.load_yaml_text(text, "rules/x.yaml")
        zh = i18n.error_text(err.value, "zh")
        assert zh.startswith("rules/x.yaml:") and "YAML 语法错误：" in zh, (text, str(err.value), zh)
        assert list(english_words(zh.split("：", 1)[1], ["YAML", "'\\t'", "'!foo!'"])) == [], (text, zh)
    assert i18n.error_part("malformed YAML: a parser reason nobody translated") == "YAML 语法错误"


def test_rules_lint_in_chinese(tmp_path):
    """`xcscan rules lint DIR --lang zh`: every problem line and the count in Chinese; in English as before."""
    from click.testing import CliRunner
    from scanner.cli import cli
    (tmp_path / "a.yaml").write_text("id: x.y\ntitle: {zh: a, en: b\n", encoding="utf-8")
    (tmp_path / "b.yaml").write_text("id: Bad\ncategory: nope\nseverity: high\nfoo: 1\n"
                                     "check: {fact: a.b, op: eq, bar: 1}\n", encoding="utf-8")
    res = CliRunner().invoke(cli, ["rules", "lint", str(tmp_path), "--lang", "zh"], prog_name="xcscan")
    assert res.exit_code == 1
    lines = res.output.strip().splitlines()
    assert len(lines) >= 9, lines
    assert lines[0] == "%s:3：YAML 语法错误：未找到应有的“,”或“}”" % (tmp_path / "a.yaml")
    values = ["a.b", "eq", "fact", "foo", "bar", "title", "remediation", "tests", "Bad", "nope", "id", "op",
              "crypto.ssh.weak-ciphers", "scanner/engine/fact_paths.yaml", str(tmp_path)]
    values += sorted(rule_format_names())
    for line in lines:
        assert [w for w, _l in english_words(line, values)] == [], line
    res = CliRunner().invoke(cli, ["rules", "lint", str(tmp_path)])
    assert "malformed YAML: did not find expected ',' or '}'" in res.output
    assert "op 'eq' needs a value" in res.output


def _log_calls():
    """Every call of an agent log's info/warning/error/terminal/summary in scanner/agent."""
    for path in sorted(glob.glob(os.path.join(HERE, "..", "scanner", "agent", "*.py"))):
        with open(path, encoding="utf-8") as fh:
            tree = ast.parse(fh.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                    node.func.attr in ("info", "warning", "error", "terminal", "summary") and \
                    getattr(node.func.value, "id", None) == "log" and node.args:
                yield "%s:%d" % (os.path.basename(path), node.lineno), node.args[0]


def test_agent_log_lines_come_from_the_catalogue():
    """`xcscan agent run --lang zh` logs in Chinese (terminal and syslog): every line it writes is a
    catalogue text (t(...) / log.t(...)) or an error said in the log's language (log.error(exc)), never a
    literal or a formatted English string."""
    calls = list(_log_calls())
    assert len(calls) >= 12
    bad = []
    for where, arg in calls:
        if isinstance(arg, ast.Call) and _name(arg.func) == "t":
            continue
        if isinstance(arg, ast.Name) and arg.id == "exc":
            continue
        bad.append("%s: %s" % (where, ast.unparse(arg)))
    assert bad == []
