"""Damaged reports: a wrong container type is a clear error naming the field; wrong leaf types
(numbers, lists, objects, null where text is expected) still render, in every format."""
import copy

import pytest

from report_fixtures import load
from scanner.errors import DataError
from scanner.render import render

ODD_VALUES = (None, 5, [], {}, [1, {"a": 2}], {"zh": 1, "en": [2]})


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            for p in _paths(item, prefix + (key,)):
                yield p
    elif isinstance(value, list):
        for index, item in enumerate(value[:2]):
            for p in _paths(item, prefix + (index,)):
                yield p


def _set(doc, path, value):
    for step in path[:-1]:
        doc = doc[step]
    doc[path[-1]] = value


def test_every_field_replaced_by_an_odd_value_renders_or_names_the_field():
    base = load()
    base["facts"] = {"os": base["facts"]["os"], "errors": base["facts"]["errors"]}
    named = 0
    for path in [p for p in _paths(base) if p]:
        for value in ODD_VALUES:
            doc = copy.deepcopy(base)
            _set(doc, path, value)
            for fmt in ("html", "junit", "csv"):
                try:
                    out = render(doc, fmt, "en")
                except DataError as exc:
                    # the message names the damaged field
                    shown = ".".join(str(p) for p in path if not isinstance(p, int))
                    assert "report field" in str(exc) and shown.split(".")[0] in str(exc), (path, value, exc)
                    named += 1
                else:
                    assert isinstance(out, str) and out
    assert named > 0


@pytest.mark.parametrize("path, value, message", [
    (("results",), {"a": 1}, "report field results must be a list, found dict"),
    (("inventory", "components", 1), "x", "report field inventory.components[1] must be an object, found str"),
    (("summary", "coverage", "items"), 5, "report field summary.coverage.items must be a list, found int"),
    (("results", 3, "rule_id"), ["a"], "report field results[3].rule_id must be text, found list"),
])
def test_wrong_containers_are_named(path, value, message):
    doc = load()
    _set(doc, path, value)
    with pytest.raises(DataError) as info:
        render(doc, "html", "en")
    assert message in str(info.value)
    assert "re-run the scan" in str(info.value)
