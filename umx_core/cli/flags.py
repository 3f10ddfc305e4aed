"""Command lines from the settings table (`umx_core.settings.SETTINGS`, and the catalog job's own rows):
`add_arguments` writes a command's flags (the flex template's parameters: `pipelines.template`).

"umx" spells flags with dashes (open-unmix's names) and booleans as switches; "job" spells them with
underscores, Beam style, and booleans also as `--flag=true` / `--flag=false` (how flex templates pass them).
"""

import argparse

from umx_core.checks import check_bool
from umx_core.settings import SETTINGS


def parse_bool(text):
    """A boolean flag's value, `--flag=true` (how flex templates pass them): the words `check_bool` takes."""
    try:
        return check_bool(text)
    except ValueError as exc:  # argparse prints an ArgumentTypeError's own words, and a ValueError's type name
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(parser, command, table=None):
    """Add `command`'s flags ("umx" or "job") to an argparse `parser`, from `table` (default `SETTINGS`).

    "umx" spells flags with dashes and booleans as switches; "job" spells them with underscores,
    Beam style, and booleans also as `--flag=true` / `--flag=false` (how flex templates pass them).
    """
    for setting in (table or SETTINGS).values():
        if command not in setting.commands:
            continue
        own = dict(setting.commands[command])
        own.pop("flag", None), own.pop("help_prefix", None)
        kwargs = {"default": setting.default_for(command),
                  "help": setting.help_text(command) + own.pop("help_suffix", "")}
        if setting.type is bool and "nargs" not in own:
            kwargs.update(action="store_true") if command == "umx" else kwargs.update(
                type=parse_bool, nargs="?", const=True)
        else:
            kwargs.update(type=setting.type, choices=setting.choices)
        kwargs.update(own)
        flag = setting.flag(command)
        if not flag.startswith("-"):  # a positional argument
            kwargs.pop("default"), kwargs.pop("choices", None)
            parser.add_argument(flag, **{k: v for k, v in kwargs.items() if v is not None})
            continue
        parser.add_argument(flag, dest=setting.name, **{k: v for k, v in kwargs.items() if k == "default" or
                                                        v is not None})
