"""The `umx` command: open-unmix's command line, for one file or a catalog folder.

    umx song.wav more/*.flac --outdir stems --model umxhq --niter 1 --residual --ext flac

Every input is separated file to file in segments (any length in bounded memory) into
`{outdir}/{input name}/{stem}.{ext}` (without --outdir: `./{input name}_{model}/`, as
open-unmix). A bad input prints one line naming it and the problem; the other inputs are
still separated and the exit code is 2. TensorFlow is imported only after the arguments
parse, so `--help` and `--list-models` answer at once.
"""

import argparse
import json
import os
import sys
import time

from umx_core.errors import UMXError

DEFAULT_MODEL = "demo-5stems"


def build_parser():
    """The `umx` argument parser (open-unmix's options and ours)."""
    parser = argparse.ArgumentParser(
        prog="umx", description="Separate music into stems with Open-Unmix (TensorFlow).",
        epilog="The default model is the small shipped demo model, trained on synthetic data only, so that "
               "the command works offline; for real music use --model umxhq (MIT) or umxl (non-commercial "
               "licence), downloaded once. umx --list-models shows them all.")
    parser.add_argument("input", nargs="*", help="audio files, folders or glob patterns (local or gs://)")
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help=f"model name, separator directory, checkpoint, or gs:// path (default: {DEFAULT_MODEL})")
    parser.add_argument("--targets", nargs="+", help="targets to separate (default: all the model's targets)")
    parser.add_argument("--outdir", help="output folder; stems go to OUTDIR/<input name>/<stem>.<ext> "
                                         "(default: ./<input name>_<model>/)")
    parser.add_argument("--ext", default="wav", help="output format: wav (float), flac (24 bit), mp3 or ogg "
                                                     "(default: wav; a leading dot is accepted)")
    parser.add_argument("--start", type=float, default=0.0, help="excerpt start in seconds (default: 0)")
    parser.add_argument("--duration", type=float, default=-1.0,
                        help="excerpt duration in seconds; negative: to the end of the file (default: -1)")
    parser.add_argument("--niter", type=int, default=1, help="EM (Wiener) iterations; 0 disables (default: 1)")
    parser.add_argument("--wiener-win-len", type=int, default=300,
                        help="frames per independent EM window (default: 300)")
    parser.add_argument("--residual", nargs="?", const="residual", default=None, metavar="NAME",
                        help="add a stem for the mixture minus the targets (named NAME, default 'residual')")
    parser.add_argument("--softmask", action="store_true", help="ratio-mask initial estimates for EM")
    parser.add_argument("--aggregate", help='JSON {"stem": ["sources", ...]}, e.g. '
                                            '\'{"vocals": ["vocals"], "accompaniment": ["drums", "bass", "other"]}\'')
    parser.add_argument("--audio-backend", default="soundfile", choices=("soundfile", "ffmpeg"),
                        help="decoder: soundfile (wav, flac, mp3, ogg, ...) or the ffmpeg program "
                             "(also m4a/AAC and the mixture of .stem.mp4 files) (default: soundfile)")
    parser.add_argument("--batch-frames", type=int, default=1200,
                        help="STFT frames per network call: memory against speed (default: 1200, about "
                             "1.5 GB peak for a umxhq-size model whatever the file length)")
    parser.add_argument("--filterbank", default="torch", choices=("torch", "tf"),
                        help="STFT implementation; both are the TF STFT equal to torch.stft (open-unmix option)")
    parser.add_argument("--no-cuda", action="store_true", help="run on the CPU even when a GPU is present")
    parser.add_argument("--list-models", action="store_true", help="list the model names and exit")
    parser.add_argument("--verbose", action="store_true", help="more messages (devices, model settings)")
    return parser


def parse_aggregate(text):
    """The `--aggregate` JSON (`{"stem": ["source", ...]}`) as a dict; UMXError saying what is wrong."""
    try:
        aggregate = json.loads(text)
        if not isinstance(aggregate, dict) or not all(isinstance(v, list) for v in aggregate.values()):
            raise ValueError("expected an object of lists")
    except ValueError as exc:
        raise UMXError(f"--aggregate is not valid JSON of the form {{\"stem\": [\"source\", ...]}} ({exc})") from exc
    return aggregate


def list_models(out=sys.stdout):
    """Print the model names with targets, sample rate, licence and description."""
    from umx_core import registry

    for name, targets, rate, licence, description in registry.describe():
        print(f"{name:<12} {', '.join(targets)} @ {rate} Hz | licence: {licence}\n{'':<12} {description}", file=out)


def expand_inputs(patterns):
    """Files named by paths, folders (every file below) and glob patterns, in order, without repeats."""
    from umx_core import storage

    out = []
    for pattern in patterns:
        out.extend(m for m in storage.glob(pattern) if m not in out)
    return out


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
    aggregate = None
    if args.aggregate is not None:
        try:
            aggregate = parse_aggregate(args.aggregate)
        except UMXError as exc:
            print(f"umx: error: {exc}", file=sys.stderr)
            return 2
    ext = args.ext.lstrip(".")
    if args.no_cuda:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    from umx_core import storage
    from umx_core.pretrained import load_separator
    from umx_core.stream import FORMATS, output_name, separate_file

    if ext not in FORMATS:
        print(f"umx: error: --ext must be one of {', '.join(FORMATS)}, got {args.ext!r}", file=sys.stderr)
        return 2
    try:
        separator = load_separator(args.model, targets=args.targets, niter=args.niter,
                                   residual=args.residual is not None, softmask=args.softmask,
                                   wiener_win_len=args.wiener_win_len, filterbank=args.filterbank,
                                   batch_frames=args.batch_frames)
        if aggregate is not None:
            unknown = sorted({s for parts in aggregate.values() for s in parts} - set(separator.sources))
            if unknown:
                raise UMXError(f"--aggregate names sources the model does not give: {unknown} "
                               f"(it gives {separator.sources})")
    except UMXError as exc:
        print(f"umx: error: --model {args.model}: {exc}" if args.model not in str(exc) else f"umx: error: {exc}",
              file=sys.stderr)
        return 2
    if args.residual not in (None, "residual"):  # open-unmix's --residual NAME
        aggregate = {**{s: [s] for s in separator.targets}, args.residual: ["residual"], **(aggregate or {})}
    if args.verbose:
        print(f"model {args.model}: targets {separator.targets}, {int(separator.sample_rate)} Hz, n_fft "
              f"{separator.n_fft}, hop {separator.n_hop}, niter {separator.niter}", file=sys.stderr)
    model_label = os.path.basename(str(args.model).rstrip("/")) or "model"
    failures = 0
    for path in expand_inputs(args.input):
        name = output_name(path)
        outdir = storage.join(args.outdir, name) if args.outdir else f"{name}_{model_label}"
        progress = Progress(name, args.verbose or sys.stderr.isatty())
        try:
            result = separate_file(path, outdir, separator, ext=ext, start=args.start, duration=args.duration,
                                   aggregate=aggregate, backend=args.audio_backend, progress=progress)
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
              f"-> {outdir}/{{{','.join(result.stems)}}}.{ext}{notes}", flush=True)
    return 2 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
