"""The host and rule pages offer a fix script (POSIX shell / Ansible) for the failures shown: only
automated fixes (never an opt-in one), scoped like the pages, audited; the downloaded script fixes a
real fixture root."""
from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
import yaml

from fleet import Agent
from test_web import web_login

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _result(doc, rule_id, status, params=None):
    """Set (or add: the fleet reports carry a fixed set of rules) ``rule_id``'s result in ``doc``."""
    found = [r for r in doc["results"] if r["rule_id"] == rule_id]
    if not found:
        found = [dict(doc["results"][0], rule_id=rule_id)]
        doc["results"].append(found[0])
    found[0]["status"] = status
    if params is not None:
        found[0]["params"] = params
    return doc


@pytest.fixture(scope="module")
def failing_host(server):
    a = Agent("fixweb-%s" % uuid.uuid4().hex[:6], machine_id=uuid.uuid4().hex)
    with server.client() as c:
        assert a.enroll(c, server.token(org="/fixweb")).status_code == 201
        assert a.submit(c, a.report(fail_rules=["mlps.ia.password-max-age", "mlps.ia.ssh-root-login"])).status_code == 200
    return a


def test_host_page_offers_the_script_for_its_failures(server, failing_host, tmp_path):
    w = web_login(server)
    page = w.get("/hosts/%s" % failing_host.host_id)
    assert 'id="fix-links"' in page.text and "/hosts/%s/fix.sh" % failing_host.host_id in page.text
    sh = w.get("/hosts/%s/fix.sh" % failing_host.host_id)
    assert sh.status_code == 200 and sh.headers["content-type"].startswith("text/x-shellscript")
    assert sh.headers["content-disposition"] == 'attachment; filename="xcscan-fix-%s.sh"' % failing_host.hostname
    assert "xc_set_key '/etc/login.defs' 0644 'PASS_MAX_DAYS' ' ' '90'" in sh.text
    assert "PermitRootLogin" not in sh.text          # an opt-in fix is never handed out by the aggregator
    yml = w.get("/hosts/%s/fix.yml" % failing_host.host_id)
    tasks = yaml.safe_load(yml.text)[0]["tasks"]
    assert any(t.get("ansible.builtin.lineinfile", {}).get("line") == "PASS_MAX_DAYS 90" for t in tasks)
    audit = w.get("/api/v1/audit", params={"limit": 20}).json()
    assert ("export.fix_script", failing_host.host_id) in [(e["action"], e["target"]) for e in audit]
    if os.geteuid() == 0:  # the downloaded script fixes a real root
        from baseline_support import materialise
        from fix_support import run_script, status_of
        root = materialise("rhel-default", tmp_path)
        assert status_of(root, "mlps.ia.password-max-age") == "fail"
        proc = run_script(sh.text, root, str(tmp_path / "bk"), tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert status_of(root, "mlps.ia.password-max-age") == "pass"


def test_rule_page_offers_the_script_when_a_visible_host_fails(server, failing_host):
    w = web_login(server, lang="zh")
    page = w.get("/rules/mlps.ia.password-max-age")
    assert 'id="fix-links"' in page.text and "加固脚本（sh）" in page.text
    sh = w.get("/rules/mlps.ia.password-max-age/fix.sh")
    assert sh.status_code == 200 and "PASS_MAX_DAYS" in sh.text
    assert w.get("/rules/mlps.ia.ssh-root-login/fix.sh").status_code == 404   # opt-in only
    assert w.get("/rules/no.such.rule/fix.yml").status_code == 404
    with server.client(follow_redirects=False) as anon:
        assert anon.get("/rules/mlps.ia.password-max-age/fix.sh").status_code in (303, 401)
        assert anon.get("/hosts/%s/fix.sh" % failing_host.host_id).status_code in (303, 401)


def test_host_script_uses_the_values_its_report_was_judged_with(server):
    """A host scanned with a tailored profile gets its own values (PASS_MAX_DAYS 60, not the shipped 90);
    a value no profile could set (a compromised host writing a newline into its report to add a line
    of its own to sshd_config) leaves that rule out of the script instead."""
    a = Agent("fixtail-%s" % uuid.uuid4().hex[:6], machine_id=uuid.uuid4().hex)
    doc = a.report(fail_rules=["mlps.ia.password-max-age"])
    _result(doc, "mlps.ia.password-max-age", "fail", {"max_days": 60})
    _result(doc, "mlps.ia.ssh-max-auth-tries", "fail", {"max_tries": "4\nPermitRootLogin yes"})
    _result(doc, "mlps.ip.ssh-no-x11-forwarding", "fail", {})   # a failure judged with no params given
    with server.client() as c:
        assert a.enroll(c, server.token(org="/fixweb")).status_code == 201
        assert a.submit(c, doc).status_code == 200
    w = web_login(server)
    sh = w.get("/hosts/%s/fix.sh" % a.host_id)
    assert sh.status_code == 200
    assert "xc_set_key '/etc/login.defs' 0644 'PASS_MAX_DAYS' ' ' '60'" in sh.text
    assert "MaxAuthTries" not in sh.text and "PermitRootLogin" not in sh.text
    assert "xc_sshd 'X11Forwarding' 'no'" in sh.text       # the host's other sshd failure is in the script
    tasks = yaml.safe_load(w.get("/hosts/%s/fix.yml" % a.host_id).text)[0]["tasks"]
    assert any(t.get("ansible.builtin.lineinfile", {}).get("line") == "PASS_MAX_DAYS 60" for t in tasks)
    assert not [t for t in tasks if "MaxAuthTries" in str(t)]
    # the rule page speaks for many hosts: the shipped profile's value
    assert "'PASS_MAX_DAYS' ' ' '90'" in w.get("/rules/mlps.ia.password-max-age/fix.sh").text


def test_scripts_offered_only_for_failures_the_user_may_see(server):
    """A user scoped to one department: the other department's host script is 404, and a rule whose only
    failing hosts are in the other department has no script for them (not even the rule's own: its 200
    would say that some host somewhere fails it). The route sweep of test_scope.py asks for an opt-in rule,
    which is 404 for everyone; this asks for one that has a script."""
    tag = uuid.uuid4().hex[:6]
    mine = Agent("fixmine-%s" % tag, machine_id=uuid.uuid4().hex)
    theirs = Agent("fixtheirs-%s" % tag, machine_id=uuid.uuid4().hex)
    rule = "mlps.ip.sysctl-log-martians"
    doc_mine = _result(_result(mine.report(), "mlps.ia.password-min-age", "fail"), rule, "pass")
    with server.client() as c:
        assert mine.enroll(c, server.token(org="/fixscope-%s/mine" % tag)).status_code == 201
        assert mine.submit(c, doc_mine).status_code == 200
        assert theirs.enroll(c, server.token(org="/fixscope-%s/theirs" % tag)).status_code == 201
        assert theirs.submit(c, _result(theirs.report(), rule, "fail")).status_code == 200
    admin = server.login()
    name, password = "fixscoped-%s" % tag, "Fix-scoped-pw-%s" % tag
    assert admin.post("/api/v1/users", json={"username": name, "password": password, "role": "officer",
                                             "orgs": ["/fixscope-%s/mine" % tag]}).status_code == 201
    admin.close()
    w = web_login(server, who=(name, password))
    own = w.get("/hosts/%s/fix.sh" % mine.host_id)
    assert own.status_code == 200 and "PASS_MIN_DAYS" in own.text and "log_martians" not in own.text
    for kind in ("sh", "yml"):
        resp = w.get("/hosts/%s/fix.%s" % (theirs.host_id, kind))
        assert resp.status_code == 404 and theirs.hostname not in resp.text
        assert w.get("/rules/%s/fix.%s" % (rule, kind)).status_code == 404
    assert 'id="fix-links"' not in w.get("/rules/%s" % rule).text
    # an unscoped admin sees the failing host, and gets the rule's script
    assert web_login(server).get("/rules/%s/fix.sh" % rule).status_code == 200


def test_server_scripts_leave_out_fixes_with_a_precondition():
    """The aggregator's scripts are made without checking the host's facts: a fix with a precondition
    (audit logs 0700 only while auditd's log_group is root) is left to `xcscan fix` on the host."""
    from scanner.server.web.fixes import _items
    ids = [rule["id"] for rule, _params in _items([("mlps.au.audit-log-perms", "mlps-l3"),
                                                    ("mlps.au.audit-config-perms", "mlps-l3")])]
    assert ids == ["mlps.au.audit-config-perms"]
