"""Locate ../shared/corpus (real public data with ground truth) for tests.

Tests read it in place. When it is absent they skip with a message, except
under CI=true where its absence is a failure.
"""
from __future__ import absolute_import

import os

import pytest

_HERE = os.path.dirname(os.path.abspath(__file__))


def corpus_dir():
    """$XCSCAN_CORPUS, else shared/corpus beside the repository (../shared/corpus) or beside a
    directory above it (a git worktree of the repository); never a path of one machine."""
    env = os.environ.get("XCSCAN_CORPUS")
    if env:
        return env if os.path.isdir(env) else None
    probe = _HERE
    for _ in range(6):
        probe = os.path.dirname(probe)
        candidate = os.path.join(probe, "shared", "corpus")
        if os.path.isfile(os.path.join(candidate, "MANIFEST.yaml")):
            return candidate
    return _beside_origin()


def _beside_origin():
    """../shared/corpus of the repository this checkout was cloned from, when that is a local directory
    (a fresh `git clone main /elsewhere` for a CI run still reads the corpus in place)."""
    import subprocess
    try:
        url = subprocess.run(["git", "-C", os.path.dirname(_HERE), "config", "--get", "remote.origin.url"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, universal_newlines=True,
                             timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    if url.startswith("file://"):
        url = url[len("file://"):]
    if not url or not os.path.isdir(url):
        return None
    probe = os.path.abspath(url.rstrip("/"))
    for _ in range(6):
        probe = os.path.dirname(probe)
        candidate = os.path.join(probe, "shared", "corpus")
        if os.path.isfile(os.path.join(candidate, "MANIFEST.yaml")):
            return candidate
    return None


def require_corpus():
    path = corpus_dir()
    if path is None:
        msg = ("the shared corpus (../shared/corpus) is not present; set XCSCAN_CORPUS to its path")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg + " -- required under CI=true")
        pytest.skip(msg)
    return path


def manifest_cases(category=None, prefix=None):
    """Ground-truth cases from MANIFEST.yaml (empty list when the corpus is absent)."""
    path = corpus_dir()
    if path is None:
        return []
    import yaml
    with open(os.path.join(path, "MANIFEST.yaml"), "rb") as fh:
        doc = yaml.safe_load(fh)
    cases = doc.get("cases") or []
    out = []
    for case in cases:
        if category and case.get("category") != category:
            continue
        if prefix and not case["path"].startswith(prefix):
            continue
        out.append(case)
    return out


def case_ids(cases):
    return [c["path"].strip("/") for c in cases]
