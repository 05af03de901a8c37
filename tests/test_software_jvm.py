"""Real JVM command lines (../shared/corpus/jvm, ground truth in MANIFEST.yaml) are identified by main class / jar.

Each case's cmdline.txt has the captured ``sun.java.command`` and the ``*.home`` system properties.
The test rebuilds the java command line (properties as -D options, ``-jar`` when the command is a jar)
and checks the product both as a facts fragment and live, from a real process with that command line
and a real listening socket. Several cases carry ``catalina.home`` without being Tomcat.
"""
import os

import pytest

from corpus import case_ids, manifest_cases, require_corpus
from fixtures.software import products as table
from scanner.catalog import default_catalog
from scanner.classify import software
from scanner.classify.software import jvm
from scanner.collect import collect_facts
from scanner.context import Context

CASES = manifest_cases(prefix="jvm/")
NOT_PASSED_AS_D = ("java.home", "user.home", "sun.java.command")


def java_argv(case_dir):
    """(java executable path, argv) rebuilt from a corpus cmdline.txt."""
    props = []
    with open(os.path.join(case_dir, "cmdline.txt"), encoding="utf-8") as fh:
        lines = [l.rstrip("\n") for l in fh if l.strip()]
    values = {}
    for line in lines:
        key, _, value = line.partition(": ")
        values[key] = value
        if key not in NOT_PASSED_AS_D:
            props.append("-D%s=%s" % (key, value))
    words = values["sun.java.command"].split()
    if words and words[-1] == "&":  # the TongWeb 8 capture ends with the shell's '&'
        words = words[:-1]
    java = values.get("java.home", "/usr/lib/jvm/default/jre") + "/bin/java"
    if words[0].endswith(".jar"):
        words = ["-jar"] + words
    return java, [java] + props + words


def classify_processes(procs, sockets=None):
    facts = {"processes": procs, "sockets": sockets or [], "packages": None, "services": None,
             "software_paths": None, "crypto_libs": None}
    return [c for c in software.classify(facts, default_catalog()) if c["category"] == "middleware"]


def test_corpus_has_all_sixteen_cases():
    require_corpus()
    assert len(CASES) == 16


@pytest.mark.parametrize("case", CASES, ids=case_ids(CASES))
def test_jvm_command_line_fragment(case):
    base = require_corpus()
    java, argv = java_argv(os.path.join(base, case["path"]))
    proc = {"pid": 4242, "ppid": 1, "name": "java", "exe": java, "cmdline": argv, "user": "root"}
    comps = classify_processes([proc])
    assert [c["product_id"] for c in comps] == [case["product_id"]]
    assert comps[0]["origin"] == case["origin"]
    assert comps[0]["evidence"][0]["kind"] == "process"
    assert comps[0]["evidence"][0]["value"].startswith("java ")


def test_catalina_home_alone_is_not_tomcat():
    base = require_corpus()
    for name in ("inforsuite-10", "primeton-pas-6.5", "apusic-10", "jboss-5.1.0"):
        java, argv = java_argv(os.path.join(base, "jvm", name))
        assert any(a.startswith("-Dcatalina.home=") for a in argv)
        comps = classify_processes([{"pid": 1, "ppid": 0, "name": "java", "exe": java, "cmdline": argv}])
        assert "tomcat" not in [c["product_id"] for c in comps]


def test_versions_and_models_from_command_lines():
    base = require_corpus()

    def one(name):
        java, argv = java_argv(os.path.join(base, "jvm", name))
        return classify_processes([{"pid": 1, "ppid": 0, "name": "java", "exe": java, "cmdline": argv}])[0]
    assert one("tongweb-8.0.6.2")["version"] == "8.0.6.2"
    assert one("tongweb-8.0.6.2")["model"] == "TongWeb 8"
    assert one("jetty-12-ee10")["version"] == "12.0.21"
    assert one("jetty-9.4")["version"] is None  # java.version=1.8.0_462 is the JVM's, not Jetty's
    assert one("wildfly-30")["model"] == "WildFly"
    assert one("websphere-9.0.5")["model"] == "traditional"
    assert one("apusic-9")["model"] == "AAS 9"
    assert one("apusic-10")["model"] == "AAS 10"


def test_jvm_parser_shapes():
    p = jvm.parse(["java", "-Xmx1g", "-cp", "a.jar:b.jar", "-Dk=v", "com.x.Main", "start", "-Dnot=prop"])
    assert p["main"] == "com.x.Main" and p["props"] == {"k": "v"} and p["args"] == ["start", "-Dnot=prop"]
    p = jvm.parse(["java", "--add-opens", "java.base/java.lang=ALL-UNNAMED", "-jar", "/x/start.jar", "a"])
    assert p["main"] == "/x/start.jar" and p["jar"] and p["args"] == ["a"]
    p = jvm.parse(["/usr/bin/jsvc", "-user", "tomcat", "-pidfile", "/run/t.pid", "-cp", "b.jar",
                   "org.apache.catalina.startup.Bootstrap"])
    assert p["main"] == "org.apache.catalina.startup.Bootstrap"
    p = jvm.parse(["java", "-m", "jdk.httpserver/sun.net.httpserver.simpleserver.Main"])
    assert p["main"] == "sun.net.httpserver.simpleserver.Main"
    assert jvm.parse(["java", "-version"])["main"] is None


@pytest.mark.live
def test_jvm_corpus_live(tmp_path):
    """All sixteen command lines as real processes, each holding a real listening socket."""
    base = require_corpus()
    holder = table.build_holder(str(tmp_path))
    if holder is None:
        pytest.skip("no C compiler (cc) to build the process stand-in")
    launched = table.Launched()
    started = {}
    try:
        for case in CASES:
            java, argv = java_argv(os.path.join(base, case["path"]))
            proc, port = launched.start(holder, str(tmp_path), java, argv, 0)
            started[case["path"]] = (proc.pid, port)
        table.wait_exec(launched.procs)
        facts = collect_facts(Context("/", live=True), only=["processes", "sockets"])
    finally:
        launched.stop()
    comps = classify_processes(facts["processes"], facts["sockets"])
    for case in CASES:
        pid, port = started[case["path"]]
        mine = [c for c in comps if c["details"]["pid"] == pid]
        assert [c["product_id"] for c in mine] == [case["product_id"]], case["path"]
        assert mine[0]["details"]["listen"] == [{"address": "127.0.0.1", "port": port}]
        assert mine[0]["confidence"] == "high"
