"""Shipped YAML data is parsed once per change and then read from the JSON cache (scanner/yamlio.py)."""
import os

import pytest

from scanner import yamlio


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    rules = tmp_path / "rules"
    (rules / "profiles").mkdir(parents=True)
    monkeypatch.setenv("XCSCAN_RULES", str(rules))
    monkeypatch.setenv("XCSCAN_CACHE_DIR", str(tmp_path / "cache"))
    return rules


def _count_parses(monkeypatch):
    calls = []
    real = yamlio.load_yaml_text

    def counting(text, path="<string>"):
        calls.append(path)
        return real(text, path)
    monkeypatch.setattr(yamlio, "load_yaml_text", counting)
    return calls


def test_a_shipped_file_is_parsed_once_per_change(data_dir, monkeypatch):
    path = data_dir / "profiles" / "p.yaml"
    path.write_text("id: p\ntitle: {zh: 方案, en: Profile}\nrules: [a, b]\n", encoding="utf-8")
    calls = _count_parses(monkeypatch)
    first = yamlio.load_yaml_file(str(path))
    assert yamlio.load_yaml_file(str(path)) == first == {"id": "p", "title": {"zh": "方案", "en": "Profile"},
                                                         "rules": ["a", "b"]}
    assert len(calls) == 1
    path.write_text("id: p\ntitle: {zh: 方案, en: Profile}\nrules: [a, b, c]\n", encoding="utf-8")
    os.utime(str(path), ns=(os.stat(str(path)).st_atime_ns, os.stat(str(path)).st_mtime_ns + 10 ** 9))
    assert yamlio.load_yaml_file(str(path))["rules"] == ["a", "b", "c"]
    assert len(calls) == 2


def test_what_json_cannot_hold_and_user_files_are_always_parsed(data_dir, tmp_path, monkeypatch):
    dated = data_dir / "profiles" / "dated.yaml"
    dated.write_text("expires: 2027-01-31\n1: one\n", encoding="utf-8")
    user = tmp_path / "waivers.yaml"
    user.write_text("waivers: []\n", encoding="utf-8")
    calls = _count_parses(monkeypatch)
    for _ in range(2):
        doc = yamlio.load_yaml_file(str(dated))
        assert str(doc["expires"]) == "2027-01-31" and doc[1] == "one"  # a date and an int key, as YAML says
        assert yamlio.load_yaml_file(str(user)) == {"waivers": []}
    assert len(calls) == 4


def test_a_syntax_error_in_a_shipped_file_is_still_reported_with_its_line(data_dir):
    bad = data_dir / "profiles" / "bad.yaml"
    bad.write_text("id: p\nrules: [a, b\n", encoding="utf-8")
    with pytest.raises(Exception) as err:
        yamlio.load_yaml_file(str(bad))
    assert "bad.yaml:" in str(getattr(err.value, "path", err.value))
