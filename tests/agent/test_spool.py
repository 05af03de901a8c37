import json
import os

from scanner.agent.log import AgentLog
from scanner.agent.spool import Spool
from scanner.agent.uploader import upload_all


def _spool(tmp_path, **kw):
    s = Spool(str(tmp_path / "spool"), **kw)
    s.ensure()
    return s


def test_write_is_complete_and_ordered(tmp_path):
    s = _spool(tmp_path)
    ids = []
    for i in range(5):
        rid = "00000000-0000-4000-8000-%012d" % i
        s.write(rid, "host", 1700000000 + i, "sig%d" % i, b'{"n":%d}' % i)
        ids.append(rid)
    names = s.names()
    assert [s.read(n).report_id for n in names] == ids
    entry = s.read(names[2])
    assert entry.body == b'{"n":2}' and entry.timestamp == 1700000002 and entry.signature == "sig2"
    assert oct(os.stat(entry.path).st_mode & 0o777) == oct(0o600)
    assert not [n for n in os.listdir(s.directory) if n.startswith(".")]


def test_cap_evicts_oldest_first_and_never_the_new_one(tmp_path):
    s = _spool(tmp_path, max_reports=3)
    names = [s.write("id-%d" % i, "h", i, "s", b"x" * 100) for i in range(5)]
    evicted = s.enforce_cap(keep=names[-1])
    assert evicted == names[:2]
    assert s.names() == names[2:]
    s2 = _spool(tmp_path / "b", max_bytes=1)
    only = s2.write("id-x", "h", 1, "s", b"x" * 100)
    assert s2.enforce_cap(keep=only) == [] and s2.names() == [only]


class NoClient(object):
    def submit(self, *a, **k):
        raise AssertionError("a corrupt file must not be sent")


def _truncated(tmp_path):
    """A spool holding one report file cut short by 3 bytes; (spool, its name)."""
    s = _spool(tmp_path)
    name = s.write("id-1", "h", 1, "s", b"0123456789")
    path = os.path.join(s.directory, name)
    with open(path, "rb") as fh:
        data = fh.read()
    with open(path, "wb") as fh:
        fh.write(data[:-3])
    return s, name


def test_truncated_file_is_quarantined_not_sent(tmp_path):
    s, name = _truncated(tmp_path)
    import io
    err = io.StringIO()
    result = upload_all(s, NoClient(), "h", AgentLog(stream=err))
    assert s.names() == [] and s.rejected_names() == [name]
    assert "truncated" in err.getvalue()
    with open(os.path.join(s.directory, "rejected", name + ".reason")) as fh:
        assert "truncated" in fh.read()
    assert result.rejected and not result.ok


def test_leftover_temporary_files_are_cleaned(tmp_path):
    s = _spool(tmp_path)
    keep = s.write("id-1", "h", 1, "s", b"{}")
    with open(os.path.join(s.directory, ".tmp-123-x.xcr.99"), "wb") as fh:
        fh.write(b"partial")
    assert s.clean_temporary() == [".tmp-123-x.xcr.99"]
    assert s.names() == [keep]


def test_header_is_json_with_length(tmp_path):
    s = _spool(tmp_path)
    name = s.write("id-1", "h", 5, "c2ln", b"body")
    with open(os.path.join(s.directory, name), "rb") as fh:
        header = json.loads(fh.readline())
    assert header == {"format": "xcscan-spool/1", "report_id": "id-1", "host_id": "h", "timestamp": 5,
                      "signature": "c2ln", "length": 4}


def test_agent_log_in_chinese(tmp_path):
    """A corrupt spool file under --lang zh: the agent says so in Chinese, with the reason, and keeps the
    English reason in the .reason file (data for whoever reads the spool); an error too."""
    import io
    from scanner.errors import XcscanError
    s, name = _truncated(tmp_path)
    err = io.StringIO()
    upload_all(s, NoClient(), "h", AgentLog(stream=err, lang="zh"))
    line = err.getvalue().strip()
    assert line == ("xcscan 代理：错误：%s：暂存文件无法读取：正文为 7 字节，头部记载为 10 字节（文件被截断？）；"
                    "已移至 %s/rejected/" % (name, s.directory)), line
    with open(os.path.join(s.directory, "rejected", name + ".reason")) as fh:
        assert "truncated" in fh.read()
    err = io.StringIO()
    AgentLog(stream=err, lang="zh").error(XcscanError("refusing to write output: too many levels of symbolic links"))
    assert err.getvalue() == "xcscan 代理：错误：拒绝写入输出：符号链接层数过多\n", err.getvalue()
