import os
import subprocess
import sys

import pytest
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from stub_server import StubAggregator, make_pki  # noqa: E402

REPO = os.path.dirname(os.path.dirname(HERE))

FIXTURE_FILES = {
    "/etc/os-release": 'NAME="Kylin Linux Advanced Server"\nVERSION="V10 (Lance)"\nID="kylin"\n'
                       'VERSION_ID="V10"\nPRETTY_NAME="Kylin Linux Advanced Server V10 (Lance)"\n',
    "/etc/hostname": "gov-app-01\n",
    "/etc/machine-id": "0123456789abcdef0123456789abcdef\n",
}


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def stub(pki):
    server = StubAggregator(pki).start()
    server.state.tokens["tok-finance"] = "/gov/finance"
    yield server
    server.stop()


@pytest.fixture
def scan_root(make_root):
    return make_root(FIXTURE_FILES)


def xcscan(args, env=None, timeout=120, **kwargs):
    """Run the real CLI in a subprocess; return CompletedProcess (text)."""
    full_env = dict(os.environ)
    full_env.pop("XCSCAN_AGENT_CONFIG", None)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "scanner"] + list(args), cwd=REPO, env=full_env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                          timeout=timeout, **kwargs)


class Agent(object):
    """An enrolled agent living in a temporary directory."""

    def __init__(self, base, server, ca, scan_root):
        self.base = base
        self.config = str(base / "etc" / "agent.yaml")
        self.spool = str(base / "spool")
        self.state = str(base / "state")
        self.server = server
        self.ca = ca
        self.scan_root = scan_root

    def enroll(self, token="tok-finance", extra=()):
        return xcscan(["agent", "enroll", "--server", self.server, "--token", token, "--ca", self.ca,
                       "--config", self.config, "--spool-dir", self.spool, "--state-dir", self.state,
                       "--root", self.scan_root, "--splay", "0"] + list(extra))

    def set(self, **values):
        with open(self.config) as fh:
            doc = yaml.safe_load(fh)
        doc.update(values)
        with open(self.config, "w") as fh:
            yaml.safe_dump(doc, fh)

    def get(self):
        with open(self.config) as fh:
            return yaml.safe_load(fh)

    def run(self, *args, **kwargs):
        return xcscan(["agent", "run", "--config", self.config, "--no-splay"] + list(args), **kwargs)

    def popen(self, *args, env=None):
        full_env = dict(os.environ)
        full_env.update(env or {})
        return subprocess.Popen([sys.executable, "-m", "scanner", "agent", "run", "--config", self.config,
                                 "--no-splay"] + list(args), cwd=REPO, env=full_env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)

    def spooled(self):
        try:
            return sorted(n for n in os.listdir(self.spool) if n.endswith(".xcr"))
        except OSError:
            return []

    def all_spool_files(self):
        out = []
        for dirpath, _dirs, files in os.walk(self.spool):
            out.extend(os.path.join(dirpath, f) for f in files)
        return sorted(out)


@pytest.fixture
def agent(tmp_path, stub, pki, scan_root):
    a = Agent(tmp_path / "agent", stub.url, pki["ca"], scan_root)
    res = a.enroll()
    assert res.returncode == 0, res.stderr
    a.set(retries=0, backoff=0)
    return a


@pytest.fixture(scope="session")
def bundle(tmp_path_factory):
    """dist/xcscan-agent.pyz built from this checkout (wheels cached in ~/.cache/xcscan/bundle-wheels)."""
    out = str(tmp_path_factory.mktemp("bundle") / "xcscan-agent.pyz")
    res = subprocess.run([sys.executable, os.path.join(REPO, "agents", "bundle", "build.py"), "-o", out],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, timeout=300)
    assert res.returncode == 0, res.stdout
    return out


@pytest.fixture(scope="session")
def bare_python():
    """The host's 'system Python': 3.7 if installed, run with -I -S (no site-packages at all)."""
    from test_py37 import find_python37
    return [find_python37() or sys.executable, "-I", "-S"]
