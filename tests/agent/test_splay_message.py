"""`agent run` in a terminal says it sleeps N s of splay and how to skip it; under cron or systemd
(stderr not a terminal) it stays silent. The terminal is a real pseudo-terminal."""
import os
import pty
import select
import subprocess
import sys

from conftest import REPO


def _run_with_terminal_stderr(agent, env=None):
    master, slave = pty.openpty()
    full_env = dict(os.environ, **(env or {}))
    full_env.pop("XCSCAN_AGENT_CONFIG", None)
    proc = subprocess.Popen([sys.executable, "-m", "scanner", "agent", "run", "--config", agent.config],
                            cwd=REPO, env=full_env, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    out = b""
    while True:
        ready, _w, _x = select.select([master], [], [], 120)
        if not ready:
            break
        try:
            chunk = os.read(master, 4096)
        except OSError:          # EIO: the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    proc.wait(120)
    os.close(master)
    return proc.returncode, out.decode("utf-8", "replace")


def test_splay_is_announced_on_a_terminal(agent):
    agent.set(splay=1)
    code, err = _run_with_terminal_stderr(agent, {"LANG": "en_US.UTF-8"})
    assert code == 0, err
    line = [l for l in err.splitlines() if "sleeping" in l]
    assert len(line) == 1, err
    assert line[0].startswith("xcscan agent: sleeping ") and "random splay up to 1 s" in line[0]
    assert "xcscan agent run --no-splay starts at once" in line[0]


def test_splay_is_silent_without_a_terminal(agent):
    agent.set(splay=1)
    res = agent.run()                # --no-splay: no sleep, nothing said
    assert res.returncode == 0 and "sleeping" not in res.stderr
    full_env = dict(os.environ)
    full_env.pop("XCSCAN_AGENT_CONFIG", None)
    proc = subprocess.run([sys.executable, "-m", "scanner", "agent", "run", "--config", agent.config], cwd=REPO,
                          env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "sleeping" not in proc.stderr     # cron/systemd: stderr is a pipe or the journal


def test_splay_message_in_chinese(agent):
    agent.set(splay=1)
    code, err = _run_with_terminal_stderr(agent, {"LANG": "zh_CN.UTF-8", "LC_ALL": ""})
    assert code == 0, err
    assert "随机延迟" in err and "--no-splay" in err
