"""Fleet rollout: the Ansible playbook (ansible-core, localhost) and install.sh leave an enrolled,
scheduled agent. This container has no systemd as PID 1, so both install the units AND fall back to cron."""
import json
import os
import shutil
import stat
import subprocess
import sys

import pytest
import yaml

from conftest import REPO

SYSTEMD_RUNNING = os.path.isdir("/run/systemd/system")


def ansible_playbook():
    for cand in (os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), shutil.which("ansible-playbook")):
        if cand and os.path.exists(cand):
            return cand
    pytest.fail("ansible-playbook not found: install the test extra (pip install -e '.[test]')")


def layout(base):
    return {
        "install": str(base / "opt" / "xcscan"), "bin": str(base / "sbin"),
        "config": str(base / "etc" / "xcscan" / "agent.yaml"), "spool": str(base / "spool"),
        "state": str(base / "state"), "systemd": str(base / "systemd"), "cron": str(base / "cron.d"),
        "cache": str(base / "bundle-cache"),
    }


def assert_installed(paths, stub, python, expect_reports=1):
    wrapper = os.path.join(paths["bin"], "xcscan")
    assert os.access(wrapper, os.X_OK)
    assert python in open(wrapper).read()
    assert os.path.isfile(os.path.join(paths["install"], "xcscan-agent.pyz"))
    cfg = yaml.safe_load(open(paths["config"]))
    assert cfg["host_id"] in stub.state.hosts and cfg["org"] == "/gov/finance"
    assert cfg["ca_file"] == "ca.pem" and cfg["spool_dir"] == paths["spool"]
    key = os.path.join(os.path.dirname(paths["config"]), "agent.key")
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    service = open(os.path.join(paths["systemd"], "xcscan-agent.service")).read()
    timer = open(os.path.join(paths["systemd"], "xcscan-agent.timer")).read()
    assert "ExecStart=%s agent run --no-splay --quiet" % wrapper in service
    assert "Environment=XCSCAN_AGENT_CONFIG=%s" % paths["config"] in service
    assert "ReadWritePaths=-%s -%s" % (paths["spool"], paths["state"]) in service
    assert os.path.isdir(paths["spool"]) and os.path.isdir(paths["state"])  # made at enrollment
    assert "RandomizedDelaySec=" in timer and "OnCalendar=daily" in timer
    cron = os.path.join(paths["cron"], "xcscan-agent")
    assert not SYSTEMD_RUNNING, "this test expects a container without systemd as PID 1"
    cron_text = open(cron).read()
    assert "root %s agent run --quiet" % wrapper in cron_text
    assert "XCSCAN_AGENT_CONFIG=%s" % paths["config"] in cron_text
    assert len(stub.state.reports) == expect_reports
    if expect_reports:
        assert stub.state.reports[0]["host_id"] == cfg["host_id"]
    return cfg


def test_ansible_playbook_installs_enrolls_and_schedules(tmp_path, stub, pki, bundle, bare_python, scan_root):
    paths = layout(tmp_path)
    python = bare_python[0]
    extra = {
        "xcscan_hosts": "localhost", "xcscan_become": False, "ansible_python_interpreter": sys.executable,
        "xcscan_server_url": stub.url, "xcscan_enroll_token": "tok-finance", "xcscan_ca_file": pki["ca"],
        "xcscan_bundle": bundle, "xcscan_python": python, "xcscan_install_dir": paths["install"],
        "xcscan_bin_dir": paths["bin"], "xcscan_config": paths["config"], "xcscan_spool_dir": paths["spool"],
        "xcscan_state_dir": paths["state"], "xcscan_systemd_dir": paths["systemd"],
        "xcscan_cron_dir": paths["cron"], "xcscan_scan_root": scan_root, "xcscan_run_now": True,
        "xcscan_splay": 0,
    }
    vars_file = tmp_path / "vars.json"
    vars_file.write_text(json.dumps(extra))
    env = dict(os.environ, ANSIBLE_HOME=str(tmp_path / "ansible-home"), ANSIBLE_LOCAL_TEMP=str(tmp_path / "atmp"),
               ANSIBLE_NOCOLOR="1", ANSIBLE_RETRY_FILES_ENABLED="0", ANSIBLE_PIPELINING="1",
               LC_ALL="C.UTF-8", LANG="C.UTF-8",  # ansible-core refuses a non-UTF-8 locale
               XCSCAN_BUNDLE_CACHE=paths["cache"])
    cmd = [ansible_playbook(), "-i", "localhost,", "-c", "local", "-e", "@" + str(vars_file),
           os.path.join(REPO, "agents", "ansible", "playbook.yml")]
    res = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         universal_newlines=True, timeout=300, cwd=str(tmp_path))
    assert res.returncode == 0, res.stdout[-4000:]
    assert "tok-finance" not in res.stdout  # the token is never logged
    assert_installed(paths, stub, python)
    assert "failed=0" in res.stdout
    # Enrolled once; the enroll task is guarded by the config's existence (re-running is a no-op for it).
    assert len(stub.state.hosts) == 1


def test_install_script_installs_enrolls_and_schedules(tmp_path, stub, pki, bundle, bare_python, scan_root):
    paths = layout(tmp_path)
    python = bare_python[0]
    args = ["sh", os.path.join(REPO, "agents", "install.sh"), "--server", stub.url, "--ca", pki["ca"],
            "--bundle", bundle, "--python", python, "--install-dir", paths["install"], "--bin-dir", paths["bin"],
            "--config", paths["config"], "--spool-dir", paths["spool"], "--state-dir", paths["state"],
            "--systemd-dir", paths["systemd"], "--cron-dir", paths["cron"]]
    env = dict(os.environ, XCSCAN_ENROLL_TOKEN="tok-finance", XCSCAN_BUNDLE_CACHE=paths["cache"])
    res = subprocess.run(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                         timeout=120)
    assert res.returncode == 0, res.stdout
    assert "cron schedule installed" in res.stdout
    # install.sh renders the units only for systemd hosts; render them here too for the shared assertions.
    res2 = subprocess.run(args + ["--scheduler", "cron"], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True, timeout=120)
    assert res2.returncode == 0 and "keeping the enrollment" in res2.stdout
    cron_text = open(os.path.join(paths["cron"], "xcscan-agent")).read()
    assert "root %s/xcscan agent run --quiet" % paths["bin"] in cron_text
    cfg = yaml.safe_load(open(paths["config"]))
    assert cfg["host_id"] in stub.state.hosts and len(stub.state.hosts) == 1
    # The installed wrapper works with the config it was installed with, from any directory.
    yaml_cfg = dict(cfg, splay=0, retries=0)  # live root: the machine id enrolled is this host's
    with open(paths["config"], "w") as fh:
        yaml.safe_dump(yaml_cfg, fh)
    run = subprocess.run([os.path.join(paths["bin"], "xcscan"), "agent", "run", "--no-splay"],
                         env={"PATH": "/usr/bin:/bin", "XCSCAN_BUNDLE_CACHE": paths["cache"]},
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert len(stub.state.reports) == 1
    bad = subprocess.run(["sh", os.path.join(REPO, "agents", "install.sh"), "--bundle", "/nonexistent.pyz"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    assert bad.returncode == 1 and "bundle not found: /nonexistent.pyz" in bad.stdout


def test_systemd_units_pass_systemd_analyze_verify(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    for name in ("xcscan-agent.service", "xcscan-agent.timer"):
        text = open(os.path.join(REPO, "agents", "systemd", name)).read()
        # ExecStart must name an existing executable for verify; the real one is installed later.
        (tmp_path / name).write_text(text.replace("/usr/local/sbin/xcscan", shutil.which("true")))
    res = subprocess.run([analyze, "verify", "--man=no", str(tmp_path / "xcscan-agent.service"),
                          str(tmp_path / "xcscan-agent.timer")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         universal_newlines=True)
    assert res.returncode == 0 and res.stdout.strip() == "", res.stdout
    timer = (tmp_path / "xcscan-agent.timer").read_text()
    assert "RandomizedDelaySec=1h" in timer and "Persistent=true" in timer
