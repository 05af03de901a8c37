"""JUnit XML: one test case per rule result, schema-valid, failures and errors carry evidence."""
import os
import xml.etree.ElementTree as ET

import pytest

from report_fixtures import PAYLOAD, inject, inventory_only, load
from scanner.render import render

XSD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "junit", "junit-10.xsd")


@pytest.fixture(scope="module")
def schema():
    import xmlschema
    return xmlschema.XMLSchema(XSD)


@pytest.fixture(scope="module")
def report():
    return load()


def _cases(xml_text):
    root = ET.fromstring(xml_text.encode("utf-8"))
    return root, dict((c.get("name").split(":")[0], c) for c in root.iter("testcase"))


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_validates_against_junit_schema(schema, report, lang):
    out = render(report, "junit", lang)
    schema.validate(out)


def test_schema_rejects_a_broken_document(schema):
    # the schema is strict enough to catch a renderer regression (testsuite without counts)
    assert not schema.is_valid('<testsuites><testsuite name="x"><testcase/></testsuite></testsuites>')


def test_one_case_per_rule_with_counts(report):
    root, cases = _cases(render(report, "junit", "en"))
    assert set(cases) == set(r["rule_id"] for r in report["results"])
    suite = root.find("testsuite")
    assert suite.get("tests") == "15" and suite.get("failures") == "6" and suite.get("errors") == "1"
    assert suite.get("skipped") == "3"   # manual, not_applicable, waived
    assert suite.get("hostname") == "gov-app-01"
    props = dict((p.get("name"), p.get("value")) for p in suite.iter("property"))
    assert props["report_id"] == report["report_id"] and props["profile"] == "mlps-l3"


def test_failures_and_errors_carry_evidence(report):
    _root, cases = _cases(render(report, "junit", "en"))
    failure = cases["mlps.ac.root-login"].find("failure")
    assert failure is not None and failure.get("type") == "high"
    assert "found yes" in failure.get("message")
    assert "sshd.effective.permitrootlogin = yes (sshd -T)" in failure.text
    assert "Expected: no" in failure.text and "Set PermitRootLogin no" in failure.text
    error = cases["mlps.ac.selinux"].find("error")
    assert error is not None and "selinux.mode = null" in error.text
    assert cases["mlps.ia.password-minlen"].find("failure") is None
    assert cases["mlps.ia.password-minlen"].find("skipped") is None


def test_waived_manual_and_na_are_skipped_with_reason(report):
    _root, cases = _cases(render(report, "junit", "zh"))
    waived = cases["mlps.ia.faillock"].find("skipped")
    assert waived.get("type") == "waived"
    assert "张伟（信息安全处）" in waived.get("message") and "2027-03-31" in waived.get("message")
    assert cases["mlps.ia.mfa"].find("skipped").get("message") == "需人工核查"
    assert cases["mlps.au.auditd"].find("skipped").get("type") == "not_applicable"


def test_markup_and_control_characters_survive_as_text(schema, report):
    doc = inject(report, PAYLOAD + "\x00\x1b[31m\x0b")
    out = render(doc, "junit", "en")
    schema.validate(out)   # well-formed and valid despite characters XML 1.0 forbids
    _root, cases = _cases(out)
    case = [c for n, c in cases.items() if n.startswith("mlps.ac.root-login")][0]
    assert PAYLOAD in case.get("name")
    assert "\x00" not in out and "\x1b" not in out


def test_inventory_only_report_gives_an_empty_valid_suite(schema, report):
    out = render(inventory_only(report), "junit", "en")
    schema.validate(out)
    assert ET.fromstring(out.encode()).find("testsuite").get("tests") == "0"


def test_failure_without_an_actual_value_has_a_clean_message(report):
    _root, cases = _cases(render(report, "junit", "en"))
    failure = cases["mlps.ia.session-timeout"].find("failure")
    assert failure.get("message") == "Idle sessions time out (TMOUT <= 600)"


def test_error_message_carries_the_reason():
    report = load()
    for res in report["results"]:
        if res["rule_id"] == "mlps.ac.selinux":
            res["reason"] = {"zh": "采集器 mac 失败：权限不足", "en": "the mac collector failed: permission denied"}
    _root, cases = _cases(render(report, "junit", "zh"))
    assert cases["mlps.ac.selinux"].find("error").get("message") == \
        "启用强制访问控制（SELinux enforcing）：无法评估 (采集器 mac 失败：权限不足)"
