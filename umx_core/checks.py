"""The checks the settings table uses: each takes a value and gives the normalised value, or raises
ValueError saying what is wrong (`umx_core.settings` names the setting and the command's flag).

A check's bounds are plain fields (`Whole.least`, `Number.least` and `most`, `OneOf.choices`,
`TRUE_WORDS` and `FALSE_WORDS` of `check_bool`), so what reads the table (the flex template's
patterns, in `pipelines.template`) can derive from a check what it accepts.
"""

import dataclasses
import json
import math
import numbers

# the words a boolean takes, in any case, on a command line, in the API and from a flex template
TRUE_WORDS, FALSE_WORDS = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def check_bool(value):
    """True or False, or one of `TRUE_WORDS` / `FALSE_WORDS` in any case (how command lines give them)."""
    if isinstance(value, bool):
        return value
    word = value.lower() if isinstance(value, str) else None
    if word in TRUE_WORDS or word in FALSE_WORDS:
        return word in TRUE_WORDS
    raise ValueError(f"must be true or false ({'/'.join(TRUE_WORDS)} or {'/'.join(FALSE_WORDS)}), got {value!r}")


@dataclasses.dataclass(frozen=True)
class Whole:
    """A check for whole numbers of at least `least` (None too when `optional`)."""

    least: int
    optional: bool = False

    def __call__(self, value):
        if value is None and self.optional:
            return None
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < self.least:
            raise ValueError(f"must be a whole number >= {self.least}{' or None' if self.optional else ''}, "
                             f"got {value!r}")
        return int(value)


@dataclasses.dataclass(frozen=True)
class Number:
    """A check for a finite number from `least` to `most` (no upper end when `most` is None)."""

    least: float
    most: float = None

    def __call__(self, value):
        if (isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value)
                or value < self.least or (self.most is not None and value > self.most)):
            raise ValueError(f"must be a number from {self.least}{'' if self.most is None else f' to {self.most}'}, "
                             f"got {value!r}")
        return float(value)


@dataclasses.dataclass(frozen=True)
class OneOf:
    """A check for one of `choices` (after `normalise`, when given)."""

    choices: tuple
    normalise: object = None

    def __call__(self, value):
        value = self.normalise(value) if self.normalise else value
        if value not in self.choices:
            raise ValueError(f"must be one of {', '.join(self.choices)}, got {value!r}")
        return value


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
