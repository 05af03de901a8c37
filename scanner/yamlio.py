"""YAML loading with clear, located errors (file and line) and the fast C loader when present."""
from __future__ import absolute_import

from scanner.errors import DataError


def _loader():
    import yaml
    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml_text(text, path="<string>"):
    import yaml
    try:
        return yaml.load(text, Loader=_loader())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = "%s:%d:%d" % (path, mark.line + 1, mark.column + 1) if mark else path
        problem = getattr(exc, "problem", None) or str(exc)
        raise DataError("malformed YAML: %s" % problem, path=where,
                        hint="fix the syntax at that line; YAML indentation uses spaces, not tabs")


def load_yaml_file(path):
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except (IOError, OSError) as exc:
        raise DataError("cannot read file: %s" % (exc.strerror or exc), path=path,
                        hint="check that the path exists and is readable")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError("not valid UTF-8 at byte %d" % exc.start, path=path, hint="save the file as UTF-8")
    return load_yaml_text(text, path)
