"""The dpkg status file is parsed from its bytes, only the four fields read decoded; what a stanza
means must stay what the line-by-line reading said: the last of a repeated field wins, continuation
lines and other fields never match, "install"/"hold" + "installed" only, invalid UTF-8 replaced in the
values read, any run of blank lines ends a stanza. PAM (libpwquality's version) and the packages
collector share one parse per scan."""
import os

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
    monkeypatch.setenv("XCSCAN_CACHE_DIR", str(tmp_path / "cache"))
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


# ---------------------------------------------------------------- the kept parse (scanner/jsoncache.py)
def _root_with_status(tmp_path, data):
    root = tmp_path / "root"
    (root / "var/lib/dpkg").mkdir(parents=True, exist_ok=True)
    (root / "var/lib/dpkg/status").write_bytes(data)
    return root


def _counting(monkeypatch):
    calls = []
    real = packages.parse_dpkg_status
    monkeypatch.setattr(packages, "parse_dpkg_status", lambda data: calls.append(len(data)) or real(data))
    return calls


def _items(root):
    return packages.collect(Context(root=str(root), live=False))["items"]


def test_an_unchanged_status_file_is_read_from_the_cache_and_a_changed_one_parsed(tmp_path, monkeypatch):
    """A scan does not parse the status file again when its bytes (and the parser) are those of the last
    parse: the kept entries are what the parse gave. Any change of the bytes is parsed again."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("XCSCAN_CACHE_DIR", str(cache))
    root = _root_with_status(tmp_path, STATUS)
    calls = _counting(monkeypatch)
    expected = [
        {"name": u"caf\u00e9-\ufffd", "version": None, "arch": None},
        {"name": "first", "version": "1.0", "arch": "amd64"},
        {"name": "held", "version": "3.1", "arch": None},
        {"name": "last", "version": None, "arch": "all"}]
    assert _items(root) == expected and len(calls) == 1
    assert [f for f in os.listdir(str(cache)) if f.startswith("dpkg-")]
    assert _items(root) == expected and len(calls) == 1          # kept: not parsed
    # a package installed: same size would not matter, the bytes differ
    changed = STATUS.replace(b"Version: 1.0\n", b"Version: 1.1\n")
    _root_with_status(tmp_path, changed)
    assert [i["version"] for i in _items(root) if i["name"] == "first"] == ["1.1"] and len(calls) == 2
    assert [i["version"] for i in _items(root) if i["name"] == "first"] == ["1.1"] and len(calls) == 2
    # another root with the first contents again: parsed again (one entry is kept), same entries
    other = tmp_path / "other"
    (other / "var/lib/dpkg").mkdir(parents=True)
    (other / "var/lib/dpkg/status").write_bytes(STATUS)
    assert _items(other) == expected and len(calls) == 3


def test_a_changed_parser_or_a_corrupt_cache_is_parsed_again(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("XCSCAN_CACHE_DIR", str(cache))
    root = _root_with_status(tmp_path, STATUS)
    source = tmp_path / "packages.py"          # stands for this parser's file: its size and mtime are in the key
    source.write_text("v1\n")
    monkeypatch.setattr(packages, "_source_file", lambda: str(source))
    calls = _counting(monkeypatch)
    first = _items(root)
    assert _items(root) == first and len(calls) == 1
    source.write_text("v2 changed\n")
    assert _items(root) == first and len(calls) == 2
    kept = [os.path.join(str(cache), f) for f in os.listdir(str(cache)) if f.startswith("dpkg-")]
    assert len(kept) == 1
    with open(kept[0], "wb") as fh:
        fh.write(b"\x00not marshal")
    assert _items(root) == first and len(calls) == 3
    assert _items(root) == first and len(calls) == 3          # rewritten by the parse before


def test_a_cache_another_user_could_write_is_not_believed(tmp_path, monkeypatch):
    """The kept entries are facts of the host: a file (or directory) another user may write is ignored
    and the status file parsed, as for the rules, catalog and pattern caches."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("XCSCAN_CACHE_DIR", str(cache))
    root = _root_with_status(tmp_path, STATUS)
    calls = _counting(monkeypatch)
    first = _items(root)
    kept = [os.path.join(str(cache), f) for f in os.listdir(str(cache)) if f.startswith("dpkg-")][0]
    # another user's forgery: same key, other entries
    import marshal
    doc = marshal.loads(open(kept, "rb").read())
    doc["payload"] = [{"name": "forged", "version": "0", "arch": "all"}]
    with open(kept, "wb") as fh:
        fh.write(marshal.dumps(doc))
    os.chmod(kept, 0o666)
    assert _items(root) == first and len(calls) == 2          # not believed: parsed
    with open(kept, "wb") as fh:
        fh.write(marshal.dumps(doc))
    os.chmod(kept, 0o600)
    os.chmod(str(cache), 0o777)
    assert _items(root) == first and len(calls) == 3
    os.chmod(str(cache), 0o700)
    with open(kept, "wb") as fh:
        fh.write(marshal.dumps(doc))
    os.chmod(kept, 0o600)
    assert [i["name"] for i in _items(root)] == ["forged"]     # trusted: believed (the key matched)
