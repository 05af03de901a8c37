"""JSON is indented for a person (a terminal) and compact for a file or a pipe (scanner/render/outputs.py)."""
import json
import os
import pty
import subprocess
import sys

ROOT = os.path.join(os.path.dirname(__file__), "fixtures", "hardware", "taishan-kylin")
CMD = [sys.executable, "-m", "scanner", "inventory", "--format", "json", "--root", ROOT]


def test_json_to_a_file_or_a_pipe_is_compact(tmp_path):
    out = tmp_path / "r.json"
    subprocess.run(CMD + ["-o", str(out), "--quiet"], check=True)
    text = out.read_text(encoding="utf-8")
    assert text.count("\n") == 1 and '":' in text and '": ' not in text.split('"facts"')[0]
    piped = subprocess.run(CMD, check=True, stdout=subprocess.PIPE).stdout.decode("utf-8")
    assert piped.count("\n") == 1
    assert json.loads(text)["inventory"] == json.loads(piped)["inventory"]


def test_json_on_a_terminal_is_indented():
    master, slave = pty.openpty()
    proc = subprocess.Popen(CMD, stdout=slave, stderr=subprocess.PIPE)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait()
    os.close(master)
    assert proc.returncode == 0, proc.stderr.read()
    text = b"".join(chunks).decode("utf-8").replace("\r\n", "\n")
    assert text.startswith("{\n  \"")
    assert json.loads(text)["inventory"]
