"""Nearest-match suggestions for a mistyped id (a profile, a rule): "did you mean ...?"."""
from __future__ import absolute_import


def nearest(word, choices, limit=3):
    """The closest of ``choices`` to ``word`` (difflib ratio >= 0.6, and for dotted rule ids also
    the ones sharing the last part), best first."""
    import difflib
    choices = sorted(set(choices))
    scored = []
    for choice in choices:
        matcher = difflib.SequenceMatcher(None, word, choice)
        if matcher.real_quick_ratio() >= 0.6 and matcher.quick_ratio() >= 0.6:
            ratio = matcher.ratio()
            if ratio >= 0.6:
                scored.append((-ratio, choice))
    scored.sort()
    # the best match and any as good as it (within 0.05), not every distant relative
    found = [c for r, c in scored if -r >= -scored[0][0] - 0.05][:limit] if scored else []
    if not found and "." in word:
        tail = word.rsplit(".", 1)[-1]
        found = [c for c in choices if c.rsplit(".", 1)[-1] == tail][:limit]
    return found


def did_you_mean(word, choices, lang="en"):
    """' — did you mean X?' / ' — did you mean X or Y?' (zh: '（是否应为 X？）'), or ''."""
    found = nearest(word, choices)
    if not found:
        return ""
    if lang == "zh":
        return "（是否应为 %s？）" % " 或 ".join(found)
    return " — did you mean %s?" % " or ".join(found)
