"""The flex template's metadata: one parameter per option of the catalog job, with its label, help and regex.

`python -m pipelines.template` prints it (infra/dataflow/build.sh writes it to `metadata.json`; the
standard library and the repository alone must do). A parameter's regex is derived from its setting's
check (`umx_core.checks`): a number's sign from the check's range, a choice's or a boolean's words,
so the template accepts every value the job accepts. Paths, names and JSON, which no check bounds,
have their patterns here.
"""

import json
import re
import sys

from pipelines import options
from umx_core.checks import FALSE_WORDS, TRUE_WORDS, Number, OneOf, Whole

TEMPLATE = {"name": "umx-separate-catalog",
            "description": "Separate a catalog of audio into stems with Open-Unmix (TensorFlow), GCS to GCS."}
# the console's name of each parameter (a new option without one shows its own name)
LABELS = {
    "input": "Input audio (globs)", "input_list": "Input list", "output": "Output root",
    "batch_seconds": "Batch seconds", "overwrite": "Overwrite", "run_id": "Run id",
    "manifest_table": "Manifest BigQuery table", "model": "Model", "targets": "Targets", "niter": "EM iterations",
    "softmask": "Soft mask", "residual": "Residual stem", "wiener_win_len": "EM window", "aggregate": "Aggregate",
    "codec": "Codec", "batch_frames": "Batch frames", "precision": "Network precision",
    "runtime": "Network runtime", "analytics": "Analytics", "audible_db": "Audible dB",
    "audible_floor": "Audible floor", "vocal_min_seconds": "Vocal minimum seconds", "verbose": "Verbose",
}
# the options no check bounds: on Dataflow, paths are gs:// ones
PATTERNS = {
    "input": "^gs://[^,]+(,gs://[^,]+)*$",
    "input_list": "^gs://.+",
    "output": "^gs://[^/]+(/.*)?$",
    "run_id": "^[A-Za-z0-9_.-]+$",
    "manifest_table": r"^[A-Za-z0-9_.:-]+:[A-Za-z0-9_]+\.[A-Za-z0-9_$-]+$",
    "targets": r"^[A-Za-z0-9_-]+( *, *[A-Za-z0-9_-]+)*$",
    "aggregate": r"^\{.*\}$",
}
# unsigned spellings of a whole number and of a float (60, 60., .5, 6e1: what float() reads), and of zero
WHOLE, WHOLE_ZERO = "[0-9]+", "0+"
DECIMAL = r"([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?"
DECIMAL_ZERO = r"(0+(\.0*)?|\.0+)([eE][+-]?[0-9]+)?"


def literal(word):
    """A regex for `word` as it is."""
    # not re.escape: it escapes "-" too, which a JavaScript regex in unicode mode refuses
    return re.sub(r"([.^$*+?()[\]{}|\\])", r"\\\1", word)


def any_case(word):
    """A regex for `word` in any case, without inline flags (Dataflow reads the regex in Java, the console in JS)."""
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else literal(c) for c in word)


def number_pattern(least, most, digits, zero):
    """A number written in `digits`, of the signs its range from `least` to `most` (None: no end) holds."""
    parts = []
    if most is None or most >= 0:
        parts.append(r"\+?" + (zero if most == 0 else digits))
    if least <= 0:  # "-0" is 0, which a range from 0 holds
        parts.append("-" + (zero if least == 0 else digits))
    return "^(" + "|".join(parts) + ")$"


def pattern(setting, registry_names=()):
    """The regex a job option's value must match on the template, from its check (or `PATTERNS`)."""
    check = setting.check
    if setting.name in PATTERNS:
        return PATTERNS[setting.name]
    if setting.name == "model":
        return "^(" + "|".join(map(literal, registry_names)) + "|gs://.+)$"
    if setting.type is bool:  # the job reads every boolean with check_bool's words (umx_core.cli.flags)
        return "^(" + "|".join(map(any_case, TRUE_WORDS + FALSE_WORDS)) + ")$"
    if isinstance(check, OneOf):  # the job's flag takes the choices as they are (argparse choices)
        return "^(" + "|".join(map(literal, check.choices)) + ")$"
    if isinstance(check, Whole):
        return number_pattern(check.least, None, WHOLE, WHOLE_ZERO)
    if isinstance(check, Number):
        return number_pattern(check.least, check.most, DECIMAL, DECIMAL_ZERO)
    return "^.+$"


def template_parameters(table, registry_names=()):
    """The flex template's parameters: every "job" setting of `table`, with its label, help and regex.

    Args:
        registry_names: model names the `model` parameter accepts besides gs:// paths.
    """
    return [{"name": s.name, "label": LABELS.get(s.name, s.name), "helpText": s.help_text("job"),
             "isOptional": not s.required, "regexes": [pattern(s, registry_names)]}
            for s in table.values() if "job" in s.commands]


def template_metadata():
    """The flex template's metadata (`metadata.json`): its parameters are the job's options."""
    from umx_core import registry

    return {**TEMPLATE, "parameters": template_parameters(options.TABLE, registry.names())}


if __name__ == "__main__":
    json.dump(template_metadata(), sys.stdout, indent=2)
    print()
