"""OS identification: the os-release parser, release-file fallback, family/edition, kernel, arch, EOL."""
import struct

import pytest

from scanner.parsers.os_release import parse_os_release, parse_release_line


def _os_facts(root):
    from scanner.collect import os as os_collector
    from scanner.context import Context
    ctx = Context(root, live=False)
    return os_collector.collect(ctx), ctx.errors


def _os_component(facts_os, today=None):
    from scanner.catalog import default_catalog
    from scanner.classify import os as os_classifier
    comps = os_classifier.classify({"os": facts_os}, default_catalog(), today=today)
    assert len(comps) <= 1
    return comps[0] if comps else None


def test_parser_quotes_escapes_comments_and_no_final_newline():
    text = ('# comment\nNAME="Kylin Linux Advanced Server"\nID=kylin\nPRETTY_NAME=\'single quoted\'\n'
            'VERSION="V10 \\"Sword\\""\n\nVERSION_CODENAME=fou')
    values = parse_os_release(text)
    assert values == {"NAME": "Kylin Linux Advanced Server", "ID": "kylin", "PRETTY_NAME": "single quoted",
                      "VERSION": 'V10 "Sword"', "VERSION_CODENAME": "fou"}


def test_parser_skips_garbage_lines_and_reports_them():
    problems = []
    values = parse_os_release("ID=openEuler\n\x00\x01garbage\nthis is not an assignment\nVERSION_ID=22.03\n",
                              problems)
    assert values == {"ID": "openEuler", "VERSION_ID": "22.03"}
    assert problems == ["line 2 is not KEY=value", "line 3 is not KEY=value"]


def test_release_line():
    assert parse_release_line("CentOS Linux release 7.1.1503 (Core) ") == {
        "name": "CentOS Linux", "version": "7.1.1503", "codename": "Core"}
    assert parse_release_line("Kylin Linux Advanced Server release V10 (Sword)")["version"] == "V10"
    assert parse_release_line("UOS Server release 20 (kongzi)")["codename"] == "kongzi"


def test_id_case_and_pitfalls(make_root):
    root = make_root({"/etc/os-release": 'ID=Deepin\nNAME="Deepin"\nVERSION_ID="20.4"\n'})
    facts, _ = _os_facts(root)
    assert facts["id"] == "deepin" and facts["family"] == "debian"
    assert _os_component(facts)["product_id"] == "deepin"


def test_etc_os_release_wins_over_centos_leftovers(make_root):
    root = make_root({"/etc/os-release": 'NAME="TencentOS Server"\nID="tencentos"\nID_LIKE="rhel fedora centos"\n'
                                         'VERSION_ID="3.1"\n',
                      "/usr/lib/os-release": 'NAME="CentOS Linux"\nID="centos"\nVERSION_ID="8"\n',
                      "/etc/redhat-release": "CentOS Linux release 8.4.2105 (Core)\n"})
    facts, _ = _os_facts(root)
    comp = _os_component(facts)
    assert (comp["product_id"], comp["origin"]) == ("tencentos", "domestic")
    assert facts["release_files"]["/etc/redhat-release"].startswith("CentOS")


def test_id_like_alone_never_makes_a_product(make_root):
    root = make_root({"/etc/os-release": 'NAME="Some Rebuild"\nID=somerebuild\nID_LIKE="rhel centos fedora"\n'
                                         'VERSION_ID=8\n'})
    facts, _ = _os_facts(root)
    assert facts["family"] == "rhel"
    comp = _os_component(facts)
    assert comp["product_id"] is None and comp["origin"] == "unknown"
    assert comp["name"]["en"] == "Some Rebuild"


def test_ubuntu_kylin_is_ubuntu(make_root):
    root = make_root({"/etc/os-release": 'NAME="Ubuntu Kylin"\nID=ubuntu\nID_LIKE=debian\nVERSION_ID="22.04"\n'})
    comp = _os_component(_os_facts(root)[0])
    assert (comp["product_id"], comp["origin"]) == ("ubuntu", "foreign")


@pytest.mark.parametrize("files,family,edition", [
    ({"/etc/os-release": 'ID=UOS\nVERSION_ID="20"\nVERSION_CODENAME=fou'}, "debian", "fou"),
    ({"/etc/os-release": 'ID=uos\nVERSION_ID="20"\nPLATFORM_ID="platform:uel20"\n'}, "rhel", "uel20"),
    ({"/etc/os-release": 'ID=uos\nVERSION_ID="20"\nPLATFORM_ID="platform:uelc20"\n'}, "rhel", "uelc20"),
    ({"/etc/os-release": 'ID=kylin\nNAME="Kylin"\nID_LIKE=debian\nVERSION_ID="v10"\n'}, "debian", "desktop"),
    ({"/etc/os-release": 'ID=kylin\nNAME="Kylin Linux Advanced Server"\nVERSION_ID="V10"\n'}, "rhel", "server"),
    ({"/etc/os-release": 'ID=kylin\nNAME="Kylin"\nVERSION_ID="V10"\n', "/var/lib/dpkg/status": ""},
     "debian", "desktop"),
])
def test_family_and_edition(make_root, files, family, edition):
    facts, _ = _os_facts(make_root(files))
    assert (facts["family"], facts["edition"]) == (family, edition)
    assert _os_component(facts)["details"]["edition"] == edition


def test_release_file_fallback_without_os_release(make_root):
    root = make_root({"/etc/redhat-release": ("symlink", "centos-release"),
                      "/etc/centos-release": "CentOS release 6.10 (Final)\n"})
    facts, errors = _os_facts(root)
    assert facts["id"] is None and facts["version_id"] == "6.10"
    comp = _os_component(facts, today="2026-01-01")
    assert (comp["product_id"], comp["origin"]) == ("centos", "foreign")
    assert {"kind": "release-file", "value": "CentOS release 6.10 (Final)", "source": "/etc/centos-release"} \
        in comp["evidence"]
    assert comp["details"]["end_of_life"] == "2020-11-30" and comp["details"]["eol"] is True
    assert errors == []


def test_vendor_release_file_beats_redhat_release(make_root):
    root = make_root({"/etc/neokylin-release": "NeoKylin Linux Advanced Server release V7Update6 (Chromium)\n",
                      "/etc/redhat-release": "Red Hat Enterprise Linux Server release 7.6 (Maipo)\n"})
    comp = _os_component(_os_facts(root)[0])
    assert (comp["product_id"], comp["origin"]) == ("neokylin", "domestic")


def test_flattened_symlink_is_followed(make_root):
    # a copy made without symlink support: the file holds the link target as text
    root = make_root({"/etc/os-release": "../usr/lib/os-release",
                      "/usr/lib/os-release": 'NAME="Rocky Linux"\nID="rocky"\nVERSION_ID="9.3"\n'})
    facts, errors = _os_facts(root)
    assert facts["id"] == "rocky" and facts["source"] == "/usr/lib/os-release"
    assert errors == []


@pytest.mark.parametrize("version_id,product,end,eol", [
    ("7", "centos", "2024-06-30", True), ("9.4", "rhel", "2032-05-31", False), ("22.04", "ubuntu", "2027-04-30", False),
    ("10", "debian", "2024-06-30", True), ("23.10", "ubuntu", None, None),
])
def test_eol_details(version_id, product, end, eol):
    facts = {"id": product, "version_id": version_id, "evidence": []}
    comp = _os_component(facts, today="2026-11-24")
    assert comp["details"].get("end_of_life") == end
    assert comp["details"].get("eol") is eol


def test_centos_stream_has_its_own_eol():
    stream8 = _os_component({"id": "centos", "name": "CentOS Stream", "version_id": "8", "evidence": []},
                            today="2026-11-24")
    assert stream8["details"]["end_of_life"] == "2024-05-31"
    stream10 = _os_component({"id": "centos", "name": "CentOS Stream", "version_id": "10", "evidence": []})
    assert "end_of_life" not in stream10["details"]


def test_domestic_os_has_no_eol_and_no_substitutes():
    comp = _os_component({"id": "openeuler", "version_id": "22.03", "evidence": []})
    assert comp["origin"] == "domestic" and comp["substitutes"] == [] and "eol" not in comp["details"]


def _elf_header(machine, is64=True, little=True):
    endian = "<" if little else ">"
    ident = b"\x7fELF" + (b"\x02" if is64 else b"\x01") + (b"\x01" if little else b"\x02") + b"\x01" + b"\0" * 9
    return ident + struct.pack(endian + "HH", 3, machine) + b"\0" * 44


@pytest.mark.parametrize("machine,little,arch", [(183, True, "aarch64"), (62, True, "x86_64"),
                                                 (258, True, "loongarch64"), (21, True, "ppc64le"),
                                                 (22, False, "s390x"), (0x9916, True, "sw_64")])
def test_offline_arch_from_elf_and_kernel_from_modules(make_root, machine, little, arch):
    root = make_root({"/etc/os-release": "ID=openEuler\nVERSION_ID=22.03\n",
                      "/bin/sh": _elf_header(machine, little=little),
                      "/lib/modules/5.10.0-153.12.0.92.oe2203sp2.aarch64/modules.dep": ""})
    facts, _ = _os_facts(root)
    assert facts["arch"] == arch and facts["arch_source"] == "/bin/sh"
    assert facts["kernel"] == "5.10.0-153.12.0.92.oe2203sp2.aarch64"


def test_two_installed_kernels_leave_the_running_one_unknown(make_root):
    root = make_root({"/etc/os-release": "ID=centos\nVERSION_ID=7\n",
                      "/boot/vmlinuz-3.10.0-1160.el7.x86_64": "", "/boot/vmlinuz-3.10.0-957.el7.x86_64": "",
                      "/boot/vmlinuz-0-rescue-abc": ""})
    facts, _ = _os_facts(root)
    assert facts["kernel"] is None
    assert facts["kernels"] == ["3.10.0-957.el7.x86_64", "3.10.0-1160.el7.x86_64"]
    assert facts["arch"] == "x86_64" and facts["arch_source"].startswith("kernel ")


def test_kylin_v11_desktop_family_from_openkylin_like(make_root):
    root = make_root({"/etc/os-release": 'NAME="Kylin"\nID=kylin\nID_LIKE=openKylin\nVERSION_ID="v11"\n'})
    facts, _ = _os_facts(root)
    assert (facts["family"], facts["edition"]) == ("debian", "desktop")
