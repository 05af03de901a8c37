"""Every data file the code reads ships in the wheel: build it from this checkout and compare with git's list
(a file left out of package-data works in an editable install and breaks `pip install .`)."""
import os
import subprocess
import sys
import zipfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_every_tracked_data_file_is_in_the_wheel(tmp_path):
    try:
        files = subprocess.run(["git", "-C", REPO, "ls-files", "scanner", "rules"], stdout=subprocess.PIPE,
                               universal_newlines=True, check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    # build from a copy of the tracked files: an in-tree build/ directory would hide a missing entry
    import shutil
    src = tmp_path / "src"
    tracked = subprocess.run(["git", "-C", REPO, "ls-files"], stdout=subprocess.PIPE, universal_newlines=True,
                             check=True).stdout.splitlines()
    for f in tracked:
        if os.path.isfile(os.path.join(REPO, f)):
            os.makedirs(os.path.dirname(str(src / f)), exist_ok=True)
            shutil.copy2(os.path.join(REPO, f), str(src / f))
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                           "-w", str(tmp_path / "dist"), str(src)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=600)
    tmp_path = tmp_path / "dist"
    assert proc.returncode == 0, proc.stdout
    wheel = [f for f in os.listdir(str(tmp_path)) if f.endswith(".whl")][0]
    names = set(zipfile.ZipFile(str(tmp_path / wheel)).namelist())
    missing = []
    for f in files:
        if f.endswith(".py") or os.path.basename(f).startswith("."):
            continue
        inside = "scanner/_rules/" + f[len("rules/"):] if f.startswith("rules/") else f
        if inside not in names:
            missing.append(f)
    assert missing == [], "add these to [tool.setuptools.package-data] in pyproject.toml"
