"""The catalog job's own options: one argparse parser, its separation settings read from
`umx_core.settings`; `parse_known_args` hands every other flag to Beam's `PipelineOptions`."""

import argparse

from apache_beam.options.pipeline_options import PipelineOptions

from umx_core import settings as fields
from umx_core.errors import UMXError

DEFAULT_MODEL = "demo-5stems"

EPILOG = ("Every other flag goes to Beam: --runner DataflowRunner, --project, --region, --temp_location, "
          "--sdk_container_image, --dataflow_service_options, --direct_num_workers ... (see Beam's pipeline "
          "options). DirectRunner is the default. Stems go to OUTPUT/<input path relative to its pattern's "
          "base, without extension>/<stem>.<codec>, separation.json last; OUTPUT/_runs/RUN.json sums up, "
          "OUTPUT/_failed/RUN.jsonl lists each failure (and is itself an --input_list for a retry).")


def _bool(text):
    """`--flag`, `--flag=true` (how flex templates pass booleans) and `--flag=false`."""
    if str(text).lower() in ("1", "true", "yes", "on"):
        return True
    if str(text).lower() in ("0", "false", "no", "off", ""):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def build_parser():
    """The job's argument parser (its `--help` lists the job's options with their defaults)."""
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.separate_catalog", epilog=EPILOG,
        description="Separate a catalog of audio files into stems with Open-Unmix on Apache Beam.")
    add_arguments(parser)
    return parser


def add_arguments(parser):
    """Add the job's options to `parser` (ours, and Beam's `PipelineOptions` through `CatalogOptions`)."""
    flag = dict(type=_bool, nargs="?", const=True, default=False)
    parser.add_argument("--input", action="append", default=[],
                        help="glob of input audio, local or gs:// (repeat it, or separate with commas; ** spans "
                             "folders); nothing under --output is ever an input")
    parser.add_argument("--input_list", action="append", default=[],
                        help="text file of input paths, one per line (local or gs://), or a failure list")
    parser.add_argument("--output", help="output root, local or gs:// (required)")
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"model name or path (default: {DEFAULT_MODEL})")
    parser.add_argument("--targets", help="comma-separated " + fields.help_text("targets"))
    for name in ("niter", "wiener_win_len", "batch_frames"):
        parser.add_argument(fields.flag(name, "beam"), type=int, default=fields.FIELDS[name].default,
                            help=fields.help_text(name, job=True))
    for name in ("softmask", "residual"):
        parser.add_argument(fields.flag(name, "beam"), **flag, help=fields.help_text(name, job=True))
    parser.add_argument("--aggregate", help=fields.help_text("aggregate", job=True))
    parser.add_argument("--codec", default=fields.FIELDS["codec"].job_default, choices=sorted(fields.CODECS),
                        help=fields.help_text("codec", job=True))
    parser.add_argument("--precision", default=fields.FIELDS["precision"].default, choices=fields.PRECISIONS,
                        help=fields.help_text("precision", job=True))
    parser.add_argument("--batch_seconds", type=float, default=600.0,
                        help="audio seconds per inference batch (default: 600)")
    parser.add_argument("--overwrite", **flag, help="separate again what is already complete")
    parser.add_argument("--run_id", help="name of this run's summary and failure list (default: UTC time)")
    parser.add_argument("--verbose", **flag, help="let TensorFlow's own log lines through")


class CatalogOptions(PipelineOptions):
    """The job's options as Beam pipeline options, so a Dataflow job shows them with its own."""

    @classmethod
    def _add_argparse_args(cls, parser):
        add_arguments(parser)


def parse_known_args(argv):
    """`(job options, Beam's arguments)`; UMXError listing every problem with the job's options."""
    known, beam_args = build_parser().parse_known_args(argv)
    problems = []
    if not known.input and not known.input_list:
        problems.append("give --input PATTERN or --input_list FILE")
    if not known.output:
        problems.append("give --output (a local folder or gs://bucket/prefix)")
    try:
        known.settings = separation_settings(known)
    except UMXError as exc:
        problems.append(str(exc))
    if problems:
        raise UMXError("; ".join(problems))
    return known, beam_args


def separation_settings(options):
    """The job's `SeparationSettings` from its parsed options."""
    return fields.SeparationSettings.from_flags(
        "beam", targets=options.targets, niter=options.niter, softmask=options.softmask,
        residual=options.residual, wiener_win_len=options.wiener_win_len, aggregate=options.aggregate,
        codec=options.codec, batch_frames=options.batch_frames, precision=options.precision)


def sources(options):
    """`[(kind, value)]`: every input pattern ("glob") and list ("list") the options name."""
    out = [("glob", p.strip()) for arg in options.input for p in arg.split(",") if p.strip()]
    return out + [("list", p) for p in options.input_list]
