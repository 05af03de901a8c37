"""Server brand from DMI; VMs are not servers; a domestic brand with a foreign CPU is two components."""
import pytest


def _report(make_root, files):
    from scanner.pipeline import inventory_report
    return inventory_report(root=make_root(files))


def _dmi(sys_vendor, product="X", board=None):
    files = {"/sys/class/dmi/id/sys_vendor": sys_vendor + "\n", "/sys/class/dmi/id/product_name": product + "\n"}
    if board is not None:
        files["/sys/class/dmi/id/board_vendor"] = board + "\n"
    return files


def _servers(report):
    return [c for c in report["inventory"]["components"] if c["category"] == "server"]


@pytest.mark.parametrize("vendor,product,origin", [
    ("Dell Inc.   ", "dell", "foreign"),          # trailing spaces are common
    ("XFUSION", "xfusion", "domestic"),
    ("New H3C Technologies Co., Ltd.", "h3c", "domestic"),
    ("GREATWALL", "greatwall", "domestic"),
    ("Powerleader", "powerleader", "domestic"),
    ("Supermicro", "supermicro", "foreign"),
    ("FUJITSU", "fujitsu", "foreign"),
    ("Oracle Corporation", "oracle", "foreign"),
    ("Lenovo ", "lenovo", "unknown"),
])
def test_brands(make_root, vendor, product, origin):
    servers = _servers(_report(make_root, _dmi(vendor)))
    assert [(s["product_id"], s["origin"]) for s in servers] == [(product, origin)]
    assert servers[0]["evidence"][0] == {"kind": "dmi", "value": "sys_vendor=" + vendor.strip(),
                                         "source": "/sys/class/dmi/id/sys_vendor"}


def test_placeholder_sys_vendor_falls_back_to_board_vendor(make_root):
    servers = _servers(_report(make_root, _dmi("To be filled by O.E.M.", board="Inspur")))
    assert [(s["product_id"], s["origin"]) for s in servers] == [("inspur", "domestic")]


def test_unknown_brand_is_kept_with_its_evidence(make_root):
    servers = _servers(_report(make_root, _dmi("Acme Rackworks", "AR-1")))
    assert servers[0]["product_id"] is None and servers[0]["origin"] == "unknown"
    assert servers[0]["name"]["en"] == "Acme Rackworks" and servers[0]["model"] == "AR-1"


@pytest.mark.parametrize("vendor,product,kind", [("QEMU", "Standard PC (Q35 + ICH9, 2009)", "KVM"),
                                                  ("VMware, Inc.", "VMware Virtual Platform", "VMware"),
                                                  ("HUAWEI CLOUD", "OpenStack Nova", "Huawei Cloud")])
def test_virtual_machine_is_not_a_server(make_root, vendor, product, kind):
    report = _report(make_root, _dmi(vendor, product))
    assert _servers(report) == []
    virt = report["facts"]["host"]["virtualization"]
    assert virt["kind"] == "vm"
    assert report["host"]["virtualization"] == "vm"


def test_domestic_brand_with_foreign_cpu_is_two_components(make_root):
    files = _dmi("Sugon", "I620-G30")
    files["/proc/cpuinfo"] = ("processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 85\n"
                              "model name\t: Intel(R) Xeon(R) Silver 4210 CPU @ 2.20GHz\n\n")
    report = _report(make_root, files)
    by_cat = dict((c["category"], (c["product_id"], c["origin"])) for c in report["inventory"]["components"])
    assert by_cat["server"] == ("sugon", "domestic") and by_cat["cpu"] == ("intel", "foreign")
    loc = report["inventory"]["localization"]
    assert loc["by_category"]["server"]["rate"] == 1.0 and loc["by_category"]["cpu"]["rate"] == 0.0


def test_lenovo_policy_is_documented_and_not_counted(make_root):
    report = _report(make_root, _dmi("Lenovo", "ThinkSystem SR650"))
    comp = _servers(report)[0]
    assert "policy" in comp["origin_policy"]["en"] and comp["origin_policy"]["zh"]
    assert report["inventory"]["localization"]["by_category"]["server"] == {
        "domestic": 0, "foreign": 0, "unknown": 1, "rate": None}


def test_saved_dmidecode_fills_missing_sysfs(make_root):
    text = ("# dmidecode 3.2\n\nHandle 0x0001, DMI type 1, 27 bytes\nSystem Information\n\tManufacturer: Huawei\n"
            "\tProduct Name: TaiShan 200 (Model 2280)\n\nHandle 0x0003, DMI type 2, 17 bytes\n"
            "Base Board Information\n\tManufacturer: Huawei\n\tProduct Name: BC82AMDDA\n")
    report = _report(make_root, {"/sos_commands/hardware/dmidecode": text})
    comp = _servers(report)[0]
    assert (comp["product_id"], comp["model"]) == ("huawei", "TaiShan 200 (Model 2280)")
    assert comp["evidence"][0]["kind"] == "dmidecode"
    assert comp["evidence"][0]["source"] == "/sos_commands/hardware/dmidecode"


def test_dmidecode_parser_skips_unpopulated_sockets_and_placeholders():
    from scanner.parsers import dmidecode
    text = ("Handle 0x0001, DMI type 1, 27 bytes\nSystem Information\n\tManufacturer: To be filled by O.E.M.\n\n"
            "Handle 0x0041, DMI type 4, 48 bytes\nProcessor Information\n\tSocket Designation: CPU2\n"
            "\tManufacturer: Intel(R) Corporation\n\tID: 00 00 00 00 00 00 00 00\n\tVersion: Not Specified\n"
            "\tStatus: Unpopulated\n")
    summary = dmidecode.summary(text)
    assert summary["system"]["manufacturer"] is None
    assert summary["processors"] == []


def test_live_dmidecode_run_feeds_processor_records(make_root, tmp_path, monkeypatch):
    """Live path: `dmidecode -t 0,1,2,4` (here a stand-in printing a real TaiShan 200 capture)."""
    import os
    from corpus import require_corpus
    from scanner.collect import dmi
    from scanner.context import Context
    if os.geteuid() != 0:
        pytest.skip("the live dmidecode path runs only as root")
    sample = os.path.join(require_corpus(), "dmi", "huawei-taishan-200-kunpeng920", "dmidecode.txt")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "dmidecode"
    fake.write_text("#!/bin/sh\necho \"$@\" > %s/args\nexec cat %s\n" % (tmp_path, sample))
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", "%s:%s" % (bindir, os.environ.get("PATH", "")))
    root = make_root({"/sys/class/dmi/id/sys_vendor": "Huawei\n"})
    ctx = Context(root, live=True)
    facts = dmi.collect(ctx)
    assert (tmp_path / "args").read_text().split() == ["-t", "0", "-t", "1", "-t", "2", "-t", "4"]
    assert facts["dmidecode_source"] == "dmidecode -t 0,1,2,4"
    assert [(p["implementer"], p["part"], p["version"]) for p in facts["processors"]] == [
        ("0x48", "0xd01", "Kunpeng 920-4826")] * 2
    assert facts["product_name"] == "TaiShan 200 (Model 2280)"  # filled from dmidecode: not in this sysfs
    assert ctx.errors == []
