"""`xcscan agent enroll|run|status`: the agent that cron or a systemd timer runs on every host."""
from __future__ import absolute_import

import json
import sys

import click

from scanner.cli.options import lang_option, resolve_lang

_CONFIG_HELP = ("Agent configuration file (default $XCSCAN_AGENT_CONFIG or /etc/xcscan/agent.yaml) "
                "/ 代理配置文件")


def config_option(f):
    return click.option("--config", "config_path", default=None, metavar="PATH", help=_CONFIG_HELP)(f)


@click.group()
def agent():
    """Enroll with the aggregator, run scheduled scans, show status / 代理：注册、定时扫描、状态"""


@agent.command()
@click.option("--server", default=None, metavar="URL", help="Aggregator URL, https://HOST:PORT / 汇聚服务器地址")
@click.option("--token", default=None, envvar="XCSCAN_ENROLL_TOKEN", metavar="T",
              help="Enrollment token (or $XCSCAN_ENROLL_TOKEN, which keeps it out of `ps`) / 注册令牌")
@click.option("--ca", "ca_file", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Pin this CA certificate (ca.pem from `xcscan server init`) / 固定 CA 证书")
@click.option("--fingerprint", default=None, metavar="SHA256",
              help="Pin the server certificate's SHA-256 fingerprint instead / 固定服务器证书指纹")
@config_option
@click.option("--profile", default=None, help="Rule profile for scheduled scans (default all) / 定时扫描使用的检查方案")
@click.option("--spool-dir", default=None, help="Spool directory (default /var/spool/xcscan) / 暂存区目录")
@click.option("--state-dir", default=None, help="State directory (default /var/lib/xcscan) / 状态目录")
@click.option("--root", "scan_root", default=None, help="Scan this root instead of / (images) / 扫描根目录")
@click.option("--splay", type=click.IntRange(0), default=None,
              help="Maximum random delay before a scheduled scan, seconds (default 900) / 随机延迟上限（秒）")
@click.option("--force", is_flag=True, help="Enroll again even if already enrolled / 强制重新注册")
@click.option("--offline", "offline", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Enroll without a connection, from an enrollment bundle (`xcscan server token create "
                   "--offline-bundle`); the request travels with `agent export` / 离线注册")
@lang_option
def enroll(server, token, ca_file, fingerprint, config_path, profile, spool_dir, state_dir, scan_root, splay,
           force, offline, lang):
    """Make the key, register it, write agent.yaml / 生成密钥、注册、写入配置"""
    from scanner.agent.enroll import enroll as do_enroll
    from scanner.agent.config import default_path
    from scanner.i18n import t
    if ca_file and fingerprint:
        raise click.UsageError("give either --ca or --fingerprint, not both")
    settings = {"profile": profile, "spool_dir": spool_dir, "state_dir": state_dir, "root": scan_root,
                "splay": splay}
    if offline:
        if server or token or ca_file or fingerprint:
            raise click.UsageError("--offline takes the server, CA and token from the bundle: drop --server, "
                                   "--token, --ca and --fingerprint")
        from scanner.agent.enroll import enroll_offline
        values, created = enroll_offline(offline, config_path=config_path, settings=settings, force=force)
        click.echo(t("agent.enroll.offline_done", resolve_lang(lang), host_id=values["host_id"],
                     org=values.get("org")), err=True)
        return
    if not server or not token:
        raise click.UsageError("give --server URL and --token T (or --offline BUNDLE)")
    values, created = do_enroll(server, token, ca_file=ca_file, fingerprint=fingerprint,
                                config_path=config_path, settings=settings, force=force)
    click.echo(t("agent.enroll.done", resolve_lang(lang), host_id=values["host_id"], org=values.get("org") or "-",
                 config=config_path or default_path(),
                 keyinfo=t("agent.enroll.key_new" if created else "agent.enroll.key_reused", resolve_lang(lang))))


@agent.command()
@config_option
@click.option("--no-splay", is_flag=True, help="Start at once (no random delay) / 立即开始，不随机延迟")
@click.option("--upload-only", is_flag=True, help="Only send what is spooled, no scan / 只上传暂存区中的报告，不扫描")
@click.option("--quiet", "-q", is_flag=True, help="No summary line on success / 成功时不输出摘要")
@lang_option
def run(config_path, no_splay, upload_only, quiet, lang):
    """Scan, sign, spool and upload (what cron/systemd runs) / 扫描、签名、暂存并上传"""
    from scanner.agent import runner
    try:
        code = runner.run(config_path, no_splay=no_splay, upload_only=upload_only, quiet=quiet,
                          lang=resolve_lang(lang))
    except runner._Reported as exc:  # already written to stderr/syslog
        sys.exit(exc.exit_code)
    sys.exit(code)


@agent.command()
@config_option
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="Output format / 输出格式")
@click.option("--no-probe", is_flag=True, help="Do not contact the server / 不探测服务器")
@lang_option
def status(config_path, fmt, no_probe, lang):
    """Last run, spool depth, last upload, server reachability / 运行状态"""
    from scanner.agent import config as agent_config
    from scanner.agent.status import collect_status
    from scanner.i18n import t
    cfg = agent_config.load(config_path)
    doc = collect_status(cfg, probe=not no_probe)
    if fmt == "json":
        click.echo(json.dumps(doc, indent=2, ensure_ascii=False))
        return
    lang = resolve_lang(lang)
    last_run = doc["last_run"] or {}
    last_upload = doc["last_upload"] or {}
    spool = doc["spool"]
    if doc["server_reachable"] is None:
        reach = t("agent.status.not_probed", lang)
    elif doc["server_reachable"]:
        reach = t("agent.status.reachable", lang, detail=doc["server_detail"])
    else:
        reach = t("agent.status.unreachable", lang, detail=doc["server_detail"])
    rows = [
        (t("agent.status.server", lang), "%s (%s)" % (doc["server"], reach)),
        (t("agent.status.host", lang), "%s %s" % (doc["host_id"], doc["org"] or "")),
        (t("agent.status.last_run", lang),
         "%s %s%s" % (last_run.get("started_at", "-"), last_run.get("result", t("agent.status.never", lang)),
                      (": " + last_run["error"]) if last_run.get("error") else "")),
        (t("agent.status.last_upload", lang),
         t("agent.status.upload_line", lang, at=last_upload.get("at", "-"), sent=last_upload.get("sent", 0),
           success=last_upload.get("last_success_at") or "-")),
        (t("agent.status.spool", lang),
         t("agent.status.spool_line", lang, depth=spool["depth"], bytes=spool["bytes"], dir=spool["dir"],
           rejected=spool["rejected"])),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        click.echo("%s  %s" % (key.ljust(width), value))
    if doc["server_reachable"] is False:
        sys.exit(1)


@agent.command("export")
@config_option
@click.option("--output", "-o", "output", required=True, type=click.Path(dir_okay=False),
              help="The transfer bundle to write (e.g. on removable media) / 要写出的传输包")
@click.option("--all", "include_exported", is_flag=True,
              help="Also reports already exported but not yet confirmed / 包括已导出但未确认的报告")
@click.option("--merge", "merge_from", multiple=True, type=click.Path(dir_okay=False, exists=True),
              help="Collector: merge these hosts' bundles into --output instead of reading this host's spool, "
                   "repeatable / 汇集多台主机的传输包")
@lang_option
def export_cmd(config_path, output, include_exported, merge_from, lang):
    """Write spooled reports into one bundle for an air-gapped transfer / 导出暂存区报告，用于离线传输"""
    from scanner.agent import transfer
    from scanner.i18n import t
    lang = resolve_lang(lang)
    if merge_from:
        bundle_id, count = transfer.merge(output, list(merge_from))
        click.echo(t("agent.export.merged", lang, count=count, output=output, bundle=bundle_id), err=True)
        return
    from scanner.agent import config as agent_config
    cfg = agent_config.load(config_path)
    done = transfer.export(cfg, output, include_exported=include_exported)
    for name, why in done["skipped"]:
        click.echo(t("agent.export.skipped", lang, name=name, why=why), err=True)
    if not done["reports"]:
        click.echo(t("agent.export.nothing", lang), err=True)
        return
    click.echo(t("agent.export.done", lang, count=done["reports"], output=output, bundle=done["bundle_id"]),
               err=True)


@agent.command("submit")
@config_option
@click.argument("report", type=click.Path(dir_okay=False, exists=True))
@click.option("--token", default=None, envvar="XCSCAN_ENROLL_TOKEN", metavar="T",
              help="Enrollment token for the scanned host's org unit, needed the first time (or "
                   "$XCSCAN_ENROLL_TOKEN) / 首次提交时被扫描主机所属组织单位的注册令牌")
@lang_option
def submit_cmd(config_path, report, token, lang):
    """Submit a report this station collected over SSH for a host without an agent, signed with the
    station's key (the host is enrolled as agentless under this station the first time)
    / 以本扫描站的密钥签名并提交经 SSH 采集的无代理主机报告"""
    from scanner.i18n import t
    from scanner.agent import config as agent_config
    from scanner.agent import agentless
    cfg = agent_config.load(config_path)
    done = agentless.submit(cfg, report, token=token)
    lang = resolve_lang(lang)
    if done["enrolled"]:
        click.echo(t("agent.submit.enrolled", lang, hostname=done["hostname"], host_id=done["host_id"]), err=True)
    if done["delivered"]:
        click.echo(t("agent.submit.done", lang, report_id=done["report_id"], hostname=done["hostname"],
                     host_id=done["host_id"]), err=True)
        return
    if done["rejected"]:
        click.echo(t("agent.submit.rejected", lang, report_id=done["report_id"], reason=done["rejected"][0][1]),
                   err=True)
        sys.exit(1)
    click.echo(t("agent.submit.spooled", lang, report_id=done["report_id"], problem=done["problem"] or "-"), err=True)
    sys.exit(4)


@agent.command("confirm")
@config_option
@click.argument("receipt", type=click.Path(dir_okay=False, exists=True))
@lang_option
def confirm_cmd(config_path, receipt, lang):
    """Clear exported reports the aggregator's receipt confirms / 按回执清除已导入的报告"""
    from scanner.i18n import t
    from scanner.agent import config as agent_config
    from scanner.agent import transfer
    cfg = agent_config.load(config_path)
    done = transfer.confirm(cfg, receipt)
    click.echo(t("agent.confirm.done", resolve_lang(lang), cleared=done["cleared"], rejected=done["rejected"]),
               err=True)
