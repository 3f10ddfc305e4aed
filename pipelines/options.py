"""The catalog job's options: the separation settings of `umx_core.settings` and the job's own rows
below, turned into one argparse parser (and the flex template's parameters, `pipelines.template`).

`parse_known_args` hands every flag the job does not know to Beam's `PipelineOptions`.
"""

import argparse

from umx_core import settings
from umx_core.checks import Number, check_bool
from umx_core.cli import flags
from umx_core.errors import UMXError
from umx_core.settings import Setting

EPILOG = ("Every other flag goes to Beam: --runner DataflowRunner, --project, --region, --temp_location, "
          "--sdk_container_image, --dataflow_service_options, --direct_num_workers ... (see Beam's pipeline "
          "options). DirectRunner is the default. Stems go to OUTPUT/<input path relative to its pattern's "
          "base, without extension>/<stem>.<codec>, separation.json last; OUTPUT/_runs/RUN.json sums up, "
          "OUTPUT/_failed/RUN.jsonl lists each failure (and is itself an --input_list for a retry).")

JOB = {"job": {}}
# the job's own rows; every separation setting and `model` / `verbose` come from umx_core.settings
JOB_SETTINGS = {s.name: s for s in [
    Setting("input", "glob of input audio, local or gs:// (repeat it, or separate with commas; ** spans folders); "
                     "nothing under --output is ever an input", [], commands={"job": {"action": "append"}}),
    Setting("input_list", "text file of input paths, one per line (local or gs://), or a failure list", [],
            commands={"job": {"action": "append"}}),
    Setting("output", "output root, local or gs://", commands=JOB, required=True),
    Setting("batch_seconds", "audio seconds per inference batch", 600.0, float, check=Number(0.0), commands=JOB),
    Setting("overwrite", "separate again what is already complete", False, bool, check=check_bool, commands=JOB),
    Setting("run_id", "name of this run's summary and failure list (default: UTC time)", commands=JOB),
    Setting("manifest_table", "also append the run's manifest rows to this BigQuery table, PROJECT:DATASET.TABLE "
                              "(created if needed)", commands=JOB),
]}
# the job's rows first (its `input` is not umx's positional one)
TABLE = {**JOB_SETTINGS, **{name: s for name, s in settings.SETTINGS.items() if name not in JOB_SETTINGS}}


def build_parser():
    """The job's argument parser (its `--help` lists the job's options with their defaults)."""
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.separate_catalog", epilog=EPILOG,
        description="Separate a catalog of audio files into stems with Open-Unmix on Apache Beam.")
    add_arguments(parser)
    return parser


def add_arguments(parser):
    """Add the job's options to `parser` (Beam's `PipelineOptions` reads them through `CatalogOptions`)."""
    flags.add_arguments(parser, "job", TABLE)


def parse_known_args(argv):
    """`(job options, Beam's arguments)`; UMXError listing every problem with the job's options."""
    known, beam_args = build_parser().parse_known_args(argv)
    problems = []
    if not known.input and not known.input_list:
        problems.append("give --input PATTERN or --input_list FILE")
    # a word that follows no flag (`--targets bass vocals`) would reach Beam, which ignores it
    strays = [a for i, a in enumerate(beam_args) if not a.startswith("-")
              and (i == 0 or not beam_args[i - 1].startswith("--") or "=" in beam_args[i - 1])]
    if strays:
        problems.append(f"unexpected argument(s) {' '.join(strays)}: a list takes one comma-separated value "
                        "(--targets vocals,drums)")
    problems += [f"give {s.flag('job')} ({s.help})" for s in JOB_SETTINGS.values()
                 if s.required and not getattr(known, s.name)]
    for s in JOB_SETTINGS.values():  # the separation settings are checked by SeparationSettings, below
        if s.check and getattr(known, s.name) is not None:
            try:
                setattr(known, s.name, s.check(getattr(known, s.name)))
            except ValueError as exc:
                problems.append(f"{s.flag('job')} {exc}")
    try:
        known.settings = settings.SeparationSettings.from_args(known, "job")
    except UMXError as exc:
        problems.append(str(exc))
    if problems:
        raise UMXError("; ".join(problems))
    return known, beam_args


def sources(options):
    """`[(kind, value)]`: every input pattern ("glob") and list ("list") the options name."""
    out = [("glob", p.strip()) for arg in options.input for p in arg.split(",") if p.strip()]
    return out + [("list", p) for p in options.input_list]
