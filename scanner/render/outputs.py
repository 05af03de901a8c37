"""Several artefacts from one report: ``--output FORMAT:PATH`` (repeatable), ``--output-json F``,
``--output-html F``... Every file is rendered first, then written to a temporary file beside its
target, fsynced, and only when all of them were written are they renamed into place. A full disk
or an unwritable path is a clear error and leaves every earlier file untouched."""
from __future__ import absolute_import

import os

from scanner.fsutil import fsync_dir

FORMATS = ("table", "json", "html", "summary", "junit", "csv")
STDOUT = "-"


def parse_spec(spec, default_fmt):
    """'html:/srv/r.html' -> ('html', '/srv/r.html', True); a plain path takes the --format
    -> (default_fmt, path, False). A file whose name starts with 'html:' can be given as './html:...'."""
    from scanner.errors import XcscanError
    if not spec:
        raise XcscanError("empty --output value", hint="give a file name, FORMAT:PATH or - for stdout")
    head, sep, tail = spec.partition(":")
    if sep and head.lower() in FORMATS:
        if not tail:
            raise XcscanError("output %r names no file" % spec,
                              hint="write FORMAT:PATH, e.g. html:/var/lib/xcscan/report.html")
        return head.lower(), tail, True
    if sep and len(head) > 1 and head.isalpha():
        raise XcscanError("unknown output format %r in %r" % (head, spec),
                          hint="formats: %s; for a file name containing ':' write ./%s"
                               % (", ".join(FORMATS), spec))
    return default_fmt, spec, False


def plan(fmt, outputs=(), per_format=None):
    """The list of (format, path) to produce. ``outputs`` are --output values (plain path or
    FORMAT:PATH); ``per_format`` maps format -> path (--output-json ...). The --format output goes
    to stdout unless a plain --output path took it. A path that may not be written (a directory,
    a block device, a planted or dangling symlink) is refused here, before any work."""
    from scanner.errors import XcscanError
    targets = []
    main_taken = False
    for spec in outputs or ():
        out_fmt, path, explicit = parse_spec(spec, fmt)
        main_taken = main_taken or not explicit
        targets.append((out_fmt, path))
    for out_fmt in FORMATS:
        path = (per_format or {}).get(out_fmt)
        if path:
            targets.append((out_fmt, path))
    if not main_taken:
        targets.insert(0, (fmt, STDOUT))
    from scanner.render.output_target import resolve
    seen = {}
    for out_fmt, path in targets:
        key = path if path == STDOUT else resolve(path)[1]   # refuses what may not be written, early
        if key in seen:
            raise XcscanError("%s is given twice (as %s and as %s output)" % (
                "stdout" if path == STDOUT else path, seen[key], out_fmt),
                hint="give each output its own file")
        seen[key] = out_fmt
    return targets


def _for_a_person(path):
    import sys
    if path != STDOUT:
        return False
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def render_all(report, targets, lang, bom=False):
    from scanner.render import render
    rendered = []
    cache = {}
    for out_fmt, path in targets:
        # JSON for a person (a terminal) is indented; for a file or a pipe it is compact
        key = (out_fmt, out_fmt == "json" and _for_a_person(path))
        if key not in cache:
            text = render(report, out_fmt, lang, pretty=key[1])
            if out_fmt == "csv" and bom:
                text = u"\ufeff" + text
            cache[key] = text
        rendered.append((out_fmt, path, cache[key]))
    return rendered


def _new_file_mode():
    from scanner.render.output_target import default_mode
    return default_mode()


def _discard(paths):
    for tmp in paths:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def _fail(path, exc, replaced=()):
    from scanner.errors import XcscanError
    if getattr(exc, "errno", None) == 28:
        reason = "no space left on device"
    else:
        reason = exc.strerror or str(exc)
    if replaced:
        hint = "only these outputs were written: %s" % ", ".join(replaced)
    else:
        hint = "check the directory exists, is writable and has free space; no output file was replaced"
    return XcscanError("cannot write output: %s" % reason, path=path, hint=hint)


def write_files(rendered, announce=None):
    """Write [(format, path, text)]; '-' goes to stdout after the files. Returns the paths written.

    Each path is first resolved (scanner.render.output_target): regular files (new, or the file a
    symlink points to) go to a fresh temporary file in the target's directory (mkstemp: O_EXCL, never
    following a planted symlink), are fsynced, and all are renamed into place only after every one
    was written; a file being replaced keeps its mode. Character devices and FIFOs (/dev/null, a
    named pipe) are written in place after that, never replaced; anything else is refused before a
    byte is written. ``announce(path)`` is called for each file written (the CLI's "wrote PATH")."""
    from scanner.render.output_target import IN_PLACE, resolve, write_in_place
    temps = []
    replaced = []
    streams = []
    resolved = []
    for _fmt, path, text in rendered:
        if path != STDOUT:
            mode, real = resolve(path)
            resolved.append((path, mode, real, text))
    try:
        for path, mode, real, text in resolved:
            if mode == IN_PLACE:
                streams.append((path, real, text))
                continue
            directory = os.path.dirname(real)
            import tempfile  # only when a file is written (stdout alone does not pay for it)
            try:
                fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(real) + ".",
                                           suffix=".tmp")
            except OSError as exc:
                raise _fail(path, exc)
            temps.append((tmp, path, real))
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(text.encode("utf-8"))
                    fh.flush()
                    os.fsync(fh.fileno())
            except (IOError, OSError) as exc:
                raise _fail(path, exc)
        new_mode = _new_file_mode()
        for tmp, path, real in temps:
            try:
                os.chmod(tmp, os.stat(real).st_mode & 0o7777 if os.path.exists(real) else new_mode)
                os.rename(tmp, real)
            except OSError as exc:
                raise _fail(path, exc, replaced)
            replaced.append(path)
            fsync_dir(os.path.dirname(real))
    except BaseException:
        _discard([tmp for tmp, path, _real in temps if path not in replaced])
        raise
    written = list(replaced)
    for path, real, text in streams:
        try:
            write_in_place(real, text.encode("utf-8"))
        except OSError as exc:
            raise _fail(path, exc, written)
        written.append(path)
    if announce:
        for path in written:
            announce(path)
    for _fmt, path, text in rendered:
        if path == STDOUT:
            import click
            click.echo(text, nl=False)
    return written


def write_report(report, fmt, lang, outputs=(), per_format=None, bom=False, announce=None):
    """Plan, render and write; returns the list of (format, path) written to files."""
    targets = plan(fmt, outputs, per_format)
    rendered = render_all(report, targets, lang, bom=bom)
    write_files(rendered, announce=announce)
    return [(f, p) for f, p in targets if p != STDOUT]
