"""The hardware/OS catalog entries (os, cpu, server, storage, accelerator) are complete and well-formed."""
import os
import re

import pytest

from scanner.catalog import default_catalog, load_catalog
from scanner.classify.cpu import _LIST_KEYS, _REGEX_KEYS
from scanner.errors import DataError

REQUIRED = {
    "os": {"domestic": "kylin neokylin uos deepin openkylin openeuler euleros hce anolis alinux opencloudos "
                       "tencentos bclinux kylinsec",
           "foreign": "centos rhel rocky almalinux oracle-linux sles debian ubuntu"},
    "cpu": {"domestic": "kunpeng phytium hygon zhaoxin loongson sunway",
            "foreign": "intel amd arm ampere ibm-power ibm-z"},
    "server": {"domestic": "huawei xfusion inspur sugon h3c greatwall powerleader",
               "foreign": "dell hpe ibm oracle supermicro fujitsu"},
    "storage": {"domestic": "macrosan", "foreign": "emc netapp hitachi pure"},
    "accelerator": {"domestic": "ascend cambricon hygon-dcu moore-threads iluvatar enflame metax kunlun jingjia",
                    "foreign": "nvidia amd-gpu intel-gpu habana"},
}
MY_CATEGORIES = ("os", "cpu", "server", "storage", "accelerator")
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@pytest.fixture(scope="module")
def catalog():
    return default_catalog()


def _mine(catalog):
    return [p for p in catalog.products.values() if p["category"] in MY_CATEGORIES]


@pytest.mark.parametrize("category", sorted(REQUIRED))
def test_required_products(catalog, category):
    for origin, ids in REQUIRED[category].items():
        for pid in ids.split():
            product = catalog.get(pid)
            assert product is not None, pid
            assert (product["category"], product["origin"]) == (category, origin), pid


def test_brands_shared_across_categories(catalog):
    # one product per brand: a Phytium board is reported as a server, its chip as a CPU
    for pid in ("phytium", "loongson", "zhaoxin"):
        assert catalog.get(pid)["server_match"]["sys_vendor"]
    for pid in ("huawei", "inspur", "ibm", "hpe", "dell"):
        assert catalog.get(pid)["match"]["luns"]


def test_lenovo_policy(catalog):
    lenovo = catalog.get("lenovo")
    assert lenovo["origin"] == "unknown"
    assert lenovo["origin_policy"]["zh"] and lenovo["origin_policy"]["en"]


def test_every_unknown_origin_explains_its_policy(catalog):
    for product in _mine(catalog):
        if product["origin"] == "unknown":
            policy = product.get("origin_policy") or {}
            assert policy.get("zh") and policy.get("en"), product["id"]


def test_signatures_are_well_formed(catalog):
    for product in _mine(catalog):
        match = product["match"]
        for pattern in match.get("release", []) + match.get("sys_vendor", []) + \
                (product.get("server_match") or {}).get("sys_vendor", []):
            re.compile(pattern)
        for sig in match.get("signatures", []):
            assert sig and set(sig) <= set(_REGEX_KEYS + _LIST_KEYS), (product["id"], sig)
            for key in _REGEX_KEYS:
                if key in sig:
                    re.compile(sig[key])
            for key in ("implementer", "part"):
                for code in sig.get(key, []):
                    assert re.match(r"^0x[0-9a-f]+$", code), (product["id"], code)
        for lun in match.get("luns", []):
            assert set(lun) == {"vendor", "model"}, product["id"]
            re.compile(lun["vendor"])
            re.compile(lun["model"])
        for pci in match.get("pci", []):
            assert re.match(r"^[0-9a-f]{4}$", pci["vendor"]), product["id"]
            for dev in pci.get("devices", []):
                assert re.match(r"^[0-9a-f]{4}$", dev), (product["id"], dev)
        for key, date in (product.get("eol") or {}).items():
            assert isinstance(key, str) and DATE_RE.match(str(date)), (product["id"], key, date)
        for category, subs in (product.get("substitutes_by_category") or {}).items():
            assert product["origin"] == "foreign"
            for sub in subs:
                assert catalog.get(sub)["origin"] == "domestic", (product["id"], sub)
        if product["category"] in ("os",):
            assert match.get("ids"), product["id"]


def test_unknown_signature_key_never_matches():
    from scanner.catalog import Catalog
    from scanner.classify.cpu import match_signals
    typo = {"id": "x", "category": "cpu", "origin": "domestic", "name": {"zh": "x", "en": "x"},
            "vendor": {"zh": "x", "en": "x"}, "substitutes": [], "match": {"signatures": [{"vendor": "Genuine"}]}}
    assert match_signals({"vendor_id": "GenuineIntel", "vendor": "GenuineIntel"}, Catalog({"x": typo})) is None


def test_foreign_product_without_substitutes_is_rejected(tmp_path):
    (tmp_path / "cpu.yaml").write_text("category: cpu\nproducts:\n  - id: intel\n    name: {zh: a, en: a}\n"
                                       "    vendor: {zh: a, en: a}\n    origin: foreign\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        load_catalog(str(tmp_path))
    assert "substitutes" in str(err.value) and "intel" in str(err.value)


# --------------------------------------------------------------------------- the JSON cache


def _copy_catalog(tmp_path):
    import shutil
    from scanner.paths import rules_dir
    dest = tmp_path / "catalog"
    shutil.copytree(os.path.join(rules_dir(), "catalog"), str(dest))
    return str(dest)


def test_the_cached_catalog_equals_the_parsed_one_and_skips_yaml(tmp_path, monkeypatch):
    from scanner import catalog as catalog_mod
    monkeypatch.setenv("XCSCAN_CACHE_DIR", str(tmp_path / "cache"))
    directory = _copy_catalog(tmp_path)
    parsed = load_catalog(directory)
    first = catalog_mod.load_catalog_cached(directory)  # parses and writes the cache
    assert os.listdir(str(tmp_path / "cache")) and first.products == parsed.products

    def no_yaml(path):
        raise AssertionError("parsed %s although the cache is fresh" % path)
    monkeypatch.setattr(catalog_mod, "load_yaml_file", no_yaml)
    cached = catalog_mod.load_catalog_cached(directory)
    assert cached.products == parsed.products and list(cached.products) == list(parsed.products)
    assert cached.sources == parsed.sources
    assert cached.get("postgresql")["data_dir_markers"] == [["PG_VERSION", "base", "global"]]


def test_a_changed_catalog_file_invalidates_the_cache(tmp_path, monkeypatch):
    from scanner import catalog as catalog_mod
    monkeypatch.setenv("XCSCAN_CACHE_DIR", str(tmp_path / "cache"))
    directory = _copy_catalog(tmp_path)
    assert catalog_mod.load_catalog_cached(directory).get("postgresql")["name"]["zh"] == "PostgreSQL"
    path = os.path.join(directory, "database.yaml")
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text.replace("name: {zh: PostgreSQL, en: PostgreSQL}", "name: {zh: PG 数据库, en: PostgreSQL}"))
    os.utime(path, ns=(os.stat(path).st_atime_ns, os.stat(path).st_mtime_ns + 10 ** 9))
    assert catalog_mod.load_catalog_cached(directory).get("postgresql")["name"]["zh"] == "PG 数据库"
    # a new file is part of the key too, and a bad one is reported, not hidden by the old cache
    with open(os.path.join(directory, "zz-broken.yaml"), "w", encoding="utf-8") as fh:
        fh.write("products: [{id: Bad Id}]\n")
    with pytest.raises(DataError) as err:
        catalog_mod.load_catalog_cached(directory)
    assert "zz-broken.yaml" in str(err.value.path)


def test_a_corrupt_cache_file_falls_back_to_the_yaml(tmp_path, monkeypatch):
    from scanner import catalog as catalog_mod, jsoncache
    monkeypatch.setenv("XCSCAN_CACHE_DIR", str(tmp_path / "cache"))
    directory = _copy_catalog(tmp_path)
    catalog_mod.load_catalog_cached(directory)
    with open(jsoncache.path_for("catalog", directory), "w") as fh:
        fh.write('{"fingerprint": "')
    assert "postgresql" in catalog_mod.load_catalog_cached(directory)


def test_a_bad_signature_is_a_catalog_error_and_never_cached(tmp_path, monkeypatch):
    from scanner import catalog as catalog_mod
    monkeypatch.setenv("XCSCAN_CACHE_DIR", str(tmp_path / "cache"))
    directory = _copy_catalog(tmp_path)
    path = os.path.join(directory, "database.yaml")
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text.replace("- {name: 'postgres|postmaster'}", "- {name: 'postgres|postmaster('}"))
    for _ in range(2):  # the second time too: the bad catalog was not cached as checked
        with pytest.raises(DataError) as err:
            catalog_mod.load_catalog_cached(directory)
        assert "invalid software signature" in str(err.value) and "postgresql" in str(err.value.path)


def test_a_cached_catalog_compiles_only_the_signatures_a_scan_uses(tmp_path, monkeypatch):
    from scanner import catalog as catalog_mod
    from scanner.classify.software.match import ProcView, _lazy_regexes, best_match, compile_catalog
    monkeypatch.setenv("XCSCAN_CACHE_DIR", str(tmp_path / "cache"))
    directory = _copy_catalog(tmp_path)
    fresh = catalog_mod.load_catalog_cached(directory)  # parsed, checked, cached
    cached = catalog_mod.load_catalog_cached(directory)
    assert not fresh.checked and cached.checked
    lazy = [rx for cp in compile_catalog(cached) for rx in _lazy_regexes(cp)]
    # compiled up front: only the process names a catch-all test cannot rule out by their literal head
    assert len(lazy) > 200 and sum(1 for rx in lazy if rx._rx) < len(lazy) / 20
    proc = {"pid": 7, "name": "postgres", "exe": "/usr/lib/postgresql/15/bin/postgres",
            "cmdline": ["/usr/lib/postgresql/15/bin/postgres", "-D", "/var/lib/postgresql/15/main"]}
    got = best_match(ProcView(proc), compile_catalog(cached))
    want = best_match(ProcView(proc), compile_catalog(fresh))
    assert got[0].id == want[0].id == "postgresql"
    used = sum(1 for rx in lazy if rx._rx)
    assert used < len(lazy) / 4  # the few that matched the prefilter, not ~500


@pytest.mark.parametrize("pattern,head", [
    ("postgresql(-\\d+)?(@.*)?\\.service", "postgresql"), ("redis-server", "redis-server"),
    ("mysqld?", "mysql"), ("kafka\\.Kafka", "kafka"), ("postgres|postmaster", ""), ("(?i)oracle", ""),
    (".+", ""), ("ab*c", "a"), ("a+b", "a")])
def test_the_literal_head_a_match_must_start_with(pattern, head):
    import re
    from scanner.classify.software.match import LazyRegex, _literal_head
    assert _literal_head(pattern) == head
    rx = LazyRegex(pattern)
    for text in ("postgresql-15.service", "redis-server", "mysql", "mysqld", "kafka.Kafka", "postmaster",
                 "ORACLE", "x", "ac", "abbbc", "aab", "zzz"):
        assert bool(rx.fullmatch(text)) == bool(re.fullmatch(pattern, text)), (pattern, text)
