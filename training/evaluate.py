"""Evaluate a separator with BSS Eval v4: `python -m training.evaluate --model M --root DATA`.

The test folder has the dataset layout (`ROOT/SPLIT/<track>/<target>.<ext>`); the mixture is
`mixture.<ext>` when a track has one, else the sum of every stem file in the track folder.
SDR, SIR, SAR and ISR are computed on one-second windows as SiSEC does (museval's numbers, by
`training.bsseval`); a track's score is
the median over its windows, a target's score the median over tracks. With `--baselines`
two references are scored beside the model: the mixture itself as every target's estimate
(the floor) and the ideal ratio mask (the oracle ceiling for a masking model: each source's
power share of the mixture STFT, from the true stems).

Writes `results.json` (every track, target and metric), `summary.json` (medians per method and
target) and `sdr.png` (per-target SDR distributions) to `--out`, and prints the medians.
"""

import argparse
import json
import os
import sys
import warnings

import numpy as np

from training.scores import METRICS, fmt, format_table, plot, scored, summarize
from umx_core import audio, storage
from umx_core.cli.console import quiet_tensorflow
from umx_core.errors import UMXError
from umx_core.settings import N_FFT, N_HOP, SETTINGS

MODEL, MIXTURE, ORACLE = "model", "mixture", "irm"
def load_track(track_dir, targets, sample_rate=None):
    """The mixture `(channels, samples)` and the targets' stems `(targets, channels, samples)`.

    Raises UMXError naming the track when a target is missing, or lengths or rates disagree.
    """
    files = audio.stem_files(track_dir)
    missing = [t for t in targets if t not in files]
    if missing:
        raise UMXError(f"{track_dir}: no file for target(s) {missing} (has {sorted(files)})")
    infos = {name: audio.info(path) for name, path in files.items()}
    rates = {i.sample_rate for i in infos.values()}
    lengths = {i.samples for i in infos.values()}
    if len(rates) > 1 or len(lengths) > 1:
        raise UMXError(f"{track_dir}: stems differ in sample rate {sorted(rates)} or length {sorted(lengths)}")
    rate = rates.pop()
    if sample_rate is not None and rate != int(sample_rate):
        raise UMXError(f"{track_dir}: audio at {rate} Hz, the model takes {int(sample_rate)} Hz")
    stems = {name: audio.read(path) for name, path in files.items()}
    mixture = stems.pop("mixture", None)
    if mixture is None:
        mixture = np.sum(list(stems.values()), axis=0)
    return mixture, np.stack([stems[t] for t in targets]), rate


def ideal_ratio_mask(mixture, stems, n_fft=N_FFT, n_hop=N_HOP):
    """Oracle estimates: each stem's share of the power, as a mask on the mixture STFT.

    Args:
        mixture: `(channels, samples)`.
        stems: `(targets, channels, samples)`; what the mixture holds beyond them is one more
            source, so the targets' masks need not sum to one.
    Returns:
        `(targets, channels, samples)` estimates.
    """
    from scipy.signal import istft, stft

    rest = mixture - stems.sum(axis=0)
    sources = np.concatenate([stems, rest[None]]) if np.abs(rest).max() > 1e-4 else stems
    spec = lambda x: stft(x, nperseg=n_fft, noverlap=n_fft - n_hop, boundary="even")[2]  # noqa: E731
    power = np.abs(spec(sources)) ** 2
    masks = power / np.maximum(power.sum(axis=0, keepdims=True), 1e-20)
    _, out = istft(masks[: len(stems)] * spec(mixture)[None], nperseg=n_fft, noverlap=n_fft - n_hop,
                   boundary=True)
    out = out[..., : mixture.shape[-1]]
    return np.pad(out, [(0, 0), (0, 0), (0, mixture.shape[-1] - out.shape[-1])]).astype(np.float32)


def bss_eval(mixture, stems, estimates, rate, audible_db=None):
    """`{method: {metric: (targets,) array}}`: medians over one-second windows (BSS Eval v4, museval's
    numbers from `training.bsseval`, which scores every method's `estimates` against one
    factorization of the references).

    What the mixture holds beyond the targets is scored as one more source (estimated as
    the mixture minus the target estimates, or the mixture for the mixture baseline), so
    interference from it counts in SIR, as when SiSEC scores a vocals model against all four
    MUSDB stems. `audible_db`: a target's window where its reference is more than this many dB
    below the mixture does not count for that target (`inaudible_windows`); None: museval's rule
    alone, under which only an all-zero reference leaves a window out.
    """
    from training import bsseval

    rest = mixture - stems.sum(axis=0)
    count = len(stems)
    sets = dict(estimates)
    if np.abs(rest).max() > 1e-4:
        stems = np.concatenate([stems, rest[None]])
        for method, estimate in estimates.items():
            rest_estimate = mixture - estimate.sum(axis=0)
            if np.abs(rest_estimate).max() < 1e-8:  # the mixture baseline: every source is the mixture
                rest_estimate = mixture
            sets[method] = np.concatenate([estimate, rest_estimate[None]])
    scores = bsseval.evaluate(np.transpose(stems, (0, 2, 1)), [np.transpose(e, (0, 2, 1)) for e in sets.values()],
                              window=int(rate))  # SDR, ISR, SIR, SAR per method
    out = {}
    for method, values in zip(sets, scores):
        if audible_db is not None:
            quiet = inaudible_windows(mixture, stems, int(rate), values[0].shape[1], audible_db)
            values = [np.where(quiet, np.nan, v) for v in values]
        with warnings.catch_warnings():  # a target with no scored window: a NaN median, as museval's silence
            warnings.simplefilter("ignore", RuntimeWarning)
            out[method] = {name: np.nanmedian(v, axis=1)[:count] for name, v in zip(("SDR", "ISR", "SIR", "SAR"), values)}
    return out


def inaudible_windows(mixture, stems, window, nb_windows, audible_db):
    """`(sources, windows)` booleans: True where a stem's energy in museval's window `i` (samples
    `i * window` to `(i + 1) * window`) is more than `audible_db` dB below the mixture's.

    A part that has stopped playing but leaves a reverb tail or a few LSBs of noise is not all
    zeros, so museval scores those seconds: very low SDRs that measure the estimate against
    near-silence (docs/models.md, "Scored only where each part sounds").
    """
    def energy(x):  # (..., channels, samples) -> (..., windows)
        return np.stack([np.sum(np.square(x[..., i * window:(i + 1) * window], dtype=np.float64), axis=(-2, -1))
                         for i in range(nb_windows)], axis=-1)

    return energy(stems) < energy(mixture)[None] * 10 ** (-audible_db / 10)


def split_tracks(root, split="test", max_tracks=None):
    """The track folders of `root/split` that an evaluation scores (the first `max_tracks` if given)."""
    folder = storage.join(root, split)
    tracks = storage.list_dirs(folder)
    if not tracks:
        raise UMXError(f"{folder}: no track folders")
    return tracks[:max_tracks] if max_tracks else tracks


def evaluate(root, separator=None, targets=None, split="test", baselines=False, max_tracks=None, log=print,
             jobs=1, tracks=None, audible_db=None):
    """Scores per method, track and target: `{method: {track: {target: {metric: value}}}}`.

    `jobs` > 1 scores in that many worker processes while this one separates the next track
    (BSS Eval takes most of an evaluation); the scores are the same to rounding. `tracks`: the
    folders `split_tracks` gives, when the caller has already listed them. `audible_db`: see `bss_eval`.
    """
    if separator is None and not targets:
        raise UMXError("give a separator, or the targets to score baselines for")
    targets = list(separator.targets) if separator is not None else list(targets)
    folder = storage.join(root, split)
    tracks = tracks if tracks is not None else split_tracks(root, split, max_tracks)
    n_fft, n_hop = (separator.n_fft, separator.n_hop) if separator is not None else (N_FFT, N_HOP)
    methods = ([MODEL] if separator is not None else []) + ([MIXTURE, ORACLE] if baselines else [])
    results = {m: {} for m in methods}
    pool = scoring_pool(jobs)
    pending = []  # (track, {method: future}) in track order

    def collect(limit):
        while len(pending) > limit:
            name, future = pending.pop(0)
            for method, scores in future.get().items():
                results[method][name] = {t: {m: _number(scores[m][j]) for m in METRICS}
                                         for j, t in enumerate(targets)}
            log(f"{name}: " + "  ".join(f"{m} SDR " + " ".join(fmt(results[m][name][t]["SDR"]) for t in targets)
                                        for m in methods))

    try:
        for name in tracks:
            track_dir = storage.join(folder, name)
            mixture, stems, rate = load_track(track_dir, targets, separator.sample_rate if separator else None)
            silent = [t for t, stem in zip(targets, stems) if not np.any(stem)]
            if silent:  # BSS Eval cannot score against an all-zero reference (museval refuses it)
                log(f"{name}: skipped, {', '.join(silent)} silent throughout")
                continue
            estimates = {}
            if separator is not None:
                estimates[MODEL] = np.asarray(separator(mixture[None]))[0, : len(targets)]
            if baselines:
                estimates[MIXTURE] = np.repeat(mixture[None], len(targets), axis=0)
                estimates[ORACLE] = ideal_ratio_mask(mixture, stems, n_fft, n_hop)
            run = pool.apply_async if pool is not None else _Done
            pending.append((name, run(bss_eval, (mixture, stems, estimates, rate, audible_db))))
            collect(limit=max(0, jobs - 1))  # a few tracks in flight: memory stays bounded on long songs
        collect(limit=0)
    finally:
        if pool is not None:
            pool.terminate()
    return results


class _Done:
    """A value computed here, with an async result's `get()`: scoring in this process (`jobs=1`)."""

    def __init__(self, function, args):  # as `Pool.apply_async(function, args)`
        self.value = function(*args)

    def get(self):
        return self.value


# BSS Eval's linear algebra spreads over the cores through BLAS threads; workers that each did so
# would contend, so each worker gets one thread (docs/benchmarks.md, "BSS Eval")
BLAS_THREADS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def scoring_pool(jobs):
    """A `multiprocessing.Pool` of `jobs` processes for BSS Eval with one BLAS thread each, or None
    for `jobs <= 1`. Spawned, not forked: the parent may hold TensorFlow's threads, which a fork
    does not carry over safely."""
    if jobs <= 1:
        return None
    import multiprocessing

    saved = {name: os.environ.get(name) for name in BLAS_THREADS}
    os.environ.update({name: "1" for name in BLAS_THREADS})  # read once, as a worker starts
    try:
        return multiprocessing.get_context("spawn").Pool(jobs)  # starts every worker now
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name)
            else:
                os.environ[name] = value


def _number(value):
    """A float for JSON; None for NaN or infinity (a silent reference or estimate)."""
    return float(value) if np.isfinite(value) else None


def main(argv=None):
    """Command line of `python -m training.evaluate`; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="separator directory (Separator.save / export / a training run's "
                                         "separator/), local or gs://")
    parser.add_argument("--root", required=True, help="dataset root (local or gs://)")
    parser.add_argument("--split", default="test", help="subfolder of the root to evaluate (default: test)")
    parser.add_argument("--out", required=True, help="folder for results.json, summary.json and sdr.png")
    parser.add_argument("--baselines", action="store_true", help="also score the mixture and the ideal ratio mask")
    parser.add_argument("--targets", nargs="+", help="targets to score (baselines only, without --model)")
    parser.add_argument("--niter", type=int, help="EM iterations (default: the separator's)")
    parser.add_argument("--residual", action="store_true", help="separate with a residual source")
    for name in ("runtime", "precision"):  # the run knobs whose cost on the scores is measured here
        setting = SETTINGS[name]
        parser.add_argument(setting.flag("umx"), choices=setting.choices, default=setting.default,
                            help=setting.help_text("umx"))
    parser.add_argument("--max-tracks", type=int, help="evaluate the first N tracks only")
    parser.add_argument("--audible-db", type=float, metavar="DB",
                        help="leave out a target's one-second windows where it is more than DB dB below the "
                             "mixture (museval v4 leaves out only all-zero ones; default: museval's rule)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="processes that score with BSS Eval while the model separates (default: 1)")
    parser.add_argument("--verbose", action="store_true", help="also show TensorFlow's native log lines")
    args = parser.parse_args(argv)
    if args.model:  # the baselines alone never start TensorFlow
        quiet_tensorflow(args.verbose)  # first: TensorFlow's start-up lines are not ours to print
    try:
        separator = None
        if args.model:
            from umx_core.pretrained import load_separator

            overrides = {k: v for k, v in (("niter", args.niter), ("residual", args.residual or None)) if v is not None}
            overrides.update(runtime=args.runtime, precision=args.precision)
            separator = load_separator(args.model, **overrides)
        tracks = split_tracks(args.root, args.split, args.max_tracks)
        results = evaluate(args.root, separator, args.targets, args.split, args.baselines, jobs=args.jobs,
                           tracks=tracks, audible_db=args.audible_db)
    except UMXError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    summary = summarize(results)
    os.makedirs(args.out, exist_ok=True)
    # songs: track folders evaluated; tracks: those scored (a song with a target silent throughout is
    # skipped); scored: songs with at least one scored window, per method and target (behind each median)
    counts = scored(results)
    meta = {"model": args.model, "runtime": args.runtime, "precision": args.precision, "root": args.root,
            "split": args.split, "songs": len(tracks),
            "tracks": len(next(iter(results.values()))), "audible_db": args.audible_db}
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({**meta, "results": results}, f, indent=2)
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump({**meta, "median": summary, "scored": counts}, f, indent=2)
    plot(results, os.path.join(args.out, "sdr.png"))
    print(format_table(summary, counts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
