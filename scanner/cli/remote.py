"""`xcscan scan --ssh USER@HOST[:PORT]` / `--ssh-list FILE`: agentless scans over OpenSSH (scanner/remote_ssh.py)."""
from __future__ import absolute_import

import json
import os
import re

import click

from scanner.errors import XcscanError


def ssh_options(f):
    opts = [
        click.option("--ssh", "ssh", default=None, metavar="[USER@]HOST[:PORT]",
                     help="Scan a host without an agent over SSH: copy the offline bundle there, run it with its "
                          "system Python, bring the report back, remove the copy / 经 SSH 无代理扫描"),
        click.option("--ssh-list", "ssh_list", type=click.Path(dir_okay=False, exists=True), default=None,
                     help="A file of targets, one per line, scanned in parallel; reports go to --output-dir "
                          "/ 目标主机列表文件"),
        click.option("--ssh-sudo", "ssh_sudo", is_flag=True, default=False,
                     help="Run the scan through `sudo -n` on the target / 在目标主机上经 sudo -n 运行"),
        click.option("--bundle", "bundle", type=click.Path(dir_okay=False), default=None,
                     help="The offline bundle to copy (default $XCSCAN_BUNDLE) / 离线包"),
        click.option("--known-hosts", "known_hosts", type=click.Path(dir_okay=False, exists=True), default=None,
                     help="known_hosts file to check host keys against (default: ssh's own) / 主机公钥文件"),
        click.option("--ssh-identity", "ssh_identity", type=click.Path(dir_okay=False, exists=True), default=None,
                     help="Private key for ssh -i / SSH 私钥"),
        click.option("--ssh-timeout", "ssh_timeout", type=click.FloatRange(1, 86400), default=600.0,
                     show_default=True, help="Seconds allowed per host / 每台主机的时限（秒）"),
        click.option("--jobs", "jobs", type=click.IntRange(1, 64), default=4, show_default=True,
                     help="Hosts scanned at once with --ssh-list / 并行扫描的主机数"),
        click.option("--output-dir", "output_dir", type=click.Path(file_okay=False), default=None,
                     help="With --ssh-list: write HOST.json for each host here / 每台主机报告的输出目录"),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def pop_ssh(kw):
    keys = ("ssh", "ssh_list", "ssh_sudo", "bundle", "known_hosts", "ssh_identity", "ssh_timeout", "jobs",
            "output_dir")
    return dict((k, kw.pop(k)) for k in keys)


def remote_args(profile, allow_unknown_os):
    if profile and (os.sep in profile or profile.endswith((".yaml", ".yml"))):
        raise click.UsageError("--ssh runs a shipped profile on the target; a profile file is not copied there")
    args = ["--profile", profile or "all"]
    if allow_unknown_os:
        args.append("--allow-unknown-os")
    return args


def one(target, opts, args, profile, waivers):
    from scanner.pipeline import evaluate_report
    from scanner.remote_ssh import find_bundle, remote_scan
    report = remote_scan(target, find_bundle(opts["bundle"]), args, sudo=opts["ssh_sudo"],
                         known_hosts=opts["known_hosts"], identity=opts["ssh_identity"], timeout=opts["ssh_timeout"])
    if waivers:   # waivers are the scanning station's file: applied here, to the facts the target sent
        collection = report.get("collection")
        report = evaluate_report(report, profile=profile, waivers=waivers)
        report["collection"] = collection
    from scanner import notices
    c = report["collection"]
    notices.add(report, "ssh", target=c["target"], by=c["by"], sudo="sudo -n" if c["sudo"] else "-")
    return report


def file_name(target):
    return re.sub(r"[^A-Za-z0-9._@-]+", "_", target) + ".json"


def run_list(opts, args, profile, waivers, fail_on, quiet, lang="en"):
    from scanner.remote_ssh import find_bundle, read_target_list, scan_many
    from scanner.cli.scan import exit_code
    if not opts["output_dir"]:
        raise click.UsageError("--ssh-list writes one report per host: give --output-dir DIR")
    find_bundle(opts["bundle"])      # fail before connecting anywhere
    targets = read_target_list(opts["ssh_list"])
    os.makedirs(opts["output_dir"], exist_ok=True)
    worst = 0
    for target, report, error in scan_many(targets, lambda t: one(t, opts, args, profile, waivers), opts["jobs"]):
        if error:
            click.echo("%s: %s" % (target, error), err=True)
            worst = 1
            continue
        path = os.path.join(opts["output_dir"], file_name(target))
        from scanner.render.output_target import open_output   # a planted link is not followed
        try:
            with open_output(path) as fh:
                fh.write(json.dumps(report, ensure_ascii=False).encode("utf-8"))
        except XcscanError as exc:
            click.echo("%s: %s" % (target, exc), err=True)
            worst = 1
            continue
        if not quiet:
            s = report.get("summary") or {}
            click.echo("%s: %s (pass %s, fail %s)" % (target, path, (s.get("counts") or {}).get("pass"),
                                                     (s.get("counts") or {}).get("fail")), err=True)
        if exit_code(report, fail_on):
            from scanner.cli.report_messages import fail_on_line
            click.echo("xcscan: %s: %s" % (target, fail_on_line(report, fail_on, lang)), err=True)
            if worst == 0:
                worst = 3
    return worst
