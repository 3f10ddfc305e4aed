"""umx_core/settings.py: one table, and every entry point's flags, checks and template parameters from it."""

import argparse
import dataclasses
import re

import pytest

from pipelines import options as job_options
from pipelines.template import template_metadata
from umx_core import SeparationSettings, settings
from umx_core.cli import build_parser, flags
from umx_core.errors import UMXError
from umx_core.checks import Whole
from umx_core.settings import SETTINGS, Setting


def parse(command, argv):
    parser = argparse.ArgumentParser()
    flags.add_arguments(parser, command, job_options.TABLE if command == "job" else None)
    return parser.parse_args(argv)


def flags_of(parser):
    """`{dest: (option strings, default, help)}` of a parser, as its --help shows them."""
    out = {}
    for action in parser._actions:  # argparse offers no public listing of its arguments
        if action.dest != "help":
            out[action.dest] = (tuple(action.option_strings), action.default, action.help)
    return out


def test_settings_validate_and_name_each_commands_flag():
    """One home for a setting: defaults, validation, and errors that say the flag the command uses."""
    defaults = SeparationSettings()
    assert (defaults.niter, defaults.wiener_win_len, defaults.codec, defaults.batch_frames) == (1, 300, "wav", None)
    assert SeparationSettings.from_args(parse("job", []), "job").codec == "flac"  # the catalog job's own default
    parsed = SeparationSettings(targets="vocals, drums", aggregate='{"band": ["drums"]}', codec=".FLAC")
    assert parsed.targets == ("vocals", "drums") and parsed.aggregate == {"band": ["drums"]} and parsed.codec == "flac"
    for command, argv, flag in (("umx", ["--ext", "aiff"], "--ext"), ("job", ["--codec=aiff"], None)):
        if flag is None:  # the job's codec has argparse choices: refused while parsing
            with pytest.raises(SystemExit):
                parse(command, argv)
            continue
        with pytest.raises(UMXError, match=f"^{flag} must be one of"):
            SeparationSettings.from_args(parse(command, argv), command)
    for command, argv, flag in (("umx", ["--wiener-win-len", "0"], "--wiener-win-len"),
                                ("job", ["--wiener_win_len", "0"], "--wiener_win_len")):
        with pytest.raises(UMXError, match=f"^{flag} must be a whole number >= 1"):
            SeparationSettings.from_args(parse(command, argv), command)
    for bad in ('{"x": "vocals"}', "[1]", "{not json", '{"x": []}'):
        with pytest.raises(UMXError, match="^aggregate"):
            SeparationSettings(aggregate=bad)
    with pytest.raises(UMXError, match="twice"):
        SeparationSettings(targets=["vocals", "vocals"])
    assert "batch_frames" not in defaults.output_fields()  # a run knob changes no stem


def test_precision_is_validated_and_recorded_only_when_it_is_not_float32():
    """bfloat16 changes the stems, so a record must hold it; float32 is left out, so records written
    before the setting existed still match a default run."""
    assert "precision" not in SeparationSettings().output_fields()
    assert SeparationSettings(precision="bfloat16").output_fields()["precision"] == "bfloat16"
    assert SeparationSettings(precision="bfloat16").separator_overrides()["precision"] == "bfloat16"
    with pytest.raises(UMXError, match="precision must be one of float32, bfloat16"):
        SeparationSettings(precision="half")


def test_both_commands_and_the_template_take_their_options_from_the_table():
    """Every flag of `umx` and of the job, and every template parameter, is a row of the table with
    that row's default and help: a command adds no option of its own."""
    umx = flags_of(build_parser())
    job = flags_of(job_options.build_parser())
    rows_of = {"umx": SETTINGS, "job": job_options.TABLE}
    for command, flags in (("umx", umx), ("job", job)):
        table = rows_of[command]
        assert set(flags) == {name for name, s in table.items() if command in s.commands}, command
        for name, (spelling, default, help_text) in flags.items():
            row = table[name]
            assert help_text.startswith(row.commands[command].get("help_prefix", "") + row.help), name
            assert default == row.default_for(command), name
            assert spelling == (() if not row.flag(command).startswith("-") else (row.flag(command),)), name
    assert umx["wiener_win_len"][0] == ("--wiener-win-len",) and job["wiener_win_len"][0] == ("--wiener_win_len",)
    assert umx["codec"][0] == ("--ext",)  # open-unmix's name
    template = {p["name"]: p for p in template_metadata()["parameters"]}
    assert set(template) == set(job)
    assert all(template[name]["helpText"] == job[name][2] for name in job)
    assert [name for name, p in template.items() if not p["isOptional"]] == ["output"]


def test_a_new_row_reaches_both_commands_the_template_and_the_separator(monkeypatch):
    """Adding a setting is one row: its flags, its template parameter, its field, the keyword
    `load_separator` gets and the record's parameters all follow."""
    row = Setting("dither", "a setting made up for this test", 3, int, check=Whole(1),
                  separation=True, separator=True, stems=True)
    monkeypatch.setitem(SETTINGS, "dither", row)
    monkeypatch.setattr(job_options, "TABLE", {**job_options.TABLE, "dither": row})
    monkeypatch.setattr(settings, "SEPARATION", settings.SEPARATION + ("dither",))
    monkeypatch.setattr(settings, "SeparationSettings", settings.separation_settings_class())
    assert parse("umx", ["--dither", "5"]).dither == 5 and parse("job", ["--dither", "7"]).dither == 7
    made = settings.SeparationSettings.from_args(parse("job", ["--dither", "7"]), "job")
    assert made.separator_overrides()["dither"] == 7 and made.output_fields()["dither"] == 7
    assert "dither" in {f.name for f in dataclasses.fields(made)}
    (param,) = [p for p in template_metadata()["parameters"] if p["name"] == "dither"]
    assert param["helpText"] == "a setting made up for this test (default: 3)" and param["label"] == "dither"
    assert re.fullmatch(param["regexes"][0], "7") and not re.fullmatch(param["regexes"][0], "-1")  # from its check
    with pytest.raises(UMXError, match="^--dither must be a whole number"):
        settings.SeparationSettings.from_args(parse("umx", ["--dither", "-1"]), "umx")


@pytest.mark.parametrize("given, expected", [(True, True), (False, False), ("true", True), ("FALSE", False),
                                             ("Yes", True), ("no", False), ("1", True), ("0", False)])
def test_a_boolean_setting_takes_the_words_the_flags_take(given, expected):
    """`analytics="false"` is False, as `--analytics=false` is: one parser for the API and the flags."""
    assert SeparationSettings(analytics=given, softmask=given, residual=given).analytics is expected
    assert flags.parse_bool(given) is expected
    made = SeparationSettings.from_args(parse("job", [f"--softmask={given}", f"--residual={given}"]), "job")
    assert (made.softmask, made.residual) == (expected, expected)


@pytest.mark.parametrize("name", ["analytics", "softmask", "residual"])
@pytest.mark.parametrize("bad", ["maybe", "onn", "", 1, None, "truex"])
def test_a_boolean_setting_refuses_anything_else_naming_the_setting_and_the_value(name, bad):
    with pytest.raises(UMXError, match=f"^{name} must be true or false .*got {re.escape(repr(bad))}$"):
        SeparationSettings(**{name: bad})
    if isinstance(bad, str):
        with pytest.raises(SystemExit):  # argparse: "argument --NAME: must be true or false ..., got 'maybe'"
            parse("job", [f"--{name}={bad}"])


def test_a_number_setting_refuses_what_is_not_finite():
    for bad in (float("inf"), float("nan")):
        with pytest.raises(UMXError, match="^audible_db must be a number from 0.0"):
            SeparationSettings(audible_db=bad)
    assert SeparationSettings(audible_floor=-200).audible_floor == -200.0
