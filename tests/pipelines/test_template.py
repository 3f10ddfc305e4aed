"""pipelines/template.py: every flex-template regex against the catalog job itself, with values made from
each option's check (its default, both ends of its range, one value beyond each end), not from the
patterns' own table: the template must accept every value the job accepts."""

import contextlib
import io
import re

import pytest

from pipelines import options
from pipelines.template import template_metadata
from umx_core.checks import Number, OneOf, Whole
from umx_core.errors import UMXError

NEEDED = ["--input", "gs://bucket/in/*.wav", "--output", "gs://bucket/out"]  # what every run must give
# the boolean words the job takes (docs/catalog.md), typed here rather than read from umx_core.checks
BOOLEAN = ["true", "false", "yes", "no", "1", "0", "TRUE", "False", "yEs", "NO"]
NOT_BOOLEAN = ["maybe", "onn", "of", "", "2", "truex", " true", "t"]
# options no check bounds (paths, names, JSON): values a user gives them
FREE = {"input": ["gs://b/a/**/*.mp3,gs://b/c/*.wav"], "input_list": ["gs://b/_failed/run.jsonl"],
        "output": ["gs://b", "gs://b/stems"], "run_id": ["nightly-2026.12.07"],
        "manifest_table": ["proj:data.tracks"], "targets": ["vocals", "vocals,drums", "vocals, drums"],
        "aggregate": ['{"band": ["drums", "bass"]}'], "model": ["umxhq", "demo-5stems", "gs://b/models/mine"]}
FAR = 10 ** 9  # the far end of a range that has none


@pytest.fixture(scope="module")
def regexes():
    return {p["name"]: p["regexes"] for p in template_metadata()["parameters"]}


def job_accepts(name, text):
    """Whether the job takes `--name=text`: its parser and its checks, as a launch runs them."""
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # argparse's usage lines
            options.parse_known_args([*NEEDED, f"{options.TABLE[name].flag('job')}={text}"])
    except (UMXError, SystemExit):
        return False
    return True


def spellings(value):
    """How a user may type `value`: as Python prints it, signed, and a float also whole and in exponent form."""
    texts = {str(value), f"{value:+}"}
    if isinstance(value, float):
        texts |= {f"{value:e}"} | ({str(int(value))} if value.is_integer() else set())
    if value == 0:
        texts.add(f"-{value}")  # -0 is 0
    return sorted(texts)


def job_rows(*kinds):
    return {name: s for name, s in options.TABLE.items() if "job" in s.commands and isinstance(s.check, kinds)}


def test_every_template_parameter_is_held_against_the_job_here(regexes):
    covered = set(job_rows(Whole, Number, OneOf)) | set(FREE)
    covered |= {name for name, s in options.TABLE.items() if "job" in s.commands and s.type is bool}
    assert covered == set(regexes)


@pytest.mark.parametrize("name", sorted(job_rows(Whole, Number)))
def test_a_number_parameter_takes_every_number_its_check_takes(regexes, name):
    """The default and both ends of the check's range pass the template and the job, however typed;
    one step beyond each end the job refuses (and the template too, where the sign tells)."""
    check = options.TABLE[name].check
    kind, step = (int, 1) if isinstance(check, Whole) else (float, 1.0)
    top = check.most if isinstance(check, Number) and check.most is not None else FAR
    inside = [options.TABLE[name].default_for("job"), check.least, top]
    outside = [check.least - step] + ([top + step] if top != FAR else [])
    for value in [v for v in inside if v is not None]:
        for text in spellings(kind(value)):
            assert job_accepts(name, text), (name, text)
            assert all(re.fullmatch(r, text) for r in regexes[name]), (name, text, regexes[name])
    for value in outside:
        sign_refuses = value < 0 <= check.least or value > 0 >= top  # a sign the range does not hold
        for text in spellings(kind(value)):
            assert not job_accepts(name, text), (name, text)
            assert not sign_refuses or not any(re.fullmatch(r, text) for r in regexes[name]), (name, text)


def test_audible_floors_negative_default_passes_the_template(regexes):
    """The case that was refused: `audible_floor`'s own default, -60."""
    assert all(re.fullmatch(r, "-60") for r in regexes["audible_floor"]) and job_accepts("audible_floor", "-60")


@pytest.mark.parametrize("name", sorted(job_rows(OneOf)))
def test_a_choice_parameter_takes_exactly_the_checks_choices(regexes, name):
    choices = options.TABLE[name].check.choices
    texts = [*choices, *(c.upper() for c in choices), *(c + "x" for c in choices), "." + choices[0], ""]
    for text in texts:
        assert all(re.fullmatch(r, text) for r in regexes[name]) == job_accepts(name, text), (name, text)
    assert all(job_accepts(name, c) for c in choices)


@pytest.mark.parametrize("name", sorted(n for n, s in options.TABLE.items() if "job" in s.commands and s.type is bool))
def test_a_boolean_parameter_takes_exactly_the_boolean_words(regexes, name):
    for text in BOOLEAN:
        assert job_accepts(name, text) and all(re.fullmatch(r, text) for r in regexes[name]), (name, text)
    for text in NOT_BOOLEAN:
        assert not job_accepts(name, text) and not any(re.fullmatch(r, text) for r in regexes[name]), (name, text)


@pytest.mark.parametrize("name", sorted(FREE))
def test_a_free_parameter_takes_what_users_give_it(regexes, name):
    default = options.TABLE[name].default_for("job")
    for text in FREE[name] + ([default] if isinstance(default, str) else []):
        assert job_accepts(name, text) and all(re.fullmatch(r, text) for r in regexes[name]), (name, text)
