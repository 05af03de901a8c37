"""Text for a terminal: display width (a CJK character takes two cells), the terminal's width, and
wrapping that never breaks a word, a Chinese phrase or a command, and never starts a line with
closing punctuation (禁则: no line begins with ，。、；：？！）」 …; no line ends with （「 …).

Standard library only (unicodedata.east_asian_width), so the agent needs no new dependency."""
from __future__ import absolute_import

import re
import unicodedata

# may not start a line (line-start prohibited) / may not end a line (line-end prohibited)
NO_START = set(u"，。、；：？！）」』】〕〉》”’…—·%,.;:?!)]}>")
NO_END = set(u"（「『【〔〈《“‘([{<")
# commands a remediation names; an English sentence keeps such a command on one line
COMMANDS = ("systemctl", "dnf", "yum", "apt", "apt-get", "chmod", "chown", "chgrp", "sed", "echo", "printf",
            "usermod", "userdel", "useradd", "groupmod", "passwd", "chage", "augenrules", "auditctl",
            "authselect", "visudo", "grubby", "grub2-setpassword", "update-crypto-policies", "firewall-cmd",
            "nft", "iptables", "sysctl", "rm", "setenforce", "fixfiles", "xcscan", "openssl", "chronyc",
            "timedatectl", "mount", "find", "install", "ln", "mv", "cp", "mkdir", "touch", "sh", "bash")
_STOP = set(["and", "or", "then", "to", "in", "if", "with", "as", "so", "for", "the", "a", "an", "of", "on",
             "after", "before", "until", "unless", "when", "where", "which", "that", "is", "are", "be"])


def char_width(ch):
    if unicodedata.combining(ch):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def width(text):
    """Display width in terminal cells."""
    return sum(char_width(c) for c in text)


def is_cjk(ch):
    return unicodedata.east_asian_width(ch) in ("W", "F")


def terminal_width(default=200, minimum=40):
    """$COLUMNS, else the width of the terminal stdout is, else ``default`` (a file or a pipe: wide,
    so a saved report keeps its rows on one line where it can)."""
    import os
    import shutil
    import sys
    try:
        columns = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        columns = 0
    if columns <= 0:
        stdout = sys.stdout
        tty = hasattr(stdout, "isatty") and stdout.isatty()
        columns = shutil.get_terminal_size((default, 24)).columns if tty else default
    return max(minimum, columns)


def ljust(text, cells):
    """Pad to ``cells`` display cells."""
    return text + " " * max(0, cells - width(text))


# ------------------------------------------------------------------ units
def _runs(para):
    """Split into runs: ('space', ' '), ('latin', 'word...'), ('cjk', '中文'), ('punct', '，').
    Digits touching a Chinese character count as Chinese: "5次", "不超过90天" are one phrase."""
    out = []
    for index, ch in enumerate(para):
        if ch == " ":
            kind = "space"
        elif ch in NO_START or ch in NO_END:
            kind = "punct"
        elif is_cjk(ch) or (ch.isdigit() and _digits_touch_cjk(para, index)):
            kind = "cjk"
        else:
            kind = "latin"
        if out and out[-1][0] == kind and kind != "punct":
            out[-1][1] += ch
        else:
            out.append([kind, ch])
    return out


def _digits_touch_cjk(para, index):
    before = index
    while before > 0 and para[before - 1].isdigit():
        before -= 1
    after = index
    while after < len(para) - 1 and para[after + 1].isdigit():
        after += 1
    prev_ch = para[before - 1] if before > 0 else ""
    next_ch = para[after + 1] if after + 1 < len(para) else ""
    return (bool(prev_ch) and is_cjk(prev_ch) and prev_ch not in NO_START and prev_ch not in NO_END) or \
        (bool(next_ch) and is_cjk(next_ch) and next_ch not in NO_START and next_ch not in NO_END)


def _units(para, max_phrase):
    """Unbreakable units as [text, space_before]. A Latin stretch inside Chinese text (a command, a
    product name) and a Chinese phrase up to ``max_phrase`` cells are single units; closing
    punctuation sticks to what precedes it, opening punctuation to what follows; a line may break
    only at a space or next to a Chinese character."""
    has_cjk = any(is_cjk(c) for c in para)
    runs = _runs(para)
    units = []
    state = {"space": False, "opener": None}

    def push(text):
        space = state["space"]
        if state["opener"] is not None:
            text, space = state["opener"][0] + text, state["opener"][1]
            state["opener"] = None
        units.append([text, space])
        state["space"] = False

    i = 0
    while i < len(runs):
        kind, text = runs[i]
        if kind == "space":
            state["space"] = True
        elif kind == "punct" and text in NO_START and units and state["opener"] is None:
            units[-1][0] += (" " if state["space"] else "") + text
            state["space"] = False
        elif kind == "punct" and text in NO_END:
            if state["opener"] is None:
                state["opener"] = [text, state["space"]]
            else:
                state["opener"][0] += (" " if state["space"] else "") + text
            state["space"] = False
        elif kind == "latin" and has_cjk:
            j, stretch = i, ""
            while j < len(runs) and (runs[j][0] in ("latin", "space") or
                                     (runs[j][0] == "punct" and not is_cjk(runs[j][1]))):
                stretch += runs[j][1]
                j += 1
            push(stretch.rstrip(" "))
            state["space"] = stretch.endswith(" ")
            i = j
            continue
        elif kind == "cjk" and width(text) > max_phrase:
            for ch in text:
                push(ch)
        else:
            push(text)
        i += 1
    if state["opener"] is not None:
        units.append(state["opener"])
    merged = []
    for unit in units:   # no break inside "auditd.service" or "--now)": only at spaces or Chinese
        if merged and not unit[1] and not _cjk_edge(merged[-1][0][-1:]) and not _cjk_edge(unit[0][:1]):
            merged[-1][0] += unit[0]
        else:
            merged.append(unit)
    if not has_cjk:
        merged = _glue_commands(merged)
    return merged


def _cjk_edge(ch):
    return bool(ch) and is_cjk(ch)


def _glue_commands(units):
    """English text: from a command word to the end of its arguments stays one unit."""
    out = []
    i = 0
    while i < len(units):
        text, space = units[i]
        if text.strip("`'\"(") in COMMANDS:
            j = i + 1
            while j < len(units):
                nxt = units[j][0]
                if not units[j][1] or nxt.lower().strip(".,;:") in _STOP or nxt[:1].isupper():
                    break
                text += " " + nxt
                j += 1
                if nxt.endswith((";", ",", ".", ")")):
                    break
            out.append([text, space])
            i = j
            continue
        out.append([text, space])
        i += 1
    return out


def wrap(text, cells, max_phrase=None):
    """Lines of at most ``cells`` display cells (a unit wider than that stands alone on its line)."""
    cells = max(8, int(cells))
    max_phrase = max_phrase or max(8, cells * 3 // 4)   # a clause that fits stays whole
    lines = []
    for para in (text or "").split("\n"):
        line, used = "", 0
        units = []
        for unit, space in _units(para, max_phrase):
            if width(unit) > cells and " " in unit.strip() and not any(is_cjk(c) for c in unit):
                # a command longer than the whole line: break only between its words
                words = unit.split(" ")
                units.append((words[0], space))
                units.extend((word, True) for word in words[1:] if word)
            else:
                units.append((unit, space))
        for unit, space in units:
            w = width(unit)
            gap = 1 if space and line else 0
            if line and used + gap + w > cells:
                lines.append(line)
                line, used, gap = "", 0, 0
            if not line and w > cells and any(is_cjk(c) for c in unit):
                # a Chinese phrase longer than the line: break between characters, keeping 禁则
                for ch_unit in _split_long_cjk(unit):
                    cw = width(ch_unit)
                    if line and used + cw > cells:
                        lines.append(line)
                        line, used = "", 0
                    line += ch_unit
                    used += cw
                continue
            line += (" " if gap else "") + unit
            used += gap + w
        lines.append(line)
    return lines


def _split_long_cjk(unit):
    out = []
    for ch in unit:
        if out and (ch in NO_START or out[-1][-1:] in NO_END):
            out[-1] += ch
        else:
            out.append(ch)
    return out
