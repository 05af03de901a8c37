"""测评记录 sentences (scanner/render/records.py, phrases in scanner/locale/records.yaml): every
automated rule's pass and fail cases and every result of the four baseline fixture roots give a
sentence in zh and en with no placeholder left, and the zh sentence has no English word of its own
(English there comes only from the data: ids, paths, commands, config values, product names; and
upper-case acronyms and keys such as CPU or PASS_MAX_DAYS)."""
import re

import pytest

from baseline_support import ROOTS, materialise
from scanner.engine import load_ruleset
from scanner.engine.selftest import run_rule_tests
from scanner.render import records, view

PLACEHOLDER = re.compile(r"\{[a-z_]+\}")
WORD = re.compile(r"[A-Za-z][A-Za-z0-9_.@/:+*-]*")
# product and command names the phrase catalog itself uses
NAMES = {"root", "sshd", "SSH", "PAM", "TLS", "SUID", "SGID", "sudo", "auditd", "journald", "su", "wheel",
         "shell", "umask", "TMOUT", "UID", "GID", "SELinux", "AppArmor", "systemd", "lastlog", "requirepass",
         "CONFIG", "NOPASSWD", "MaxAuthTries", "ClientAliveInterval", "ClientAliveCountMax", "UMASK", "minlen",
         "remember", "deny", "unlock_time", "even_deny_root", "enforce_for_root", "nullok", "pam_unix", "pam_wheel",
         "audit", "e", "fs.suid_dumpable", "pg_hba.conf", "auditd.conf", "login.defs",
         "Web"}   # category.web-server is Web服务器 in zh.yaml, the usual Chinese term


def data_words(result):
    """Every word that occurs in the result's own data (not its prose)."""
    parts = [view.scalar_text(result.get("rule_id")), view.value_text(result.get("expected")),
             view.value_text(result.get("actual")), view.value_text(result.get("evidence"))]
    for item in view.as_list(result.get("items")):
        if isinstance(item, dict):
            parts += [view.scalar_text(item.get("key")), view.value_text(item.get("actual")),
                      view.value_text(item.get("expected")), view.value_text(item.get("substitutes"), "en"),
                      view.value_text(item.get("substitutes"), "zh")]
    words = set(w for p in parts for w in re.findall(r"[A-Za-z0-9_.@/:+*-]+", p))
    words |= set(w for p in parts for w in re.findall(r"[A-Za-z0-9_]+", p) if not w.islower() or w not in FIELDS)
    # JSON's own words for a value: a record says 是 / 否 / 未知, never true / false / null
    return words - {"true", "false", "null", "None", "True", "False"}


def collector_words(result):
    """The collectors' own words for the values of the facts this result read, which records.yaml
    `fact_values` puts in words (e.g. "kernel default" for where a kernel parameter is set)."""
    paths = [view.scalar_text(e.get("fact")) for e in view.as_list(result.get("evidence")) if isinstance(e, dict)]
    paths += re.findall(r"[\w.]+", view.pick(result.get("reason"), "en") or "")
    out = set()
    for key, words in (records.catalog().get("fact_values") or {}).items():
        if any(p == key or (key.endswith(".*") and p.startswith(key[:-1])) for p in paths):
            out |= set(words)
    return out


# field names of list entries and fact values: the catalog must name them in Chinese
FIELDS = set(records.catalog().get("fields") or {}) | {"version", "name"}


def english_of_its_own(text, result):
    allowed = data_words(result) | NAMES
    text = re.sub(r"\S+…", " ", text)   # a value cut short
    return [w for w in WORD.findall(text)
            if w not in allowed and not w.isupper() and not re.search(r"[._/@:0-9*]", w) and not set(w.split("-")) <= allowed]


def check_record(result):
    zh, en = records.record(result, "zh"), records.record(result, "en")
    assert zh and en, result["rule_id"]
    assert not PLACEHOLDER.search(zh) and not PLACEHOLDER.search(en), (result["rule_id"], zh, en)
    assert re.search(u"[\u4e00-\u9fff]", zh), (result["rule_id"], zh)
    assert not re.search(u"[\u4e00-\u9fff]", en.replace(view.pick(result.get("reason"), "en") or "", "")) \
        or result["status"] not in ("pass", "fail"), (result["rule_id"], en)
    if result["status"] in ("pass", "fail", "not_applicable", "error"):
        leaked = english_of_its_own(zh, result)
        assert leaked == [], (result["rule_id"], zh, leaked)
    for word in collector_words(result):
        assert not re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(word), zh), (result["rule_id"], zh, word)
    # an unjudged rule's record says why once, in words
    for text, prefix in ((zh, u"不适用："), (en, "Not applicable: ")):
        assert not text.startswith(prefix * 2) and "(null)" not in text and u"（null）" not in text, \
            (result["rule_id"], text)
    return zh, en


def automated_rules():
    return [r for r in load_ruleset() if not (isinstance(r.get("check"), dict) and "manual" in r["check"])]


def test_every_automated_rule_pass_and_fail_case_has_a_record():
    rules = automated_rules()
    assert len(rules) > 100
    seen = set()
    for rule in rules:
        for group, _i, _want, result in run_rule_tests(rule):
            if group in ("pass", "fail") and result["status"] == group:
                check_record(result)
                seen.add((rule["id"], group))
    for rule in rules:
        assert (rule["id"], "pass") in seen and (rule["id"], "fail") in seen, rule["id"]


@pytest.fixture(scope="module")
def scanned(tmp_path_factory):
    from scanner.pipeline import scan_report
    base = tmp_path_factory.mktemp("roots")
    return dict((name, scan_report(root=materialise(name, base), profile="all")) for name in ROOTS)


def test_every_result_of_the_fixture_roots_has_a_record(scanned):
    count = 0
    for report in scanned.values():
        for result in report["results"]:
            check_record(result)
            count += 1
    assert count > 400


def by_rule(report, rule_id):
    return next(r for r in report["results"] if r["rule_id"] == rule_id)


def test_records_say_what_was_examined_and_found(scanned):
    rhel = scanned["rhel-default"]
    assert records.record(by_rule(rhel, "mlps.ia.password-max-age"), "zh") == \
        "/etc/login.defs 中 PASS_MAX_DAYS 为 99999，要求不小于 1 且不大于 90"
    assert records.record(by_rule(rhel, "mlps.ia.password-max-age"), "en") == \
        "PASS_MAX_DAYS in /etc/login.defs is 99999 (required: at least 1 and at most 90)"
    # a list: summarised, the failing entries named with what was found
    zh = records.record(by_rule(rhel, "mlps.ia.password-max-age-accounts"), "zh")
    assert "共检查 3 个账户，3 个不符合：root（口令最长使用天数为 99999" in zh
    assert re.match(r"共检查 \d+ 个账户，均符合要求$", records.record(by_rule(rhel, "mlps.ac.system-accounts-no-login"), "zh"))
    # a value read with a default (no evidence entry) is still told
    assert records.record(by_rule(rhel, "mlps.ia.lockout-deny"), "zh").startswith("连续失败锁定次数（deny）为 0")
    # booleans and empty lists in words
    assert records.record(by_rule(rhel, "mlps.ia.no-empty-passwords"), "zh") == "空口令账户为空，要求为空"
    # the rules' expressions are not the record
    for result in rhel["results"]:
        assert " = " not in records.record(result, "zh") or result["status"] in ("error", "not_applicable"), \
            result["rule_id"]


def test_unjudged_records_say_why_in_words(scanned):
    """A rule that did not apply or could not be judged: the condition it needs phrased from the fact
    it read, an unknown value said in words, lists and facts named as records.yaml names them."""
    debian = scanned["debian-default"]
    ciphers = by_rule(debian, "crypto.ssh.weak-ciphers")
    assert ciphers["status"] == "not_applicable"
    assert records.record(ciphers, "zh") == u"不适用：已安装 sshd 为否，不满足适用条件（已安装 sshd 为是）"
    assert records.record(ciphers, "en") == "Not applicable: sshd installed is no, so the condition " \
        "(sshd installed yes) is not met"
    writes = by_rule(debian, "mlps.au.auditd-writes-logs")
    assert writes["status"] == "not_applicable"
    assert records.record(writes, "zh") == \
        u"不适用：auditd.conf 中 write_logs 的值未知；auditd.conf 中 log_format 的值未知"
    ports = by_rule(debian, "mlps.ip.high-risk-ports")
    assert records.record(ports, "zh").startswith(u"不适用：未采集监听端口（")
    # a collector's token for a value is said in words
    rhel = scanned["rhel-default"]
    aslr = records.record(by_rule(rhel, "mlps.ip.sysctl-aslr"), "zh")
    assert aslr.endswith(u"内核参数 kernel.randomize_va_space 的设置位置为内核默认值（配置文件中未设置）"), aslr
    certs = by_rule(rhel, "crypto.cert.expired")
    assert certs["status"] == "not_applicable"
    assert records.record(certs, "zh") == u"不适用：证书中没有需要检查的条目"


def test_a_failed_rule_met_by_any_of_several_conditions_says_what_each_requires(scanned):
    rhel = scanned["rhel-default"]
    assert records.record(by_rule(rhel, "mlps.au.log-retention"), "zh") == \
        u"日志最短留存天数为 35；日志外发为否（要求满足其一：日志最短留存天数不小于 180；或日志外发为是）"
    assert records.record(by_rule(rhel, "mlps.au.log-retention"), "en") == \
        "shortest log retention (days) is 35; log forwarding is no (required, one of: shortest log retention " \
        "(days) at least 180; or log forwarding yes)"
    # a value read with a default (no evidence entry), two branches on the same fact
    assert records.record(by_rule(rhel, "mlps.ia.lockout-unlock-time"), "zh") == \
        u"锁定时间（unlock_time，秒）为 -1（要求满足其一：锁定时间（unlock_time，秒）为 0；或锁定时间（unlock_time，秒）不小于 300）"
    # a branch of several conditions, all required
    crypto = records.record(by_rule(rhel, "crypto.ssh.crypto-login"), "zh")
    assert crypto.endswith(u"（要求满足其一：sshd 生效配置 pubkeyauthentication 为 yes 且 sshd 生效配置 "
                           u"passwordauthentication 为 no 且 sshd 生效配置 kbdinteractiveauthentication 为 no；"
                           u"或 sshd 生效配置 authenticationmethods 符合 publickey）"), crypto
    # a passing rule does not repeat what it would have needed
    for result in rhel["results"]:
        if result["status"] == "pass":
            assert u"要求满足其一" not in records.record(result, "zh"), result["rule_id"]
