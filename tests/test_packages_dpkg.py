"""The dpkg status file is parsed from its bytes, only the four fields read decoded; what a stanza
means must stay what the line-by-line reading said: the last of a repeated field wins, continuation
lines and other fields never match, "install"/"hold" + "installed" only, invalid UTF-8 replaced in the
values read, any run of blank lines ends a stanza. PAM (libpwquality's version) and the packages
collector share one parse per scan."""
from scanner.collect import packages, pam
from scanner.context import Context

STATUS = (
    b"Package: first\n"                       # the file's first line is a field like any other
    b"Status: install ok installed\n"
    b"Version: 1.0\n"
    b"Architecture: amd64\n"
    b"Description: one\n"
    b" Package: not-a-field\n"                # continuation line
    b"\n"
    b"Package: removed\n"
    b"Status: deinstall ok config-files\n"
    b"Version: 2.0\n"
    b"\n\n\n"                                 # a run of blank lines
    b"Package: held\n"
    b"Status: hold ok installed\n"
    b"Version: 3.0\n"
    b"Version:  3.1  \n"                      # repeated: the last one, stripped
    b"\n"
    b"Package: half\n"
    b"Status: install ok half-installed\n"
    b"\n"
    b"Package: caf\xc3\xa9-\xff\n"             # UTF-8 and an invalid byte
    b"Status: install ok installed\n"
    b"Multi-Arch: same\n"
    b"Package-Like: no\n"
    b"\n"
    b"Status: install ok installed\n"          # no Package: not an entry
    b"Version: 9\n"
    b"\n"
    b"Package:\n"                              # empty name: not an entry
    b"Status: install ok installed\n"
    b"\n"
    b"Package: last\n"
    b"Architecture: all\n"
    b"Status: install ok installed"           # no newline at the end
)


def test_installed_entries_of_a_status_file():
    assert packages.parse_dpkg_status(STATUS) == [
        {"name": "first", "version": "1.0", "arch": "amd64"},
        {"name": "held", "version": "3.1", "arch": None},
        {"name": u"caf\u00e9-\ufffd", "version": None, "arch": None},
        {"name": "last", "version": None, "arch": "all"},
    ]


def test_text_and_bytes_read_the_same():
    text = STATUS.decode("utf-8", "replace")
    assert packages.parse_dpkg_status(text) == packages.parse_dpkg_status(STATUS)
    assert packages.parse_dpkg_status(b"") == [] and packages.parse_dpkg_status(b"\n\n\n") == []


def test_pam_and_packages_share_one_parse(tmp_path, monkeypatch):
    root = tmp_path / "root"
    (root / "var/lib/dpkg").mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_bytes(
        b"Package: libpwquality1\nStatus: install ok installed\nVersion: 1.4.5-1\nArchitecture: amd64\n\n"
        b"Package: zlib1g\nStatus: install ok installed\nVersion: 1:1.2.13\nArchitecture: amd64\n")
    calls = []
    real = packages.parse_dpkg_status
    monkeypatch.setattr(packages, "parse_dpkg_status", lambda data: calls.append(len(data)) or real(data))
    ctx = Context(root=str(root), live=False)
    assert pam.pwquality_version(ctx) == ("1.4.5-1", "/var/lib/dpkg/status (libpwquality1)")
    facts = packages.collect(ctx)
    assert [i["name"] for i in facts["items"]] == ["libpwquality1", "zlib1g"]
    assert len(calls) == 1
    # the file is read again each time: a changed file is parsed again
    (root / "var/lib/dpkg/status").write_bytes(b"Package: zlib1g\nStatus: install ok installed\n")
    assert [i["name"] for i in packages.collect(ctx)["items"]] == ["zlib1g"]
    assert len(calls) == 2
