"""Storage arrays seen as LUNs: vendor/model strings from multipath-tools' hwtable; local disks ignored."""
import os

import pytest

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "hardware", "taishan-kylin")


def _disk(name, vendor, model, wwid=None):
    base = "/sys/block/%s/device/" % name
    files = {base + "vendor": vendor.ljust(8) + "\n", base + "model": model.ljust(16) + "\n"}
    if wwid:
        files[base + "wwid"] = wwid + "\n"
    return files


def _storage(make_root, files):
    from scanner.pipeline import inventory_report
    report = inventory_report(root=make_root(files))
    return [c for c in report["inventory"]["components"] if c["category"] == "storage"], report


def test_fixture_root_counts_luns_and_paths():
    from scanner.pipeline import inventory_report
    report = inventory_report(root=FIXTURE)
    comps = dict((c["product_id"], c) for c in report["inventory"]["components"] if c["category"] == "storage")
    assert sorted(comps) == ["huawei", "macrosan"]
    huawei = comps["huawei"]
    assert huawei["origin"] == "domestic"
    # sdb+sdc and sdd+sde are two paths each to two LUNs; nvme0n1 is an OceanStor NVMe namespace
    assert huawei["details"]["paths"] == 5 and huawei["details"]["luns"] == 3
    # the local SATA SSD (vendor ATA, even with HUAWEI in the model) is not an array
    assert "sda" not in huawei["details"]["devices"]


@pytest.mark.parametrize("vendor,model,product,origin", [
    ("HUASY", "S5500T", "huawei", "domestic"),
    ("SUGON", "XSG1", "huawei", "domestic"),       # OEM re-badge of OceanStor V3+
    ("INSPUR", "MCS", "inspur", "domestic"),
    ("MacroSAN", "LU", "macrosan", "domestic"),
    ("DGC", "VRAID", "emc", "foreign"),
    ("EMC", "SYMMETRIX", "emc", "foreign"),
    ("NETAPP", "LUN C-Mode", "netapp", "foreign"),
    ("IBM", "2145", "ibm", "foreign"),
    ("HITACHI", "OPEN-V", "hitachi", "foreign"),
    ("3PARdata", "VV", "hpe", "foreign"),
    ("DellEMC", "PowerStore", "dell", "foreign"),
    ("PURE", "FlashArray", "pure", "foreign"),
])
def test_array_signatures(make_root, vendor, model, product, origin):
    comps, _ = _storage(make_root, _disk("sdb", vendor, model))
    assert [(c["product_id"], c["origin"], c["category"]) for c in comps] == [(product, origin, "storage")]
    if origin == "foreign":
        assert set(comps[0]["substitutes"]) == {"huawei", "inspur", "macrosan"}


@pytest.mark.parametrize("vendor,model", [("ATA", "Samsung SSD 870"), ("QEMU", "QEMU HARDDISK"),
                                          ("HP", "LOGICAL VOLUME"), ("DELL", "PERC H730P Mini"),
                                          ("SEAGATE", "ST600MM0088"), ("HUAWEI", "HWE32SS3008M001N")])
def test_local_disks_are_not_arrays(make_root, vendor, model):
    comps, report = _storage(make_root, _disk("sda", vendor, model))
    assert comps == []
    assert report["facts"]["storage"]["disks"][0]["vendor"] == vendor


def test_loop_and_zram_devices_are_not_read(make_root):
    files = _disk("sda", "ATA", "Samsung SSD 870")
    files["/sys/block/loop0/size"] = "0\n"
    files["/sys/block/zram0/size"] = "0\n"
    _, report = _storage(make_root, files)
    assert [d["name"] for d in report["facts"]["storage"]["disks"]] == ["sda"]
