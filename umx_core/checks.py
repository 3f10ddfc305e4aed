"""The checks the settings table uses: each takes a value and gives the normalised value, or raises
ValueError saying what is wrong (`umx_core.settings` names the setting and the command's flag)."""

import json
import math
import numbers


def check_whole(least, optional=False):
    """A check for whole numbers of at least `least` (None too when `optional`)."""

    def check(value):
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
            raise ValueError(f"must be a whole number >= {least}{' or None' if optional else ''}, got {value!r}")
        return int(value)

    return check


def check_number(least, most=None):
    """A check for a number from `least` to `most`."""

    def check(value):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not least <= value <= (
                math.inf if most is None else most):
            raise ValueError(f"must be a number from {least}{'' if most is None else f' to {most}'}, got {value!r}")
        return float(value)

    return check


def check_one_of(choices, normalise=lambda v: v):
    """A check for one of `choices` (after `normalise`)."""

    def check(value):
        value = normalise(value)
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}, got {value!r}")
        return value

    return check


def check_targets(value):
    """Target names from a list or a comma-separated string (None: all), each once."""

    if value is None or value == "" or value == []:
        return None
    names = [t.strip() for t in value.split(",")] if isinstance(value, str) else [str(t).strip() for t in value]
    names = [t for t in names if t]
    if len(set(names)) != len(names):
        raise ValueError(f"names a target twice: {names}")
    return tuple(names) or None


def parse_aggregate(value):
    """`aggregate` (JSON text or a dict) as `{stem: [source, ...]}`; ValueError saying what is wrong."""
    if value is None or isinstance(value, dict):
        aggregate = value
    else:
        try:
            aggregate = json.loads(value)
        except ValueError as exc:
            raise ValueError(f"is not valid JSON of the form {{\"stem\": [\"source\", ...]}} ({exc})") from None
    if aggregate is not None and (not isinstance(aggregate, dict) or not aggregate or not all(
            isinstance(v, list) and v and all(isinstance(s, str) for s in v) for v in aggregate.values())):
        raise ValueError('must be a JSON object of non-empty lists of source names, '
                         'e.g. {"vocals": ["vocals"], "band": ["drums", "bass", "other"]}')
    return aggregate
