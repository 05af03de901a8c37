"""Find the line of a value inside a YAML document (for lint messages).

Only used when something is wrong, so it composes the node tree on demand.
"""
from __future__ import absolute_import


def locate(text, where):
    """1-based line of the node at ``where`` (a tuple of keys/indexes), or of its nearest ancestor."""
    import yaml
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        node = yaml.compose(text, Loader=loader)
    except yaml.YAMLError:
        return None
    if node is None:
        return None
    line = node.start_mark.line + 1
    for step in where:
        nxt = None
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if key_node.value == str(step) or (isinstance(step, bool) and key_node.value in ("true", "false")):
                    # point at the key for scalars, at the value start for collections
                    nxt = value_node
                    line = key_node.start_mark.line + 1
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(step, int) and step < len(node.value):
            nxt = node.value[step]
            line = nxt.start_mark.line + 1
        if nxt is None:
            break
        node = nxt
    return line


def locate_file(path, where):
    try:
        with open(path, "rb") as fh:
            return locate(fh.read().decode("utf-8", "replace"), where)
    except (IOError, OSError):
        return None
