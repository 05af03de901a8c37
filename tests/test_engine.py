"""The rule engine: check vocabulary, missing facts, per-item findings, applies_to, params, summary."""
import datetime

import pytest

from scanner.engine.evaluator import evaluate_rule, score, summarize, sort_key
from scanner.engine.selftest import case_inputs

NOW = datetime.datetime(2026, 11, 24, 0, 0, 0)


def rule(check, **extra):
    doc = {"id": "t.rule", "title": {"zh": "测试", "en": "test"}, "category": "baseline", "severity": "medium",
           "check": check, "remediation": {"zh": "修", "en": "fix"}, "params": {}}
    doc.update(extra)
    return doc


def run(check, facts=None, inventory=None, params=None, live=None, **extra):
    r = rule(check, **extra)
    f, inv = case_inputs({"facts": facts or {}, "inventory": inventory})
    return evaluate_rule(r, f, inv, params=params if params is not None else dict(r.get("params") or {}),
                         live=live, now=NOW)


SSHD = {"sshd": {"installed": True, "effective": {"permitrootlogin": "no", "maxauthtries": "4",
                                                  "ciphers": "aes256-gcm@openssh.com,aes128-ctr",
                                                  "macs": "hmac-sha2-256,hmac-md5"}}}


@pytest.mark.parametrize("check,status", [
    ({"fact": "sshd.effective.permitrootlogin", "op": "eq", "value": "no"}, "pass"),
    ({"fact": "sshd.effective.permitrootlogin", "op": "eq", "value": "yes"}, "fail"),
    ({"fact": "sshd.effective.permitrootlogin", "op": "eq", "value": "NO", "ignore_case": True}, "pass"),
    ({"fact": "sshd.effective.maxauthtries", "op": "le", "value": 5}, "pass"),
    ({"fact": "sshd.effective.maxauthtries", "op": "le", "value": 3}, "fail"),
    ({"fact": "sshd.effective.maxauthtries", "op": "gt", "value": 3}, "pass"),
    ({"fact": "sshd.effective.maxauthtries", "op": "in", "value": [3, 4, 5]}, "pass"),
    ({"fact": "sshd.effective.ciphers", "op": "not_in", "value": ["3des-cbc", "aes128-cbc"], "split": ","}, "pass"),
    ({"fact": "sshd.effective.macs", "op": "not_in", "value": ["hmac-md5", "hmac-sha1-96"], "split": ","}, "fail"),
    ({"fact": "sshd.effective.macs", "op": "intersects", "value": ["hmac-md5"], "split": ","}, "pass"),
    ({"fact": "sshd.effective.macs", "op": "contains", "value": "hmac-sha2-256", "split": ","}, "pass"),
    ({"fact": "sshd.effective.macs", "op": "regex", "value": "md5"}, "pass"),
    ({"fact": "sshd.effective.macs", "op": "not_regex", "value": "md5", "split": ","}, "fail"),
    ({"fact": "sshd.effective.permitrootlogin", "op": "exists"}, "pass"),
    ({"fact": "sshd.effective.banner", "op": "absent"}, "pass"),
    ({"fact": "sshd.effective.banner", "op": "exists"}, "fail"),
    ({"fact": "sshd.installed", "op": "true"}, "pass"),
    ({"fact": "sshd.installed", "op": "false"}, "fail"),
    ({"fact": "sshd.effective", "op": "not_empty"}, "pass"),
])
def test_comparisons(check, status):
    assert run(check, SSHD)["status"] == status


def test_failing_list_comparison_names_offending_entries():
    res = run({"fact": "sshd.effective.macs", "op": "not_in", "value": ["hmac-md5"], "split": ","}, SSHD)
    assert res["status"] == "fail"
    assert "hmac-md5" in res["actual"] and "found" in res["actual"]
    assert res["evidence"] == [{"fact": "sshd.effective.macs", "value": "hmac-sha2-256,hmac-md5"}]
    assert res["reason"]["zh"] and res["reason"]["en"]


def test_mode_and_dates():
    facts = {"files": {"shadow": {"mode": "0640"}, "cert": {"not_after": "2026-12-01T00:00:00Z"}}}
    assert run({"fact": "files.shadow.mode", "op": "mode_within", "value": "0640"}, facts)["status"] == "pass"
    res = run({"fact": "files.shadow.mode", "op": "mode_within", "value": "0600"}, facts)
    assert res["status"] == "fail" and "0040" in res["actual"]
    # expires within 30 days of NOW (2026-11-24): not after now+30d
    assert run({"fact": "files.cert.not_after", "op": "gt", "value": {"now": 30}}, facts)["status"] == "fail"
    assert run({"fact": "files.cert.not_after", "op": "gt", "value": {"now": 0}}, facts)["status"] == "pass"


def test_type_mismatch_is_error_not_pass():
    res = run({"fact": "sshd.effective.permitrootlogin", "op": "le", "value": 5}, SSHD)
    assert res["status"] == "error"
    assert "number" in res["reason"]["en"]


def test_dotted_keys_resolve():
    facts = {"sysctl": {"net.ipv4.ip_forward": "0"}}
    assert run({"fact": "sysctl.net.ipv4.ip_forward", "op": "eq", "value": 0}, facts)["status"] == "pass"
    assert run({"fact": "sysctl.net.ipv4.ip_forward", "op": "eq", "value": 1}, facts)["status"] == "fail"


# ---- missing facts are never a pass
def test_missing_collector_is_error():
    res = run({"fact": "sshd.effective.permitrootlogin", "op": "ne", "value": "yes"}, {})
    assert res["status"] == "error"
    assert "sshd" in res["reason"]["en"]


def test_not_collected_is_not_applicable():
    facts = {"processes": None, "collection": {"processes": {"status": "not_collected",
                                                             "reason": "live-only fact; the target is an offline root"}}}
    res = run({"for_each": "processes", "assert": {"fact": "user", "op": "ne", "value": "root"}}, facts)
    assert res["status"] == "not_applicable"
    assert "offline root" in res["reason"]["en"]


def test_collector_unknown_and_failed_are_errors_with_reason():
    facts = {"login_defs": None, "collection": {"login_defs": {"status": "unknown"}},
             "errors": [{"collector": "login_defs", "path": "/etc/login.defs", "message": "permission denied"}]}
    res = run({"fact": "login_defs.PASS_MAX_DAYS", "op": "le", "value": 90}, facts)
    assert res["status"] == "error" and "permission denied" in res["reason"]["en"]
    facts = {"login_defs": None, "collection": {"login_defs": {"status": "failed", "reason": "ValueError: x"}}}
    res = run({"fact": "login_defs.PASS_MAX_DAYS", "op": "le", "value": 90}, facts)
    assert res["status"] == "error" and "ValueError" in res["reason"]["en"]


def test_absent_key_default_and_on_missing():
    facts = {"login_defs": {"PASS_MIN_LEN": 8}}
    assert run({"fact": "login_defs.PASS_MAX_DAYS", "op": "le", "value": 90}, facts)["status"] == "error"
    assert run({"fact": "login_defs.PASS_MAX_DAYS", "op": "le", "value": 90, "on_missing": "fail"},
               facts)["status"] == "fail"
    assert run({"fact": "login_defs.PASS_MAX_DAYS", "op": "le", "value": 90, "default": 99999},
               facts)["status"] == "fail"
    # not on an unknown (collector-level) fact: default never turns an unknown into a pass
    facts = {"login_defs": None}
    assert run({"fact": "login_defs.PASS_MAX_DAYS", "op": "le", "value": 90, "default": 1},
               facts)["status"] == "error"


def test_null_value_is_unknown():
    facts = {"crypto_libs": {"openssl": {"version": "3.0.19", "sm2": None}}}
    assert run({"fact": "crypto_libs.openssl.sm2", "op": "true"}, facts)["status"] == "error"
    assert run({"fact": "crypto_libs.openssl.sm2", "op": "true", "on_missing": "not_applicable"},
               facts)["status"] == "not_applicable"


# ---- combinators
def test_combinators():
    yes = {"fact": "sshd.installed", "op": "true"}
    no = {"fact": "sshd.installed", "op": "false"}
    err = {"fact": "nothing.here", "op": "true"}
    assert run({"all": [yes, yes]}, SSHD)["status"] == "pass"
    assert run({"all": [yes, no]}, SSHD)["status"] == "fail"
    assert run({"all": [yes, err]}, SSHD)["status"] == "error"   # a missing fact spoils an all
    assert run({"all": [no, err]}, SSHD)["status"] == "fail"
    assert run({"any": [no, yes]}, SSHD)["status"] == "pass"
    assert run({"any": [no, err]}, SSHD)["status"] == "error"
    assert run({"any": [no, no]}, SSHD)["status"] == "fail"
    assert run({"none": [no, no]}, SSHD)["status"] == "pass"
    assert run({"none": [no, yes]}, SSHD)["status"] == "fail"
    assert run({"not": yes}, SSHD)["status"] == "fail"
    assert run({"not": err}, SSHD)["status"] == "error"


# ---- per item
UNITS = {"services": {"units": [
    {"name": "telnet.socket", "enabled": True, "active": None},
    {"name": "sshd.service", "enabled": True, "active": None},
    {"name": "vsftpd.service", "enabled": False, "active": None},
]}}


def test_for_each_one_finding_per_item():
    check = {"for_each": "services.units", "key": "name",
             "where": {"fact": "name", "op": "regex", "value": "^(telnet|vsftpd|rsh)"},
             "assert": {"fact": "enabled", "op": "false"}}
    res = run(check, UNITS)
    assert res["status"] == "fail"
    assert [(i["key"], i["status"]) for i in res["items"]] == [("telnet.socket", "fail"), ("vsftpd.service", "pass")]
    assert "telnet.socket" in res["reason"]["en"]
    assert res["items"][0]["expected"] == "services.units[telnet.socket].enabled false"


def test_for_each_empty_and_null_items():
    check = {"for_each": "services.units", "where": {"fact": "name", "op": "eq", "value": "nothing"},
             "assert": {"fact": "enabled", "op": "false"}}
    assert run(check, UNITS)["status"] == "not_applicable"
    assert run(dict(check, if_empty="pass"), UNITS)["status"] == "pass"
    # an item whose value is unknown (offline: active null) is an error for that item, never a pass
    check = {"for_each": "services.units", "key": "name", "assert": {"fact": "active", "op": "false"}}
    res = run(check, UNITS)
    assert res["status"] == "error" and all(i["status"] == "error" for i in res["items"])


ODD_UNITS = [{"name": "telnet.socket", "enabled": True}, {"name": "TELNET.SOCKET", "enabled": False},
             {"name": None, "enabled": True}, {"enabled": True}, "telnet.socket", ["telnet.socket"], None,
             {"name": 5, "enabled": True}, {"name": "5", "enabled": True}, {"name": ["telnet.socket"]},
             {"name": "sshd.service", "enabled": True}, {"name": "2026-01-01", "enabled": True}]


@pytest.mark.parametrize("where", [
    {"fact": "name", "op": "in", "value": ["telnet.socket", "rsh.socket"]},
    {"fact": "name", "op": "in", "value": ["telnet.socket"], "ignore_case": True},
    {"fact": "name", "op": "not_in", "value": {"param": "units"}},
    {"fact": "name", "op": "eq", "value": 5},
    {"fact": "name", "op": "ge", "value": 3},                    # strings: a type error, never selected
    {"fact": "name", "op": "regex", "value": "^telnet"},
    {"fact": "name", "op": "lt", "value": {"now": 0}},           # dates
    {"fact": "name", "op": "in", "value": ["telnet.socket"], "on_missing": "fail"},
    {"fact": "name", "op": "eq", "value": {"param": "no-such-param"}},
])
def test_quick_where_filter_selects_what_the_full_evaluation_selects(where):
    """A one-field `where` takes a shortcut past the full evaluation; wrapped in `all` it cannot, and
    both give the same result for present, null, absent, mistyped and non-mapping items."""
    facts = {"services": {"units": ODD_UNITS}}
    base = {"for_each": "services.units", "key": "name", "if_empty": "pass",
            "assert": {"fact": "enabled", "op": "ne", "value": True, "default": False}}
    quick = run(dict(base, where=where), facts, params={"units": ["sshd.service"]})
    full = run(dict(base, where={"all": [where]}), facts, params={"units": ["sshd.service"]})
    assert quick["status"] == full["status"] and quick["items"] == full["items"]
    assert (quick["reason"], quick["actual"]) == (full["reason"], full["actual"])
    assert quick["status"] in ("pass", "fail", "error")


def test_for_each_absolute_path_inside_items():
    facts = {"firewall": {"filtering": False}, "db_config": {"instances": [
        {"engine": "postgresql", "listen_all": True}, {"engine": "redis", "listen_all": False}]}}
    check = {"for_each": "db_config.instances", "key": "engine",
             "assert": {"any": [{"fact": "listen_all", "op": "false"}, {"fact": "$.firewall.filtering", "op": "true"}]}}
    res = run(check, facts)
    assert res["status"] == "fail"
    assert [i["status"] for i in res["items"]] == ["fail", "pass"]
    facts["firewall"]["filtering"] = True
    assert run(check, facts)["status"] == "pass"


# ---- inventory checks
def test_components_name_substitutes(monkeypatch):
    inv = {"components": [{"category": "database", "product_id": "oracle-db", "origin": "foreign",
                           "name": {"zh": "甲骨文数据库", "en": "Oracle Database"}, "version": "19c",
                           "substitutes": ["dm"]}]}

    class Cat(object):
        def get(self, pid):
            return {"dm": {"name": {"zh": "达梦", "en": "DM"}}}.get(pid)

    r = rule({"components": {"category": ["database"], "origin": "foreign"}, "expect": "none"})
    f, i = case_inputs({"facts": {}, "inventory": inv})
    res = evaluate_rule(r, f, i, params={}, now=NOW, catalog=Cat())
    assert res["status"] == "fail"
    item = res["items"][0]
    assert item["substitutes"] == [{"id": "dm", "name": {"zh": "达梦", "en": "DM"}}]
    assert "达梦" in res["reason"]["zh"] and "DM" in res["reason"]["en"]
    assert "Oracle Database 19c" == item["actual"]


def test_components_without_inventory_is_error():
    r = rule({"components": {"category": ["os"], "origin": "foreign"}})
    res = evaluate_rule(r, {}, None, params={}, now=NOW)
    assert res["status"] == "error"


def test_localization_threshold_from_params():
    inv = {"components": [{"category": "cpu", "origin": "domestic", "name": {"zh": "a", "en": "a"}},
                          {"category": "os", "origin": "foreign", "name": {"zh": "b", "en": "b"}}]}
    check = {"localization_rate": "overall", "min": {"param": "m"}}
    assert run(check, inventory=inv, params={"m": 0.5})["status"] == "pass"
    assert run(check, inventory=inv, params={"m": 0.6})["status"] == "fail"
    assert run({"localization_rate": {"category": "cpu"}, "min": 1.0}, inventory=inv)["status"] == "pass"
    assert run({"localization_rate": {"category": "gpu"}, "min": 1.0}, inventory=inv)["status"] == "not_applicable"


def test_manual_carries_evidence():
    r = rule({"manual": {"zh": "查看备份记录", "en": "see the backup records"}},
             evidence_facts=["sshd.effective.permitrootlogin", "backup.jobs"])
    f, i = case_inputs({"facts": SSHD})
    res = evaluate_rule(r, f, i, params={}, now=NOW)
    assert res["status"] == "manual"
    assert res["reason"]["en"] == "see the backup records"
    assert res["evidence"][0] == {"fact": "sshd.effective.permitrootlogin", "value": "no"}
    assert res["evidence"][1]["fact"] == "backup.jobs" and res["evidence"][1]["missing"]


# ---- applies_to
def test_applies_to_os_family_and_live():
    check = {"fact": "sshd.installed", "op": "true"}
    facts = dict(SSHD, os={"family": "debian"})
    assert run(check, facts, applies_to={"os_family": ["rhel"]})["status"] == "not_applicable"
    assert run(check, facts, applies_to={"os_family": ["debian"]})["status"] == "pass"
    # unknown OS: cannot decide applicability -> error, not pass
    assert run(check, SSHD, applies_to={"os_family": ["rhel"]})["status"] == "error"
    assert run(check, facts, live=False, applies_to={"live": True})["status"] == "not_applicable"
    assert run(check, facts, live=True, applies_to={"live": True})["status"] == "pass"


def test_unknown_param_is_error():
    res = run({"fact": "sshd.effective.maxauthtries", "op": "le", "value": {"param": "nope"}}, SSHD)
    assert res["status"] == "error" and "nope" in res["reason"]["en"]


# ---- summary
def _res(rid, status, severity="medium", waiver=None):
    return {"rule_id": rid, "status": status, "severity": severity, "waiver": waiver}


def test_score_with_and_without_waivers():
    results = [_res("a", "pass", "high"), _res("b", "fail", "medium"), _res("c", "waived", "medium", {"expired": False}),
               _res("d", "fail", "info"), _res("e", "error", "critical"), _res("f", "not_applicable")]
    # weights: high 4, medium 2, info 0 (never moves the score); error/n/a are not judged
    assert score(results, True) == round(100.0 * 6 / 8, 1)
    assert score(results, False) == round(100.0 * 4 / 8, 1)
    s = summarize(results)
    assert s["counts"] == {"pass": 1, "fail": 2, "error": 1, "not_applicable": 1, "manual": 0, "waived": 1}
    assert s["failed_by_severity"] == {"medium": 1, "info": 1}
    assert s["waivers"] == {"applied": 1, "expired": 0}
    assert summarize([])["score"] is None


def test_severity_ordering():
    results = [_res("b", "pass", "low"), _res("a", "fail", "low"), _res("z", "pass", "critical"),
               _res("c", "fail", "high")]
    assert [r["rule_id"] for r in sorted(results, key=sort_key)] == ["z", "c", "a", "b"]


def test_odd_collection_shapes_in_stored_reports_do_not_crash():
    r = rule({"fact": "sshd.effective.permitrootlogin", "op": "eq", "value": "no"})
    for collection in ({"sshd": "ok", "processes": "not_collected"}, ["sshd"], None, {"sshd": 3}):
        facts = {"collection": collection, "sshd": {"effective": {"permitrootlogin": "no"}}, "processes": None}
        assert evaluate_rule(r, facts, None, params={}, now=NOW)["status"] == "pass"
    facts = {"collection": {"processes": "not_collected"}, "processes": None}
    r2 = rule({"for_each": "processes", "assert": {"fact": "user", "op": "ne", "value": "root"}})
    assert evaluate_rule(r2, facts, None, params={}, now=NOW)["status"] == "not_applicable"
