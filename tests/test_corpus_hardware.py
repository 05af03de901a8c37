"""Every os, cpu (cpuinfo and lscpu) and dmi case of ../shared/corpus, against its ground truth."""
import json
import os
import subprocess
import sys

import pytest

from corpus import case_ids, manifest_cases, require_corpus

OS_CASES = manifest_cases(category="os")
CPU_CASES = [c for c in manifest_cases(category="cpu") if c["path"].startswith("cpu/")]
LSCPU_CASES = manifest_cases(category="cpu", prefix="lscpu/")
DMI_CASES = manifest_cases(category="server", prefix="dmi/")


def _case_dir(case):
    return os.path.join(require_corpus(), case["path"])


def _inventory(case):
    from scanner.pipeline import inventory_report
    return inventory_report(root=_case_dir(case))


def _components(report, category):
    return [c for c in report["inventory"]["components"] if c["category"] == category]


def _cli_json(root):
    # cpu/ and dmi/ cases are partial roots (cpuinfo or DMI only): no OS there, so --allow-unknown-os
    proc = subprocess.run([sys.executable, "-m", "scanner", "inventory", "--root", root, "--format", "json",
                           "--allow-unknown-os"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    return json.loads(proc.stdout.decode("utf-8"))


def test_manifest_has_the_cases_we_expect():
    require_corpus()
    assert len(OS_CASES) >= 27 and len(CPU_CASES) >= 10 and len(LSCPU_CASES) >= 6 and len(DMI_CASES) >= 11


@pytest.mark.parametrize("case", [c for c in OS_CASES if c["path"] in ("os/tencentos-3.1/",)] +
                         [c for c in CPU_CASES if c["path"] == "cpu/cavium-octeon-mips/"] +
                         [c for c in DMI_CASES if c["path"] == "dmi/sugon-i620-g20-xeon/"],
                         ids=lambda c: c["path"].strip("/"))
def test_real_cli_reports_ground_truth(case):
    report = _cli_json(_case_dir(case))
    assert report["schema"] == "xcscan.report/1"
    assert report["host"]["live"] is False
    comps = _components(report, case["category"])
    assert [(c["product_id"], c["origin"]) for c in comps] == [(case["product_id"], case["origin"])]
    if "cpu_product_id" in case:
        cpus = _components(report, "cpu")
        assert [(c["product_id"], c["origin"]) for c in cpus] == [(case["cpu_product_id"], case["cpu_origin"])]


@pytest.mark.parametrize("case", OS_CASES, ids=case_ids(OS_CASES))
def test_os_case(case):
    report = _inventory(case)
    comps = _components(report, "os")
    assert len(comps) == 1, comps
    comp = comps[0]
    assert (comp["product_id"], comp["origin"]) == (case["product_id"], case["origin"])
    assert comp["evidence"] and comp["evidence"][0]["kind"] == "os-release"
    facts_os = report["facts"]["os"]
    assert facts_os["family"] in ("rhel", "debian", "suse")
    if comp["origin"] == "foreign":
        assert comp["substitutes"]


@pytest.mark.parametrize("case", CPU_CASES, ids=case_ids(CPU_CASES))
def test_cpu_cpuinfo_case(case):
    report = _inventory(case)
    comps = _components(report, "cpu")
    assert [(c["product_id"], c["origin"]) for c in comps] == [(case["product_id"], case["origin"])]
    assert any(e["kind"] == "cpuinfo" and e["source"] == "/proc/cpuinfo" for e in comps[0]["evidence"])
    assert report["facts"]["cpu"]["logical_cpus"] >= 1


@pytest.mark.parametrize("case", LSCPU_CASES, ids=case_ids(LSCPU_CASES))
def test_cpu_lscpu_case_parser_and_pipeline(case):
    from scanner.catalog import default_catalog
    from scanner.classify.cpu import match_signals
    from scanner.parsers import lscpu
    with open(os.path.join(_case_dir(case), "lscpu.txt"), encoding="utf-8") as fh:
        summary = lscpu.parse_and_summarize(fh.read())
    product = match_signals(summary, default_catalog())
    assert (product["id"], product["origin"]) == (case["product_id"], case["origin"])
    assert summary["logical_cpus"] and summary["sockets"]
    # the same through the inventory (saved lscpu output in an offline root)
    comps = _components(_inventory(case), "cpu")
    assert [(c["product_id"], c["origin"]) for c in comps] == [(case["product_id"], case["origin"])]
    assert comps[0]["evidence"][0]["kind"] == "lscpu"


@pytest.mark.parametrize("case", DMI_CASES, ids=case_ids(DMI_CASES))
def test_dmi_case_server_and_cpu(case):
    from scanner.catalog import default_catalog
    from scanner.classify.cpu import _dmi_signals, match_signals
    from scanner.parsers import dmidecode
    report = _inventory(case)
    servers = _components(report, "server")
    assert [(c["product_id"], c["origin"]) for c in servers] == [(case["product_id"], case["origin"])]
    assert servers[0]["evidence"][0]["kind"] == "dmi"
    if case["origin"] == "unknown":
        assert servers[0]["origin_policy"]["en"] and servers[0]["origin_policy"]["zh"]
    # the CPU, through the dmidecode parser directly ...
    with open(os.path.join(_case_dir(case), "dmidecode.txt"), encoding="utf-8") as fh:
        procs = dmidecode.summary(fh.read())["processors"]
    assert procs
    found = set()
    for proc in procs:
        product = match_signals(_dmi_signals(proc), default_catalog())
        found.add((product["id"], product["origin"]))
    assert found == {(case["cpu_product_id"], case["cpu_origin"])}
    # ... and as a separate component of the inventory, with its own origin
    cpus = _components(report, "cpu")
    assert [(c["product_id"], c["origin"]) for c in cpus] == [(case["cpu_product_id"], case["cpu_origin"])]
    assert cpus[0]["details"]["sockets"] == len(procs)
