"""`xcscan inventory` shows software with evidence and versions, as JSON and as a table in zh and en."""
import json
import os
import shutil
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
RPMDB = os.path.join(HERE, "fixtures", "software", "rpmdb", "sqlite", "rpmdb.sqlite")


def xcscan(*args):
    # a fixed width: the table is laid out for $COLUMNS (tests/test_terminal_width.py covers 80 and 200)
    env = dict(os.environ, COLUMNS="200")
    proc = subprocess.run([sys.executable, "-m", "scanner"] + list(args), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, cwd=os.path.dirname(HERE), env=env)
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout.decode()


@pytest.fixture
def rpm_image(make_root):
    """An openEuler-like image: rpm database, DM installed with its unit, Tongsuo under /opt."""
    root = make_root({
        "/etc/os-release": 'NAME="openEuler"\nVERSION="22.03 (LTS-SP3)"\nID="openEuler"\nVERSION_ID="22.03"\n',
        "/opt/dmdbms/bin/dmserver": b"\x7fELF",
        "/opt/dmdbms/data/DAMENG/dm.ini": "PORT_NUM = 5236\n",
        "/usr/lib/systemd/system/DmServiceDMSERVER.service":
            "[Unit]\nDescription=DM Instance Service\n[Service]\nType=forking\nUser=dmdba\n"
            "ExecStart=/opt/dmdbms/bin/DmServiceDMSERVER start\n[Install]\nWantedBy=multi-user.target\n",
        "/etc/systemd/system/multi-user.target.wants/DmServiceDMSERVER.service":
            ("symlink", "/usr/lib/systemd/system/DmServiceDMSERVER.service"),
        "/usr/sbin/nginx": b"\x7fELF",
        "/opt/tongsuo/bin/tongsuo": b"\x7fELF",
    })
    os.makedirs(os.path.join(root, "var/lib/rpm"))
    shutil.copy(RPMDB, os.path.join(root, "var/lib/rpm", "rpmdb.sqlite"))
    return root


def test_inventory_json_offline_rpm_image(rpm_image):
    report = json.loads(xcscan("inventory", "--root", rpm_image, "--format", "json"))
    assert report["facts"]["packages"]["manager"] == "rpm"
    assert report["facts"]["collection"]["processes"]["status"] == "not_collected"
    comps = dict((c["product_id"], c) for c in report["inventory"]["components"]
                 if c["category"] in ("database", "web-server", "crypto"))
    assert sorted(comps) == ["dm", "mysql", "nginx", "openssl", "tongsuo"]
    assert comps["nginx"]["version"] == "1.21.5"
    assert comps["mysql"]["version"] == "8.0.36"
    assert comps["tongsuo"]["version"] == "8.4.0" and comps["tongsuo"]["origin"] == "domestic"
    assert comps["tongsuo"]["details"]["sm3"] is None  # offline: not probed, not guessed
    assert comps["dm"]["origin"] == "domestic" and comps["dm"]["confidence"] == "high"
    assert set(e["kind"] for e in comps["dm"]["evidence"]) == {"service", "path", "config"}
    assert comps["dm"]["details"]["user"] == "dmdba"  # User= of its unit
    assert comps["dm"]["details"]["data_dir"] == "/opt/dmdbms/data/DAMENG"  # where its dm.ini is
    assert comps["dm"]["details"]["running"] is None
    by_cat = report["inventory"]["localization"]["by_category"]
    assert by_cat["database"]["domestic"] == 1 and by_cat["database"]["foreign"] == 1


@pytest.mark.parametrize("lang,words", [("en", ["DM Database (Dameng)", "Database", "domestic"]),
                                        ("zh", ["达梦数据库", "数据库"])])
def test_inventory_table_both_languages(rpm_image, lang, words):
    out = xcscan("inventory", "--root", rpm_image, "--lang", lang)
    evidence = "软件包: nginx 1.21.5-4.oe2203" if lang == "zh" else "package: nginx 1.21.5-4.oe2203"  # kind in lang
    for word in words + ["1.21.5", "8.0.36", evidence, "DmServiceDMSERVER.service"]:
        assert word in out, word
