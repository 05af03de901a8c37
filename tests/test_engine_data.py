"""Rule files, lint, the compiled cache, profiles, waivers and coverage."""
import datetime
import json
import marshal
import os
import textwrap

import pytest

from scanner.engine.evaluator import evaluate
from scanner.engine.profiles import load_profile
from scanner.engine.rules import lint, load_ruleset
from scanner.engine.waivers import load_waivers
from scanner.errors import DataError

NOW = datetime.datetime(2026, 11, 24, 12, 0, 0)

GOOD = textwrap.dedent("""\
    id: t.ssh.root-login
    title: {zh: 禁止root远程登录, en: No root SSH login}
    category: baseline
    severity: high
    levels: [2, 3]
    params: {max_tries: 4}
    check:
      all:
        - {fact: sshd.effective.permitrootlogin, op: eq, value: "no"}
        - {fact: sshd.effective.maxauthtries, op: le, value: {param: max_tries}}
    remediation: {zh: 设置 PermitRootLogin no, en: Set PermitRootLogin no}
    tests:
      pass: [{facts: {sshd: {effective: {permitrootlogin: "no", maxauthtries: "3"}}}}]
      fail: [{facts: {sshd: {effective: {permitrootlogin: "yes", maxauthtries: "3"}}}}]
    """)


def write(tmp_path, rel, text):
    path = tmp_path / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XCSCAN_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def problems_of(tmp_path):
    rules, problems = lint(str(tmp_path / "checks"))
    return rules, [(os.path.basename(p.path), p.line, p.message) for p in problems]


def test_good_rule_loads_with_area(tmp_path, cache):
    write(tmp_path, "checks/mlps/root.yaml", GOOD)
    rs = load_ruleset(str(tmp_path / "checks"))
    assert len(rs) == 1 and rs.get("t.ssh.root-login")["area"] == "mlps"


def test_lint_malformed_yaml_names_file_and_line(tmp_path):
    write(tmp_path, "checks/a/bad.yaml", GOOD.replace("category: baseline", "category: [baseline"))
    _, probs = problems_of(tmp_path)
    assert probs and probs[0][0] == "bad.yaml" and probs[0][1] in (4, 5, 6)
    assert "malformed YAML" in probs[0][2]


def test_lint_unknown_check_type_and_op_with_line(tmp_path):
    text = GOOD.replace("- {fact: sshd.effective.maxauthtries, op: le, value: {param: max_tries}}",
                        "- {fcat: sshd.effective.maxauthtries, op: le, value: 3}")
    text = text.replace('op: eq, value: "no"', 'op: equals, value: "no"')
    write(tmp_path, "checks/a/r.yaml", text)
    _, probs = problems_of(tmp_path)
    messages = dict((m.split(" ")[1], (line, m)) for _, line, m in probs)
    assert messages["check"][0] == 10 and "expected one of" in messages["check"][1]
    assert messages["op"][0] == 9


def test_lint_unknown_fact_path(tmp_path):
    write(tmp_path, "checks/a/r.yaml", GOOD.replace("sshd.effective.maxauthtries", "sshd.efective.maxauthtries"))
    _, probs = problems_of(tmp_path)
    assert len(probs) == 1
    name, line, msg = probs[0]
    assert line == 10 and "unknown fact path 'sshd.efective.maxauthtries'" in msg


def test_lint_unknown_fact_path_inside_for_each(tmp_path):
    text = GOOD.replace("""  all:
    - {fact: sshd.effective.permitrootlogin, op: eq, value: "no"}
    - {fact: sshd.effective.maxauthtries, op: le, value: {param: max_tries}}""",
                        """  for_each: services.units
  assert: {fact: enabledd, op: "false"}""")
    assert "enabledd" in text
    write(tmp_path, "checks/a/r.yaml", text)
    _, probs = problems_of(tmp_path)
    assert [(p[1], "services.units[].enabledd" in p[2]) for p in probs] == [(9, True)]


def test_lint_duplicate_ids_and_missing_cases(tmp_path):
    write(tmp_path, "checks/a/one.yaml", GOOD)
    write(tmp_path, "checks/b/two.yaml", GOOD)
    write(tmp_path, "checks/b/three.yaml", GOOD.replace("t.ssh.root-login", "t.ssh.other").replace(
        "  fail: [{facts: {sshd: {effective: {permitrootlogin: \"yes\", maxauthtries: \"3\"}}}}]\n", ""))
    rules, probs = problems_of(tmp_path)
    assert any(name == "two.yaml" and line == 1 and "duplicate rule id" in m and "one.yaml" in m
               for name, line, m in probs)
    assert any(name == "three.yaml" and "'fail' case" in m for name, line, m in probs)


def test_lint_unknown_field_and_bad_values(tmp_path):
    text = GOOD.replace("severity: high", "severity: severe\nowner: me").replace("levels: [2, 3]", "levels: [5]")
    write(tmp_path, "checks/a/r.yaml", text)
    _, probs = problems_of(tmp_path)
    text_all = "\n".join(m for _, _, m in probs)
    assert "severity must be one of" in text_all
    assert "unknown field 'owner'" in text_all
    assert "levels is a list" in text_all
    assert any(line == 5 for _, line, m in probs if "owner" in m)


def test_load_ruleset_raises_clear_error(tmp_path, cache):
    write(tmp_path, "checks/a/r.yaml", GOOD.replace("op: le", "op: lte"))
    with pytest.raises(DataError) as exc:
        load_ruleset(str(tmp_path / "checks"))
    assert "r.yaml:10" in str(exc.value) and "unknown op 'lte'" in str(exc.value)


def test_cache_is_used_and_invalidated(tmp_path, cache):
    path = write(tmp_path, "checks/a/r.yaml", GOOD)
    load_ruleset(str(tmp_path / "checks"))
    bundles = list(cache.glob("rules-*.marshal"))
    assert len(bundles) == 1
    doc = marshal.loads(bundles[0].read_bytes())
    # tamper the cached title: a second load (new process: clear the in-memory copy) reads the cache
    doc["rules"][0]["title"]["en"] = "from cache"
    bundles[0].write_bytes(marshal.dumps(doc))
    from scanner.engine import rules as rules_mod
    rules_mod._LOADED.clear()
    assert load_ruleset(str(tmp_path / "checks")).get("t.ssh.root-login")["title"]["en"] == "from cache"
    # a changed rule file changes the fingerprint: the files are parsed again
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("# touched\n")
    os.utime(path, (1, 1))
    rules_mod._LOADED.clear()
    assert load_ruleset(str(tmp_path / "checks")).get("t.ssh.root-login")["title"]["en"] == "No root SSH login"
    # a corrupt cache falls back silently
    for b in cache.glob("rules-*.marshal"):
        b.write_bytes(b"{not marshal data")
    rules_mod._LOADED.clear()
    assert len(load_ruleset(str(tmp_path / "checks"))) == 1


def test_a_rules_cache_another_user_could_write_is_ignored(tmp_path, cache):
    """sudo may keep an ordinary user's HOME: a cached rule set that user could have written must not
    decide what a root scan reports (scanner/jsoncache.trusted)."""
    write(tmp_path, "checks/a/r.yaml", GOOD)
    load_ruleset(str(tmp_path / "checks"))
    bundle = list(cache.glob("rules-*.marshal"))[0]
    doc = marshal.loads(bundle.read_bytes())
    doc["rules"][0]["title"]["en"] = "planted"
    bundle.write_bytes(marshal.dumps(doc))
    from scanner.engine import rules as rules_mod

    def title():
        rules_mod._LOADED.clear()
        return load_ruleset(str(tmp_path / "checks")).get("t.ssh.root-login")["title"]["en"]
    os.chmod(str(bundle), 0o666)
    assert title() == "No root SSH login"
    os.chmod(str(bundle), 0o600)
    os.chmod(str(cache), 0o757)
    assert title() == "No root SSH login"
    os.chmod(str(cache), 0o700)
    doc["rules"][0]["title"]["en"] = "planted"     # the parse above rewrote the file (now trusted again)
    bundle.write_bytes(marshal.dumps(doc))
    os.chmod(str(bundle), 0o600)
    assert title() == "planted"                     # the same file, ours and private: believed
    if os.geteuid() == 0:
        os.chown(str(bundle), 65534, 65534)
        assert title() == "No root SSH login"


def test_the_fact_names_each_rule_reads_come_with_the_cache(tmp_path, cache):
    """facts_read (what a scan must collect) uses each rule's fact names kept with the rules cache; they are
    what walking the rules finds, a stale cache is rebuilt with the new rules' names, and a cache without
    them (an older one) is walked instead."""
    from scanner.engine import facts_read
    from scanner.engine import rules as rules_mod
    other = GOOD.replace("t.ssh.root-login", "t.other").replace(
        "sshd.effective.maxauthtries", "login_defs.PASS_MAX_DAYS").replace(
        "levels: [2, 3]", "levels: [2, 3]\napplies_to: {when: {fact: os.family, op: eq, value: debian}}\n"
                          "evidence_facts: [pam.family]")
    write(tmp_path, "checks/a/r.yaml", GOOD)
    path = write(tmp_path, "checks/a/o.yaml", other)
    want = {"sshd", "login_defs", "os", "pam"}
    for attempt in ("parsed", "from cache"):
        rules_mod._LOADED.clear()
        rs = load_ruleset(str(tmp_path / "checks"))
        assert rs.fact_names == {"t.other": ["login_defs", "os", "pam", "sshd"], "t.ssh.root-login": ["sshd"]}
        assert facts_read(rs) == want == facts_read(list(rs)), attempt   # a list of rules: walked
    profile = load_profile(write(tmp_path, "p.yaml", "id: p\nselect: [{ids: [t.ssh.*]}]\n"))
    assert facts_read(rs, profile) == {"sshd"}
    bundle = next(cache.glob("rules-*.marshal"))
    doc = marshal.loads(bundle.read_bytes())
    doc["fact_names"]["t.ssh.root-login"] = ["from-cache"]
    bundle.write_bytes(marshal.dumps(doc))
    rules_mod._LOADED.clear()
    assert facts_read(load_ruleset(str(tmp_path / "checks")), profile) == {"from-cache"}   # the cache is read
    del doc["fact_names"]
    bundle.write_bytes(marshal.dumps(doc))
    rules_mod._LOADED.clear()
    assert facts_read(load_ruleset(str(tmp_path / "checks")), profile) == {"sshd"}         # walked
    with open(path, "w", encoding="utf-8") as fh:                                            # stale: rebuilt
        fh.write(other.replace("login_defs.PASS_MAX_DAYS", "audit.rules"))
    os.utime(path, (1, 1))
    rules_mod._LOADED.clear()
    rs = load_ruleset(str(tmp_path / "checks"))
    assert rs.fact_names["t.other"] == ["audit", "os", "pam", "sshd"]
    assert facts_read(rs) == {"sshd", "audit", "os", "pam"}


def test_a_profile_selects_the_same_rules_when_asked_again(tmp_path, cache):
    """select_rules keeps the last selection on the profile (a scan asks twice): the same answer for the
    same rule set, a fresh one for another rule set or list, and a caller may change the list it got."""
    from scanner.engine.evaluator import select_rules
    write(tmp_path, "checks/a/r.yaml", GOOD)
    write(tmp_path, "checks/a/o.yaml", GOOD.replace("t.ssh.root-login", "t.other"))
    rs = load_ruleset(str(tmp_path / "checks"))
    profile = load_profile(write(tmp_path, "p.yaml", "id: p\nselect: [{ids: [t.ssh.*]}]\n"))
    first = select_rules(rs, profile)
    assert [r["id"] for r in first] == ["t.ssh.root-login"]
    first.append("junk")
    assert [r["id"] for r in select_rules(rs, profile)] == ["t.ssh.root-login"]
    other = [dict(r, id="t.ssh.x") for r in rs] + [dict(rs.get("t.other"), id="t.zzz")]
    assert [r["id"] for r in select_rules(other, profile)] == ["t.ssh.x", "t.ssh.x"]
    other[0] = dict(other[0], id="t.changed")
    assert [r["id"] for r in select_rules(other, profile)] == ["t.ssh.x"]
    assert [r["id"] for r in select_rules(rs, profile)] == ["t.ssh.root-login"]


def test_loaded_rules_and_cache_leave_test_cases_in_the_rule_file(tmp_path, cache):
    from scanner.engine import rules as rules_mod
    from scanner.engine.selftest import missing_groups, run_rule_tests
    write(tmp_path, "checks/a/r.yaml", GOOD)
    for attempt in ("parsed", "from cache"):
        rules_mod._LOADED.clear()
        rule = load_ruleset(str(tmp_path / "checks")).get("t.ssh.root-login")
        assert "tests" not in rule, attempt
        # the cases still run, read from the rule's own file
        assert missing_groups(rule) == []
        got = [(group, result["status"]) for group, _i, _want, result in run_rule_tests(rule)]
        assert got == [("fail", "fail"), ("pass", "pass")], attempt
    bundle = marshal.loads(next(cache.glob("rules-*.marshal")).read_bytes())
    assert [sorted(r) for r in bundle["rules"]] == [sorted(rule)]
    assert "permitrootlogin" in json.dumps(bundle)          # the check is cached ...
    assert '"yes"' not in json.dumps(bundle)                 # ... the fail case's facts are not
    # a rule file without cases: no groups, and the missing ones named
    write(tmp_path, "checks/a/r.yaml", GOOD.split("tests:")[0])
    assert missing_groups(dict(rule, source=str(tmp_path / "checks/a/r.yaml"))) == ["pass", "fail"]


def test_shipped_rule_set_runs_its_cases_without_carrying_them():
    from scanner.engine.selftest import run_rule_tests
    rules = load_ruleset()
    assert not [r["id"] for r in rules if "tests" in r]
    rule = rules.get("mlps.ia.password-max-age")
    groups = set(group for group, _i, _want, _res in run_rule_tests(rule))
    assert {"pass", "fail"} <= groups


def test_unwritable_cache_dir_is_silent(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("XCSCAN_CACHE_DIR", str(blocker / "sub"))
    write(tmp_path, "checks/a/r.yaml", GOOD)
    assert len(load_ruleset(str(tmp_path / "checks"), use_cache=True)) == 1


# ---- profiles
def _profile(tmp_path, text):
    return load_profile(write(tmp_path, "profiles/p.yaml", textwrap.dedent(text)))


def test_profile_selection_params_and_severity(tmp_path, cache):
    write(tmp_path, "checks/mlps/root.yaml", GOOD)
    write(tmp_path, "checks/mlps/l3only.yaml", GOOD.replace("t.ssh.root-login", "t.ssh.l3").replace(
        "levels: [2, 3]", "levels: [3]"))
    write(tmp_path, "checks/crypto/c.yaml", GOOD.replace("t.ssh.root-login", "t.crypto.x").replace(
        "levels: [2, 3]\n", ""))
    rs = load_ruleset(str(tmp_path / "checks"))
    prof = _profile(tmp_path, """\
        id: l2
        select: [{areas: [mlps], levels: [2]}, {ids: ["t.crypto.*"]}]
        params: {max_tries: 2}
        severity: {t.ssh.root-login: low}
        """)
    facts = {"sshd": {"effective": {"permitrootlogin": "no", "maxauthtries": "3"}},
             "collection": {"sshd": {"status": "ok"}}}
    results, summary = evaluate(facts, {"components": []}, rs, profile=prof, now=NOW)
    by_id = dict((r["rule_id"], r) for r in results)
    assert sorted(by_id) == ["t.crypto.x", "t.ssh.root-login"]
    assert by_id["t.ssh.root-login"]["status"] == "fail"          # profile threshold 2 < 3
    assert by_id["t.ssh.root-login"]["params"] == {"max_tries": 2}
    assert by_id["t.ssh.root-login"]["severity"] == "low"
    assert summary["profile"] == "l2"
    prof2 = _profile(tmp_path, """\
        id: l3
        select: [{areas: [mlps], levels: [3]}]
        exclude: [t.ssh.l3]
        rule_params: {t.ssh.root-login: {max_tries: 5}}
        """)
    results, _ = evaluate(facts, {"components": []}, rs, profile=prof2, now=NOW)
    assert [(r["rule_id"], r["status"]) for r in results] == [("t.ssh.root-login", "pass")]


def test_profile_errors(tmp_path):
    with pytest.raises(DataError) as exc:
        load_profile("no-such-profile")
    assert "unknown profile" in str(exc.value) and "xinchuang" in str(exc.value)
    with pytest.raises(DataError) as exc:
        _profile(tmp_path, "id: x\nselect: [{area: [mlps]}]\n")
    assert "unknown selector key 'area'" in str(exc.value)


def test_shipped_profiles_load():
    for name in ("all", "xinchuang", "mlps-l2", "mlps-l3", "crypto", "data-security"):
        assert load_profile(name).id == name


# ---- waivers
WAIVERS = textwrap.dedent("""\
    waivers:
      - rule: t.ssh.root-login
        hosts: ["web-*"]
        justification: jump host needs it until the bastion is live
        approver: 张三
        expires: 2027-01-31
      - rule: "t.*"
        hosts: ["*"]
        justification: old exception
        approver: 李四
        expires: 2026-01-01
    """)


def _fail_facts():
    return {"sshd": {"effective": {"permitrootlogin": "yes", "maxauthtries": "3"}},
            "collection": {"sshd": {"status": "ok"}}}


def test_waiver_applies_to_matching_host_and_expires(tmp_path, cache):
    write(tmp_path, "checks/mlps/root.yaml", GOOD)
    rs = load_ruleset(str(tmp_path / "checks"))
    waivers = load_waivers(write(tmp_path, "w.yaml", WAIVERS))
    results, summary = evaluate(_fail_facts(), {"components": []}, rs, waivers=waivers,
                                host={"hostname": "web-01"}, now=NOW)
    r = results[0]
    assert r["status"] == "waived"
    assert r["waiver"]["approver"] == "张三" and r["waiver"]["original_status"] == "fail"
    assert summary["counts"]["waived"] == 1 and summary["score"] == 100.0
    assert summary["score_without_waivers"] == 0.0
    # another host: only the expired wildcard waiver matches -> stays failed, waiver shown as expired
    results, summary = evaluate(_fail_facts(), {"components": []}, rs, waivers=waivers,
                                host={"hostname": "db-01"}, now=NOW)
    assert results[0]["status"] == "fail" and results[0]["waiver"]["expired"] is True
    assert summary["waivers"] == {"applied": 0, "expired": 1, "unknown_rules": []}
    # the first waiver expires after 2027-01-31 on its own
    later = datetime.datetime(2027, 2, 1, 0, 0, 1)
    results, _ = evaluate(_fail_facts(), {"components": []}, rs, waivers=waivers, host={"hostname": "web-01"},
                          now=later)
    assert results[0]["status"] == "fail"
    # the expiry day itself is still covered
    results, _ = evaluate(_fail_facts(), {"components": []}, rs, waivers=waivers, host={"hostname": "web-01"},
                          now=datetime.datetime(2027, 1, 31, 23, 0))
    assert results[0]["status"] == "waived"


def test_waiver_never_hides_an_error(tmp_path, cache):
    write(tmp_path, "checks/mlps/root.yaml", GOOD)
    rs = load_ruleset(str(tmp_path / "checks"))
    waivers = load_waivers(write(tmp_path, "w.yaml", WAIVERS))
    results, _ = evaluate({}, {"components": []}, rs, waivers=waivers, host={"hostname": "web-01"}, now=NOW)
    assert results[0]["status"] == "error" and results[0]["waiver"] is None


@pytest.mark.parametrize("mutate,message,line", [
    (lambda s: s.replace("    approver: 张三\n", ""), "missing 'approver'", 2),
    (lambda s: s.replace("expires: 2027-01-31", "expires: next year"), "'expires' must be a date", 6),
    (lambda s: s.replace("hosts: [\"web-*\"]", "hosts: [1]"), "'hosts' must be a list", 3),
    (lambda s: s.replace("    justification: old exception\n", "    justification: old\n    reviewer: x\n"),
     "unknown waiver field 'reviewer'", 10),
    (lambda s: "waivers: {rule: x}\n", "top-level 'waivers' list", None),
    (lambda s: s.replace("approver: 张三", "approver: [张三"), "malformed YAML", None),
])
def test_malformed_waivers_clear_errors(tmp_path, mutate, message, line):
    path = write(tmp_path, "w.yaml", mutate(WAIVERS))
    with pytest.raises(DataError) as exc:
        load_waivers(path)
    text = str(exc.value)
    assert message in text and "w.yaml" in text
    if line:
        assert "w.yaml:%d" % line in text


# ---- coverage
def test_coverage_from_controls(tmp_path, cache, monkeypatch):
    rules_root = tmp_path / "rules"
    write(tmp_path, "rules/checks/mlps/root.yaml", GOOD)
    write(tmp_path, "rules/controls/lvl.yaml", textwrap.dedent("""\
        standard: GB/T 28448-2019
        level: 3
        items:
          - {id: L3-CES1-01, clause: "8.1.4.1 a)", area: {zh: 身份鉴别, en: Identification}, title: {zh: a, en: a},
             status: automated, rules: [t.ssh.root-login]}
          - {id: L3-CES1-02, clause: "8.1.4.1 b)", title: {zh: b, en: b}, status: partial, rules: [t.missing]}
          - {id: L3-CES1-03, clause: "8.1.4.1 c)", title: {zh: c, en: c}, status: manual, rules: [],
             evidence: {zh: 查看, en: look}}
        """))
    monkeypatch.setenv("XCSCAN_RULES", str(rules_root))
    rs = load_ruleset(str(rules_root / "checks"))
    prof = _profile(tmp_path, "id: x\nselect: [{areas: [mlps]}]\ncontrols: lvl\n")
    _, summary = evaluate(_fail_facts(), {"components": []}, rs, profile=prof, now=NOW)
    cov = summary["coverage"]
    assert cov["level"] == "lvl"
    assert [(i["id"], i["result"]) for i in cov["items"]] == [
        ("L3-CES1-01", "fail"), ("L3-CES1-02", None), ("L3-CES1-03", "manual")]
    assert cov["counts"] == {"automated": 1, "partial": 0, "manual": 1, "not_covered": 1}


def test_lint_data_checks_profiles_and_controls(tmp_path):
    from scanner.engine.rules import lint_data
    write(tmp_path, "rules/profiles/p.yaml", "id: p\nselect: [{areas: [mlps]}]\ncontrols: nope\n")
    write(tmp_path, "rules/profiles/bad.yaml", "id: bad\nselect: []\n")
    write(tmp_path, "rules/controls/c.yaml", textwrap.dedent("""\
        items:
          - id: L3-CES1-01
            status: automated
            rules:
              - t.ssh.root-login
              - t.gone
        """))
    probs = [(os.path.basename(p.path), p.line, str(p.message)) for p in
             lint_data({"t.ssh.root-login"}, str(tmp_path / "rules"))]
    assert ("p.yaml", 3, "controls 'nope': no rules/controls/nope.yaml") in probs
    assert any(name == "bad.yaml" and "non-empty list" in msg for name, _, msg in probs)
    assert ("c.yaml", 6, "control L3-CES1-01 names unknown rule 't.gone'") in probs


def test_shipped_profiles_and_controls_are_consistent():
    from scanner.engine.rules import lint_data
    ids = set(r["id"] for r in load_ruleset())
    assert [str(p) for p in lint_data(ids)] == []


def test_lint_mlps_rules_need_levels(tmp_path):
    write(tmp_path, "checks/mlps/r.yaml", GOOD.replace("levels: [2, 3]\n", ""))
    write(tmp_path, "checks/crypto/c.yaml", GOOD.replace("t.ssh.root-login", "t.c.x").replace("levels: [2, 3]\n", ""))
    rules, probs = problems_of(tmp_path)
    assert [r["id"] for r in rules] == ["t.c.x"]
    assert [(name, line) for name, line, m in probs if "need 'levels'" in m] == [("r.yaml", 1)]


def test_lint_refuses_a_title_placeholder_that_is_not_a_param(tmp_path):
    """A title's `{name}` is filled from the rule's (tailored) params; a typo would print braces to the
    officer, so lint names it."""
    from scanner.engine.rules import validate_rule
    doc = {"id": "custom.min-len", "title": {"zh": "口令不少于{min_len}位", "en": "At least {min_length} characters"},
           "category": "baseline", "severity": "low", "params": {"min_length": 8},
           "check": {"fact": "pam.quality.minlen", "op": "ge", "value": {"param": "min_length"}},
           "remediation": {"zh": "设置 minlen", "en": "set minlen"},
           "tests": {"pass": [{"facts": {"pam": {"quality": {"minlen": 9}}}}], "fail": [{"facts": {}}]}}
    problems = validate_rule(doc)
    assert [(where, "min_len" in msg) for where, msg in problems] == [(("title", "zh"), True)]
