"""The `umx` command: open-unmix's command line, for one file or a catalog folder.

    umx song.wav more/*.flac --outdir stems --model umxhq --niter 1 --residual --ext flac

Every input is separated file to file in segments (any length in bounded memory) into
`{outdir}/{input name}/{stem}.{ext}` (without --outdir: `./{input name}_{model}/`, as
open-unmix). A bad input prints one line naming it and the problem; the other inputs are
still separated and the exit code is 2. TensorFlow is imported only after the arguments
parse, so `--help` and `--list-models` answer at once.
"""

import argparse
import os
import sys
import time

from umx_core import settings
from umx_core.cli import flags
from umx_core.errors import UMXError


def build_parser():
    """The `umx` argument parser: open-unmix's options and ours, from `umx_core.settings.SETTINGS`."""
    parser = argparse.ArgumentParser(
        prog="umx", description="Separate music into stems with Open-Unmix (TensorFlow).",
        epilog="The default model is the small shipped demo model, trained on synthetic data only, so that "
               "the command works offline; for real music use --model umxhq (MIT) or umxl (non-commercial "
               "licence), downloaded once. umx --list-models shows them all.")
    flags.add_arguments(parser, "umx")
    return parser


def list_models(out=sys.stdout):
    """Print the model names with targets, sample rate, licence and description."""
    from umx_core import registry

    for name, targets, rate, licence, description in registry.describe():
        print(f"{name:<12} {', '.join(targets)} @ {rate} Hz | licence: {licence}\n{'':<12} {description}", file=out)


def expand_inputs(patterns, outdir=None):
    """Files named by paths, folders (every file below) and glob patterns, in order, without repeats,
    leaving out anything inside `outdir` (a rerun never separates the previous run's stems)."""
    from umx_core import storage
    from umx_core.outputs import is_inside

    out = []
    for pattern in patterns:
        out.extend(m for m in storage.glob(pattern) if m not in out and not (outdir and is_inside(m, outdir)))
    return out


def assign_folders(paths, folder_of):
    """`(path, output folder)` for each input, and `{path: UMXError}` for inputs refused because
    another input already maps to their folder (`umx_core.outputs.claim`)."""
    from umx_core.outputs import claim

    by_folder = {}
    for path in paths:
        by_folder.setdefault(folder_of(path), []).append(path)
    refused = {}
    for folder, group in by_folder.items():
        if len(group) > 1:
            refused.update(claim(folder, group)[1])
    return [(p, folder_of(p)) for p in paths if p not in refused], refused


class Progress:
    """A one-line progress bar on stderr for one file (only on a terminal, or with --verbose)."""

    def __init__(self, label, enabled):
        self.label, self.enabled, self.last = label, enabled, 0.0

    def __call__(self, done, total):
        if not self.enabled or (time.monotonic() - self.last < 0.2 and done < total):
            return
        self.last = time.monotonic()
        width = 30
        filled = int(width * done / max(total, 1e-9))
        print(f"\r{self.label[-40:]:<40} [{'#' * filled}{'.' * (width - filled)}] {done:6.1f}/{total:.1f} s",
              end="\n" if done >= total else "", file=sys.stderr, flush=True)


def _number(value, unit, digits=1):
    return "n/a" if value is None else f"{value:.{digits}f} {unit}"


SEGMENTS_SHOWN = 5  # vocal segments `umx --stats` lists; the rest are counted (--verbose: all)


def stats_lines(analytics, shown=SEGMENTS_SHOWN):
    """`umx --stats`'s lines: one per stem and the mixture, then the vocal segments: how many, their
    seconds in all, and the first `shown` (None: every one)."""
    lines = []
    for name, stats in [("mixture", analytics["mixture"]), *analytics["stems"].items()]:
        line = (f"  {name:<14} {_number(stats['loudness_lufs'], 'LUFS')}, peak {_number(stats['sample_peak_dbfs'], 'dBFS')}"
                f", true peak {_number(stats['true_peak_dbtp'], 'dBTP')}")
        if "audible_share" in stats:
            span = ("" if stats["first_audible_seconds"] is None else
                    f" ({stats['first_audible_seconds']:.1f}-{stats['last_audible_seconds']:.1f} s)")
            share = "n/a" if stats["energy_share"] is None else f"{stats['energy_share']:.0%}"
            line += f", audible {stats['audible_share']:.0%}{span}, {share} of the energy"
        lines.append(line)
    if analytics["instrumental"]:
        lines.append("  instrumental")
    elif analytics["instrumental"] is not None:
        found = analytics["vocal_segments"]
        listed = found if shown is None else found[:shown]
        more = f", and {len(found) - len(listed)} more" if len(found) > len(listed) else ""
        seconds = sum(b - a for a, b in found)
        lines.append(f"  vocal segments: {len(found)}, {seconds:.1f} s in all: "
                     + ", ".join(f"{a:.1f}-{b:.1f} s" for a, b in listed) + more)
    return lines


def _duration(seconds):
    minutes, secs = divmod(seconds, 60)
    return f"{int(minutes)}:{secs:04.1f}"


def main(argv=None):
    """Run the `umx` command; returns the exit code (2 when any input or option failed)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list_models:
        list_models()
        return 0
    if not args.input:
        parser.error("give one or more input files (or --list-models)")
    # open-unmix's --residual NAME names the stem (below); the setting says whether there is one
    residual_name, args.residual = args.residual, args.residual is not False
    try:
        options = settings.SeparationSettings.from_args(args, "umx")
    except UMXError as exc:
        print(f"umx: error: {exc}", file=sys.stderr)
        return 2
    if args.no_cuda:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    from umx_core.cli import xla_cache
    from umx_core.cli.console import quiet_tensorflow

    with xla_cache.enabled(args.verbose):  # compiled programs reused by the next run on this machine
        quiet_tensorflow(args.verbose)
    from umx_core import storage
    from umx_core.outputs import output_name
    from umx_core.pretrained import load_separator
    from umx_core.stream import separate_file

    try:
        separator = load_separator(args.model, **options.separator_overrides())
        options.check_sources(separator.sources, "umx")
    except UMXError as exc:
        print(f"umx: error: --model {args.model}: {exc}" if args.model not in str(exc) else f"umx: error: {exc}",
              file=sys.stderr)
        return 2
    aggregate = options.aggregate
    if residual_name not in (False, "residual"):
        aggregate = {**{s: [s] for s in separator.targets}, residual_name: ["residual"], **(aggregate or {})}
    if args.verbose:
        family = ", ".join(f"{key} {value}" for key, value in separator.settings().items())
        print(f"model {args.model} (family {separator.family.name}): targets {separator.targets}, "
              f"{int(separator.sample_rate)} Hz, {family}", file=sys.stderr)
    model_label = os.path.basename(str(args.model).rstrip("/")) or "model"

    def folder_of(path):
        name = output_name(path)
        return storage.join(args.outdir, name) if args.outdir else f"{name}_{model_label}"

    inputs, refused = assign_folders(expand_inputs(args.input, args.outdir), folder_of)
    for error in refused.values():
        print(f"umx: error: {error}", file=sys.stderr)
    failures = len(refused)
    for path, outdir in inputs:
        progress = Progress(output_name(path), args.verbose or sys.stderr.isatty())
        try:
            result = separate_file(path, outdir, separator, ext=options.codec, start=args.start,
                                   duration=args.duration, aggregate=aggregate, backend=args.audio_backend,
                                   progress=progress, analytics=options.analytics_options() if args.stats else None)
        except UMXError as exc:
            failures += 1
            print(f"umx: error: {exc}", file=sys.stderr)
            continue
        except Exception as exc:  # an unexpected failure on one file must not stop the others
            failures += 1
            print(f"umx: error: {path}: {type(exc).__name__}: {exc}", file=sys.stderr)
            continue
        notes = f" ({'; '.join(result.notes)})" if result.notes else ""
        print(f"{path}: {_duration(result.duration)} in {result.seconds:.1f} s ({result.realtime:.1f}x real time) "
              f"-> {outdir}/{{{','.join(result.stems)}}}.{options.codec}{notes}", flush=True)
        if result.analytics is not None:
            print("\n".join(stats_lines(result.analytics, None if args.verbose else SEGMENTS_SHOWN)), flush=True)
    return 2 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
