"""Terminal output fits the terminal: display width (CJK characters take two cells), $COLUMNS, wrapping
that never breaks a word, a Chinese phrase or a remediation command, and no line starting with
punctuation. Real renders of the fixture report at 80 and 200 columns, in zh and en."""
import os
import re

import pytest
from click.testing import CliRunner

from report_fixtures import FIXTURES, load
from scanner.cli import cli
from scanner.render import view
from scanner.render.textwidth import NO_END, NO_START, width, wrap

FIXTURE = os.path.join(FIXTURES, "kylin-l3.json")


def table(columns, lang, *extra):
    runner = CliRunner()
    try:
        runner = CliRunner(mix_stderr=False)
    except TypeError:  # click >= 8.2 keeps stderr apart already
        pass
    res = runner.invoke(cli, ["report", FIXTURE, "--format", "table", "--lang", lang] + list(extra),
                        env={"COLUMNS": str(columns), "LANG": "C.UTF-8", "LC_ALL": ""}, catch_exceptions=False)
    assert res.exit_code == 0, res.stderr
    return res.stdout


def grid_lines(text):
    """The inventory grid: header, dashed rule, rows (until the first line that is not part of it)."""
    lines = text.splitlines()
    rule = next(i for i, l in enumerate(lines) if re.match(r"^-+(  -+)+$", l))
    body = []
    for line in lines[rule + 1:]:
        if not line.strip() or line.startswith(("国产化率", "Localization rate")):
            break
        body.append(line)
    return lines[rule - 1], lines[rule], body


def cells_at(line, start, end):
    """The characters of ``line`` occupying display cells [start, end)."""
    out, pos = "", 0
    for ch in line:
        w = width(ch)
        if pos >= start and pos + w <= end:
            out += ch
        elif pos < end and pos + w > start:
            out += "\0"          # a wide character straddling the boundary
        pos += w
    return out


@pytest.mark.parametrize("columns", [80, 200])
@pytest.mark.parametrize("lang", ["zh", "en"])
def test_grid_columns_align_by_display_width(columns, lang):
    out = table(columns, lang)
    header, rule, body = grid_lines(out)
    spans = [(m.start(), m.end()) for m in re.finditer(r"-+", rule)]   # the rule is ASCII: index == cell
    assert len(spans) == 6 and len(body) > 10
    assert width(rule) <= columns
    for line in [header] + body:
        for (start, end), (next_start, _e) in zip(spans, spans[1:]):
            gap = cells_at(line, end, next_start)
            assert gap.strip(" ") == "", "column text crosses a gap in %r" % line
        # every row but the last column fits inside the terminal
        assert width(line) <= columns or width(cells_at(line, 0, spans[-1][0])) <= spans[-1][0]
    if lang == "zh":
        assert any(re.search(u"[\u4e00-\u9fff]", cells_at(l, s, e)) for l in body for s, e in spans[:2])


@pytest.mark.parametrize("columns", [80, 200])
@pytest.mark.parametrize("lang", ["zh", "en"])
def test_results_fit_and_keep_words_phrases_and_commands(columns, lang):
    out = table(columns, lang)
    results_part = out[out.index("mlps.ia.password-max-age") - 10:]
    for line in results_part.splitlines():
        # a line longer than the terminal is only ever one unbreakable word
        assert width(line) <= columns or len(line.strip().split(" ")) == 1, line
        stripped = line.strip()
        if stripped:
            assert stripped[0] not in NO_START, "line starts with punctuation: %r" % line
            assert stripped[-1] not in NO_END, "line ends with an opening bracket: %r" % line
    joined = " ".join(l.strip() for l in results_part.splitlines())
    for res in load()["results"]:
        if res["status"] not in ("fail", "error", "waived"):
            continue
        remediation = view.pick(res.get("remediation"), lang)
        # every word of the remediation is on the screen whole
        for word in re.findall(r"[A-Za-z0-9_./=-]{3,}", remediation):
            assert word in joined, (res["rule_id"], word)
        if lang == "zh":
            # a command inside Chinese text (a Latin stretch) that fits a line is on one line
            for command in re.findall(r"[A-Za-z][A-Za-z0-9 _./=:;-]*[A-Za-z0-9]", remediation):
                if " " in command and width(command) < columns - 20:
                    assert any(command in l for l in results_part.splitlines()), (res["rule_id"], command)


def test_wider_terminal_means_fewer_lines():
    assert len(table(200, "zh").splitlines()) < len(table(80, "zh").splitlines())


def test_wrap_rules():
    text = "口令最长使用期限不超过90天，登录失败处理：连续失败5次锁定账户。执行 systemctl enable --now auditd（之后重启）。"
    for cells in (20, 30, 44, 80):
        lines = wrap(text, cells)
        assert all(width(l) <= cells for l in lines), lines
        assert all(l[0] not in NO_START and l[-1] not in NO_END for l in lines), lines
        assert "".join(lines).replace(" ", "") == text.replace(" ", "")
    # phrases that fit stay whole; the command stays on one line
    lines = wrap(text, 44)
    assert any("口令最长使用期限不超过90天" in l for l in lines)
    assert any("systemctl enable --now auditd" in l for l in lines)
    en = "Set PermitRootLogin no in /etc/ssh/sshd_config, then run systemctl restart sshd.service and check."
    lines = wrap(en, 40)
    assert any("systemctl restart sshd.service" in l for l in lines)
    assert all(width(l) <= 40 for l in lines)
    assert " ".join(lines) == en
    assert width("国产化率") == 8 and width("Kylin") == 5


def test_rules_list_fits_80_columns():
    runner = CliRunner()
    res = runner.invoke(cli, ["rules", "list", "--lang", "zh"], env={"COLUMNS": "80"})
    assert res.exit_code == 0
    lines = res.output.splitlines()
    last = max(m.start() for m in re.finditer(r"-+", lines[1]))
    # only the last column may run past the edge, and only with one unbreakable word
    too_wide = [l for l in lines if width(l) > 80 and (width(cells_at(l, 0, last)) > last or
                                                        len(cells_at(l, last, 10 ** 6).split()) != 1)]
    assert too_wide == []
    ids = [l.split()[0] for l in lines[2:] if l and not l.startswith(" ")]
    from scanner.engine import load_ruleset
    assert sorted(ids) == sorted(r["id"] for r in load_ruleset())   # rule ids are never cut


def _on_a_terminal(columns, lang="zh"):
    """`xcscan report` with stdout on a real pseudo-terminal of ``columns`` x 40 and no $COLUMNS: the
    width comes from the terminal itself (shutil.get_terminal_size), as in an interactive shell."""
    import fcntl
    import pty
    import select
    import struct
    import subprocess
    import sys
    import termios
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    env = dict(os.environ, LANG="C.UTF-8", LC_ALL="")
    env.pop("COLUMNS", None)
    env.pop("LINES", None)
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.Popen([sys.executable, "-m", "scanner", "report", FIXTURE, "--format", "table", "--lang", lang],
                            stdout=slave, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, cwd=repo, env=env)
    os.close(slave)
    out = b""
    while True:
        ready, _w, _x = select.select([master], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:          # EIO: the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    assert proc.wait(60) == 0, proc.stderr.read()
    proc.stderr.close()
    return out.decode("utf-8").replace("\r\n", "\n")


@pytest.mark.parametrize("columns", [80, 132])
def test_a_real_terminal_sets_the_width_without_columns(columns):
    out = _on_a_terminal(columns)
    header, rule, body = grid_lines(out)
    assert columns - 30 < width(rule) <= columns      # the grid takes the terminal's width
    assert any(re.search(u"[\u4e00-\u9fff]", l) for l in body)
    # exactly what $COLUMNS of the same width gives, which the tests above check cell by cell
    assert out == table(columns, "zh")
