"""No paths of one machine in the project: the workspace it was written in, a user's pyenv, or a
fixed temporary directory. Tests find the shared corpus through ../shared/corpus or $XCSCAN_CORPUS
(tests/corpus.py), Python 3.7 through $XCSCAN_PY37, PATH or pyenv's own root, and write under
pytest's tmp_path or tempfile. Fixture roots and rules name paths of the *scanned* system and are
not checked for /tmp."""
import os
import re
import subprocess

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SELF = os.path.relpath(os.path.abspath(__file__), REPO)
TEXT = (".py", ".md", ".yaml", ".yml", ".toml", ".cfg", ".txt", ".sh", ".j2", ".html", ".ini", ".json", "")
# built from parts so this file does not match itself
WORKSPACE = re.compile("/" + "work/|/" + r"work\b(?![-\w])")
PYENV = re.compile(r"/(?:root|home/[\w.-]+)/\." + "pyenv")
FIXED_TMP = re.compile(r"""\bdir\s*=\s*["']/""" + r"""tmp\b|["']/""" + "tmp/")
TARGET_PATHS = ("tests/fixtures/", "rules/", "scanner/")   # paths of the scanned system live here


def tracked_files():
    try:
        out = subprocess.run(["git", "ls-files"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             universal_newlines=True, timeout=60)
        files = out.stdout.splitlines() if out.returncode == 0 else []
    except OSError:
        files = []
    if not files:
        for base, dirs, names in os.walk(REPO):
            dirs[:] = [d for d in dirs if not d.startswith(".") and d not in ("__pycache__",) and
                       not d.endswith(".egg-info")]
            files.extend(os.path.relpath(os.path.join(base, n), REPO) for n in names)
    return sorted(f for f in files if os.path.splitext(f)[1] in TEXT and f != SELF and os.path.isfile(
        os.path.join(REPO, f)))


def offending(patterns):
    found = []
    for rel in tracked_files():
        try:
            with open(os.path.join(REPO, rel), encoding="utf-8") as fh:
                text = fh.read(2 * 1024 * 1024)
        except (UnicodeDecodeError, OSError):
            continue
        for number, line in enumerate(text.splitlines(), 1):
            for name, pattern, skip in patterns:
                if rel.startswith(skip):
                    continue
                if pattern.search(line):
                    found.append("%s:%d: %s: %s" % (rel, number, name, line.strip()[:120]))
    return found


def test_no_machine_specific_paths():
    files = tracked_files()
    assert any(f.startswith("tests/") for f in files) and any(f.startswith("docs/") for f in files)
    never = ("\0",)   # no exemption
    problems = offending([
        ("workspace path", WORKSPACE, never),
        ("a user's pyenv", PYENV, never),
        ("fixed temporary directory", FIXED_TMP, TARGET_PATHS),
    ])
    assert problems == []


def test_the_sweep_sees_what_it_forbids():
    assert WORKSPACE.search('candidate = "/' + 'work/shared/corpus"')
    assert PYENV.search("/root/." + "pyenv/versions/3.7.16/bin/python3.7")
    assert FIXED_TMP.search('tempfile.mkdtemp(prefix="x-", dir="/' + 'tmp")')
    assert FIXED_TMP.search("open('/" + "tmp/report.json')")
    assert not FIXED_TMP.search('tops == ["/", "/data", "/tmp"]')      # a mount point of a scanned host
    assert not WORKSPACE.search("/etc/network/interfaces") and not WORKSPACE.search("homework/")
