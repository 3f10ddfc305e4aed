"""Command lines from the settings table (`umx_core.settings.SETTINGS`, and the catalog job's own rows):
`add_arguments` writes a command's flags, `template_parameters` the flex template's parameters.

"umx" spells flags with dashes (open-unmix's names) and booleans as switches; "job" spells them with
underscores, Beam style, and booleans also as `--flag=true` / `--flag=false` (how flex templates pass them).
"""

import argparse

from umx_core.settings import SETTINGS


def parse_bool(text):
    """`true`/`false` (also 1/0, yes/no, on/off) from a command line: how flex templates pass booleans."""
    if str(text).lower() in ("1", "true", "yes", "on"):
        return True
    if str(text).lower() in ("0", "false", "no", "off", ""):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


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


def template_parameters(table, registry_names=()):
    """The flex template's parameters: every "job" setting of `table`, with its label, help and regex.

    Args:
        registry_names: model names the `model` parameter accepts besides gs:// paths.
    """
    params = []
    for setting in table.values():
        if "job" not in setting.commands:
            continue
        pattern = setting.pattern
        if setting.name == "model" and pattern is None:
            pattern = "^(" + "|".join(registry_names) + "|gs://.+)$"
        elif pattern is None and setting.choices:
            pattern = "^(" + "|".join(setting.choices) + ")$"
        elif pattern is None:
            pattern = {bool: "^(true|false)$", int: "^[0-9]+$", float: r"^[0-9]+(\.[0-9]+)?$"}.get(
                setting.type, "^.+$")
        params.append({"name": setting.name, "label": setting.label or setting.name,
                       "helpText": setting.help_text("job"), "isOptional": not setting.required,
                       "regexes": [pattern]})
    return params
