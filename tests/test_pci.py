"""Accelerators from the PCI tree: only display/processing-accelerator classes; names from pci.ids."""
import os

import pytest

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "hardware", "taishan-kylin")


def _dev(slot, vendor, device, klass):
    base = "/sys/bus/pci/devices/%s/" % slot
    return {base + "vendor": "0x%s\n" % vendor, base + "device": "0x%s\n" % device, base + "class": "0x%s\n" % klass}


def _accelerators(report):
    return [c for c in report["inventory"]["components"] if c["category"] == "accelerator"]


def test_fixture_root():
    from scanner.pipeline import inventory_report
    report = inventory_report(root=FIXTURE)
    comps = dict((c["product_id"], c) for c in _accelerators(report))
    assert sorted(k or "" for k in comps) == ["", "ascend", "nvidia", "sophgo"]
    ascend = comps["ascend"]
    assert ascend["details"]["count"] == 2 and ascend["model"] == "Ascend 910"  # not in pci.ids: catalog name
    assert comps["nvidia"]["model"] == "GA100 [A100 SXM4 40GB]"                 # from the root's pci.ids
    assert comps["nvidia"]["origin"] == "foreign" and "ascend" in comps["nvidia"]["substitutes"]
    unknown = comps[None]
    assert unknown["origin"] == "unknown" and unknown["name"]["en"] == "Xilinx Corporation"
    # the Hi1822 NIC, the Hi1710 BMC VGA and the Mellanox NIC are not accelerators
    slots = [s for c in comps.values() for s in c["details"]["slots"]]
    assert not set(slots) & {"0000:03:00.0", "0000:05:00.0", "0000:5e:00.0"}
    assert report["facts"]["pci"]["pci_ids"] == "/usr/share/misc/pci.ids"


@pytest.mark.parametrize("vendor,device,klass,product", [
    ("19e5", "d100", "120000", "ascend"), ("19e5", "d802", "120000", "ascend"),
    ("cabc", "0370", "120000", "cambricon"), ("1d94", "6211", "038000", "hygon-dcu"),
    ("1ed5", "0323", "030000", "moore-threads"), ("1e3e", "0002", "030200", "iluvatar"),
    ("1e36", "c031", "120000", "enflame"), ("9999", "0a01", "038000", "metax"), ("1d22", "3684", "120000", "kunlun"),
    ("0731", "9100", "030000", "jingjia"), ("1002", "740c", "038000", "amd-gpu"), ("8086", "56c0", "030000", "intel-gpu"),
    ("1da3", "1020", "120000", "habana"),
])
def test_accelerator_ids(make_root, vendor, device, klass, product):
    from scanner.pipeline import inventory_report
    report = inventory_report(root=make_root(_dev("0000:3b:00.0", vendor, device, klass)))
    assert [c["product_id"] for c in _accelerators(report)] == [product]
    assert report["facts"]["pci"]["pci_ids"] is None  # the root has no pci.ids: names from the catalog only


@pytest.mark.parametrize("vendor,device,klass", [
    ("1d94", "14b0", "060000"),   # Hygon CPU host bridge, same vendor id as the DCU
    ("10de", "1aef", "040300"),   # NVIDIA HD audio function of a GPU
    ("8086", "1572", "020000"),   # Intel NIC
    ("1a03", "2000", "030000"),   # ASPEED BMC VGA: a display function nobody catalogued
    ("19e5", "1711", "030000"),   # Huawei Hi1710 BMC VGA: Huawei vendor id, not an Ascend device
])
def test_non_accelerators(make_root, vendor, device, klass):
    from scanner.pipeline import inventory_report
    report = inventory_report(root=make_root(_dev("0000:00:01.0", vendor, device, klass)))
    assert _accelerators(report) == []


def test_pci_ids_is_only_read_when_an_accelerator_class_exists(make_root):
    from scanner.pipeline import inventory_report
    files = _dev("0000:00:03.0", "8086", "1572", "020000")
    files["/usr/share/misc/pci.ids"] = "8086  Intel Corporation\n\t1572  Ethernet Controller X710\n"
    report = inventory_report(root=make_root(files))
    assert report["facts"]["pci"]["pci_ids"] is None
    assert report["facts"]["pci"]["devices"][0]["vendor_name"] is None


def test_pci_ids_lookup_stops_at_classes():
    from scanner.parsers.pci_ids import lookup
    text = "# c\n10de  NVIDIA Corporation\n\t20b0  GA100\n\t\t10de 1450  sub\n1234  Other\n\t20b0  nope\n" \
           "C 03  Display controller\n\t00  VGA compatible controller\n"
    found = lookup(text, {"10de": {"20b0"}, "0300": {"00"}})
    assert found == {"vendors": {"10de": "NVIDIA Corporation"}, "devices": {("10de", "20b0"): "GA100"}}


@pytest.mark.skipif(not os.path.isfile("/usr/share/misc/pci.ids"), reason="no system pci.ids (Debian: pci.ids)")
def test_lookup_agrees_with_a_full_parse_of_the_system_pci_ids():
    from scanner.parsers.pci_ids import lookup
    with open("/usr/share/misc/pci.ids", encoding="utf-8", errors="replace") as fh:
        text = fh.read()
    wanted = {"10de": {"20b0", "2330", "1eb8"}, "1002": {"740c", "73bf"}, "8086": {"56c0", "1572"},
              "19e5": {"d801", "1711", "1822"}, "1a03": {"2000"}, "0731": {"9100", "7200"}, "1ed5": {"0100"},
              "1e36": {"0001"}, "ffff": {"0000"}}
    found = lookup(text, wanted)
    ref_vendors, ref_devices, current = {}, {}, None
    for line in text.splitlines():  # the straightforward full parse, as reference
        if line.startswith("C "):
            break
        if not line or line[0] == "#":
            continue
        if line[0] != "\t":
            current = line[:4]
            if current in wanted:
                ref_vendors[current] = line[4:].strip()
        elif not line.startswith("\t\t") and current in wanted and line[1:5] in wanted[current]:
            ref_devices[(current, line[1:5])] = line[5:].strip()
    assert found == {"vendors": ref_vendors, "devices": ref_devices}
    assert found["vendors"]["10de"] == "NVIDIA Corporation"
    assert ("19e5", "d801") not in found["devices"]  # Ascend is not in pci.ids: the catalog names it
