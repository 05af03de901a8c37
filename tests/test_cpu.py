"""CPU identification from /proc/cpuinfo, sysfs topology, midr_el1, lscpu and DMI type 4."""
import pytest

from scanner.parsers import cpuinfo

ZHAOXIN_CPUINFO = ("processor\t: 0\nvendor_id\t:   Shanghai  \ncpu family\t: 7\nmodel\t\t: 59\n"
                   "model name\t: ZHAOXIN KaiXian KX-U6780A@2.7GHz\nphysical id\t: 0\ncpu cores\t: 8\n\n")
ZHAOXIN_CENTAUR = ("processor\t: 0\nvendor_id\t: CentaurHauls\ncpu family\t: 7\nmodel\t\t: 59\n"
                   "model name\t: ZHAOXIN KaiXian KX-U6780A@2.7GHz\n\n")
VIA_C7 = "processor\t: 0\nvendor_id\t: CentaurHauls\ncpu family\t: 6\nmodel\t\t: 13\nmodel name\t: VIA C7-D Processor 1800MHz\n\n"
PHYTIUM = ("processor\t: 0\nBogoMIPS\t: 100.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid\n"
           "CPU implementer\t: 0x70\nCPU architecture: 8\nCPU variant\t: 0x1\nCPU part\t: 0x662\nCPU revision\t: 2\n\n")
AMPERE = ("processor\t: 0\nBogoMIPS\t: 50.00\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x3\n"
          "CPU part\t: 0xd0c\nCPU revision\t: 1\n\n")


def _classify_text(make_root, text, extra=None):
    from scanner.pipeline import inventory_report
    files = {"/proc/cpuinfo": text}
    files.update(extra or {})
    report = inventory_report(root=make_root(files))
    return [c for c in report["inventory"]["components"] if c["category"] == "cpu"], report


@pytest.mark.parametrize("text,product,origin", [
    (ZHAOXIN_CPUINFO, "zhaoxin", "domestic"),
    (ZHAOXIN_CENTAUR, "zhaoxin", "domestic"),
    (VIA_C7, "via", "foreign"),
    (PHYTIUM, "phytium", "domestic"),
    (AMPERE, "arm", "foreign"),
])
def test_cpuinfo_identification(make_root, text, product, origin):
    comps, _ = _classify_text(make_root, text)
    assert [(c["product_id"], c["origin"]) for c in comps] == [(product, origin)]


def test_zhaoxin_vendor_keeps_its_spaces_in_evidence():
    summary = cpuinfo.parse_and_summarize(ZHAOXIN_CPUINFO)
    assert summary["vendor_id"] == "Shanghai"
    assert summary["vendor_id_raw"] == "  Shanghai  "


def test_phytium_without_model_name_gets_the_part_name(make_root):
    comps, report = _classify_text(make_root, PHYTIUM)
    assert comps[0]["model"] == "FTC662 (FT-2000+/64)"
    assert comps[0]["details"]["implementer"] == "0x70" and comps[0]["details"]["part"] == "0x662"
    assert report["facts"]["cpu"]["arch"] == "aarch64"


def test_sysfs_topology_and_midr(make_root):
    files = {"/proc/cpuinfo": "processor\t: 0\nBogoMIPS\t: 200.00\n\n",
             "/sys/devices/system/cpu/cpu0/regs/identification/midr_el1": "0x00000000481fd010\n"}
    for i in range(8):
        files["/sys/devices/system/cpu/cpu%d/topology/physical_package_id" % i] = "%d\n" % (i // 4)
        files["/sys/devices/system/cpu/cpu%d/topology/core_id" % i] = "%d\n" % (i % 4)
    comps, report = _classify_text(make_root, files.pop("/proc/cpuinfo"), files)
    assert (comps[0]["product_id"], comps[0]["model"]) == ("kunpeng", "Kunpeng 920")
    cpu = report["facts"]["cpu"]
    assert (cpu["logical_cpus"], cpu["sockets"], cpu["cores"], cpu["threads_per_core"]) == (8, 2, 8, 1)
    assert any(e["kind"] == "sysfs" and "midr_el1" in e["value"] for e in comps[0]["evidence"])


def test_unknown_arm_implementer_is_kept_unknown(make_root):
    text = "processor\t: 0\nCPU implementer\t: 0x6d\nCPU architecture: 8\nCPU part\t: 0xd49\n\n"
    comps, _ = _classify_text(make_root, text)
    assert comps[0]["product_id"] is None and comps[0]["origin"] == "unknown"
    assert any("0x6d" in e["value"] for e in comps[0]["evidence"])
    assert comps[0]["name"]["en"] == "ARM implementer 0x6d part 0xd49"


@pytest.mark.parametrize("cpu,product", [({"arch": "sw_64"}, "sunway"), ({"arch": "loongarch64"}, "loongson"),
                                         ({"arch": "s390x"}, "ibm-z"), ({"arch": "ppc64le"}, "ibm-power")])
def test_live_arch_alone_identifies_single_vendor_architectures(cpu, product):
    from scanner.catalog import default_catalog
    from scanner.classify.cpu import match_signals
    assert match_signals(cpu, default_catalog())["id"] == product


def test_x86_from_dmi_only_when_cpuinfo_silent():
    from scanner.catalog import default_catalog
    from scanner.classify import cpu as cpu_classifier
    facts = {"cpu": None, "dmi": {"dmidecode_source": "dmidecode -t 0,1,2,4", "processors": [
        {"manufacturer": "Hygon", "version": "Hygon C86 7285 32-core Processor", "core_count": 32,
         "thread_count": 64, "cpu_family": 24, "model": 1},
        {"manufacturer": "Hygon", "version": "Hygon C86 7285 32-core Processor", "core_count": 32,
         "thread_count": 64, "cpu_family": 24, "model": 1}]}}
    comps = cpu_classifier.classify(facts, default_catalog())
    assert [(c["product_id"], c["details"]["sockets"], c["details"]["cores"]) for c in comps] == [("hygon", 2, 64)]
    assert comps[0]["evidence"][0]["kind"] == "dmidecode"


def test_dmi_corroborates_cpuinfo(make_root):
    dmidecode = ("# dmidecode 3.3\nHandle 0x0004, DMI type 4, 48 bytes\nProcessor Information\n"
                 "\tSocket Designation: CPU0\n\tFamily: ARM\n\tManufacturer: HiSilicon\n"
                 "\tID: 10 D0 1F 48 00 00 00 00\n\tVersion: Kunpeng 920-6426\n\tStatus: Populated, Enabled\n"
                 "\tCore Count: 64\n\n")
    text = ("processor\t: 0\nCPU implementer\t: 0x48\nCPU architecture: 8\nCPU variant\t: 0x1\n"
            "CPU part\t: 0xd01\nCPU revision\t: 0\n\n")
    comps, _ = _classify_text(make_root, text, {"/sos_commands/hardware/dmidecode": dmidecode})
    assert comps[0]["product_id"] == "kunpeng"
    assert [e for e in comps[0]["evidence"] if e["kind"] == "dmidecode"][0]["value"] == "HiSilicon / Kunpeng 920-6426"


def test_dmidecode_id_decoding():
    from scanner.parsers.dmidecode import decode_processor_id
    assert decode_processor_id("10 D0 1F 48 00 00 00 00", "HiSilicon", "ARM") == {
        "implementer": "0x48", "part": "0xd01", "variant": "0x1"}
    assert decode_processor_id("B0 07 03 00 FF FB CB BF", "Zhaoxin", "Other") == {"cpu_family": 7, "model": 59}
    assert decode_processor_id("33 43 35 30 30 30 4C 00", "Loongson", None) == {}  # ASCII "3C5000L"
    assert decode_processor_id("00 00 00 00 00 00 00 00", "Intel", "Xeon") == {}


def test_lscpu_both_layouts():
    from scanner.parsers import lscpu
    old = "Architecture:          aarch64\nCPU(s):                4\nVendor ID:             0x70\nModel name:            0x663\n" \
          "Socket(s):             1\nCore(s) per socket:    4\n"
    summary = lscpu.parse_and_summarize(old)
    assert (summary["implementer"], summary["part"], summary["cores"]) == ("0x70", "0x663", 4)
    new = "Architecture:           aarch64\nVendor ID:              Phytium\n  Model name:           FTC663\n" \
          "    Socket(s):          1\n    Core(s) per socket: 4\n"
    summary = lscpu.parse_and_summarize(new)
    assert (summary["implementer"], summary["model_name"], summary["cores"]) == ("0x70", "FTC663", 4)


def test_unknown_vendor_with_cpu_family_is_not_assumed_x86():
    text = "processor\t: 0\nvendor_id\t: sunway\ncpu family\t: 6\nmodel\t\t: 65\nmodel name\t: SW831\n\n"
    summary = cpuinfo.parse_and_summarize(text)
    assert summary["arch"] is None



@pytest.mark.parametrize("model_name,part", [("tsv110", "0xd01"), ("TaiShan-v110", "0xd01"),
                                             ("TaiShan-v120", "0xd02"), ("Kunpeng-920", None)])
def test_lscpu_kunpeng_names_of_every_util_linux_version(model_name, part):
    from scanner.catalog import default_catalog
    from scanner.classify.cpu import match_signals
    from scanner.parsers import lscpu
    text = "Architecture:        aarch64\nVendor ID:           HiSilicon\nModel name:          %s\n" % model_name
    summary = lscpu.parse_and_summarize(text)
    assert summary["part"] == part
    assert match_signals(summary, default_catalog())["id"] == "kunpeng"
