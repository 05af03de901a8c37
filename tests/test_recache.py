"""Compiled regular expressions kept between runs (scanner/recache.py): a pattern built from the kept
data is the pattern re compiles (same matches, groups, flags); only what a run asks for is built; a
corrupt or foreign file leaves re compiling as usual; `xcscan` itself writes and reads the file and a
scan's report is the same with and without it. Each case runs in a fresh interpreter (re's cache is
process-wide)."""
import json
import os
import re
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.join(REPO, "tests", "fixtures", "hardware", "taishan-kylin")

PATTERNS = r"""
import re
CASES = [
    (r"(?P<major>\d+)\.(?P<minor>\d+)(p\d+)?", 0, ["OpenSSH_9.2p1", "x 10.11", "none"]),
    (r"^\s*SM2\b", re.M | re.I, ["secp256k1\n  sm2 : SM2 curve", "nosm2"]),
    (r"(?:(?s:/opt/kingbase/.*/bin/kingbase)\Z)", 0, ["/opt/kingbase/V8/bin/kingbase", "/opt/kingbase/bin"]),
    (r"caf\u00e9|\u56fd\u4ea7", re.I, [u"CAF\u00c9", u"\u56fd\u4ea7\u5316"]),
    (rb"OpenSSH_(\d+)\.(\d+)", 0, [b"\x00OpenSSH_8.4\x00", b"OpenSSH_x"]),
]


def shape(rx, texts):
    out = [rx.pattern if isinstance(rx.pattern, str) else rx.pattern.decode(), rx.flags, rx.groups,
           sorted(rx.groupindex.items())]
    for text in texts:
        m = rx.search(text)
        out.append(None if m is None else [m.span(), [g if isinstance(g, str) or g is None else g.decode()
                                                     for g in m.groups()]])
    return out
"""


def run(code, cache_dir):
    env = dict(os.environ, XCSCAN_CACHE_DIR=str(cache_dir), PYTHONPATH=REPO)
    out = subprocess.run([sys.executable, "-c", PATTERNS + code], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, universal_newlines=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_kept_patterns_are_the_patterns_re_compiles(tmp_path):
    fresh = run("import json\nprint(json.dumps([shape(re.compile(p, f), t) for p, f, t in CASES]))", tmp_path)
    saved = run("from scanner import recache\nimport json\nfor p, f, t in CASES: re.compile(p, f)\n"
                "print(json.dumps(recache.save()))", tmp_path)
    assert saved >= len(fresh)
    kept = run("from scanner import recache\nimport json\n"
               "from scanner.recache import _compiler\n"
               "calls = []\nreal = _compiler().compile\n"
               "_compiler().compile = lambda *a: calls.append(a) or real(*a)\n"
               "n = recache.install()\nshapes = [shape(re.compile(p, f), t) for p, f, t in CASES]\n"
               "print(json.dumps([n, len(calls), shapes, len(recache._kept), type(re._cache).__name__]))",
               tmp_path)
    count, compiled_by_re, shapes, left, cache_type = kept
    assert shapes == fresh
    assert compiled_by_re == 0             # every case came from the file, none through re's compiler
    assert count >= len(fresh) and left == count - len(fresh)  # only the patterns asked for were built
    assert cache_type == "_Cache"


def test_a_corrupt_or_missing_file_leaves_re_alone(tmp_path):
    missing = run("from scanner import recache\nimport json\n"
                  "print(json.dumps([recache.install(), type(re._cache).__name__]))", tmp_path)
    assert missing == [0, "dict"]
    path = run("from scanner import recache\nimport json\nprint(json.dumps(recache.path()))", tmp_path)
    assert os.path.dirname(path) == str(tmp_path)
    with open(path, "wb") as fh:
        fh.write(b"\xe3not marshal")
    out = run("from scanner import recache\nimport json\nn = recache.install()\n"
              "print(json.dumps([n, type(re._cache).__name__, shape(re.compile(CASES[0][0]), CASES[0][2])]))",
              tmp_path)
    assert out[0] == 0 and out[1] == "dict"
    assert out[2][4] == [[8, 13], ["9", "2", "p1"]]
    # the next save replaces it with a good file
    assert run("from scanner import recache\nimport json\nre.compile('x+y')\nprint(json.dumps(recache.save()))",
               tmp_path) >= 1
    assert run("from scanner import recache\nimport json\nprint(json.dumps(recache.install()))", tmp_path) >= 1


def test_the_command_line_keeps_them_and_reports_stay_the_same(tmp_path):
    env = dict(os.environ, XCSCAN_CACHE_DIR=str(tmp_path), PYTHONPATH=REPO, LANG="en_US.UTF-8")
    env.pop("LC_ALL", None)

    def scan():
        out = subprocess.run([sys.executable, "-m", "scanner", "scan", "--root", ROOT, "--profile", "all",
                              "--format", "json"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert out.returncode == 0, out.stderr
        # limits derived from "now" (password age...) are written to the second: not part of this comparison
        text = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "<time>", out.stdout.decode("utf-8"))
        doc = json.loads(text)
        for key in ("report_id",):
            doc.pop(key)
        for status in doc["facts"]["collection"].values():
            status.pop("seconds", None)
        return doc
    first = scan()          # also fills the rules and catalog caches (a first run compiles every signature)
    files = [f for f in os.listdir(str(tmp_path)) if f.startswith("regex-")]
    assert len(files) == 1
    kept = os.path.join(str(tmp_path), files[0])
    assert os.path.getsize(kept) > 1000
    second = scan()         # from the caches: a few patterns the first run did not need
    size = os.path.getsize(kept)
    third = scan()
    assert first == second == third
    assert os.path.getsize(kept) == size  # nothing new: not rewritten


def test_a_cache_another_user_could_write_is_not_believed(tmp_path):
    """A scan runs as root; ``sudo`` may keep an ordinary user's HOME and so their cache directory. Kept
    patterns (and the rules, catalog and YAML caches, same check in scanner/jsoncache.py) are read only
    from a file and directory owned by this user that nobody else may write."""
    assert run("from scanner import recache\nimport json\nre.compile('a+b')\nprint(json.dumps(recache.save()))",
               tmp_path) >= 1
    path = run("from scanner import recache\nimport json\nprint(json.dumps(recache.path()))", tmp_path)
    installed = "from scanner import recache\nimport json\nprint(json.dumps(recache.install()))"
    assert run(installed, tmp_path) >= 1
    os.chmod(path, 0o664)                       # group-writable file
    assert run(installed, tmp_path) == 0
    os.chmod(path, 0o600)
    os.chmod(str(tmp_path), 0o777)              # a directory anyone may write (files can be swapped)
    assert run(installed, tmp_path) == 0
    os.chmod(str(tmp_path), 0o700)
    assert run(installed, tmp_path) >= 1
    if os.geteuid() == 0:                       # a file owned by another user
        os.chown(path, 65534, 65534)
        assert run(installed, tmp_path) == 0
