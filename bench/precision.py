"""bfloat16 against float32: speed in one process, the stems' difference, and SDR on held-out songs.

Speed: a umxhq-size model (random weights, 4 targets) on `--seconds` of stereo noise, niter 1,
both precisions in the same process, best of `--repeats`. Quality: a trained model (`--model`,
default the shipped demo-5stems) scored by `training.evaluate` (museval v4) with and without
bfloat16 on a rendered split (`--root`, `--split`, default the demo data's out-of-distribution
songs), median SDR per target, and the relative difference of the stems.

    .venv/bin/python bench/precision.py [--root build/demo/data/5stems] [--split test-ood] [--max-tracks 6]
"""

import argparse
import os

import numpy as np

from common import RATE, THREADS, best_time, limit_threads, umxhq_size_models


def speed(seconds, repeats):
    from umx_core.pretrained import separator_from_openunmix

    models = {k: m.state_dict() for k, m in umxhq_size_models().items()}
    audio = (np.random.default_rng(0).standard_normal((1, 2, int(seconds * RATE))) * 0.1).astype(np.float32)
    results = {}
    for precision in ("float32", "bfloat16"):
        separator = separator_from_openunmix(models, niter=1, precision=precision)
        results[precision] = (seconds / best_time(lambda: separator(audio), repeats), separator(audio))
    difference = np.linalg.norm(results["bfloat16"][1] - results["float32"][1]) / np.linalg.norm(results["float32"][1])
    print(f"umxhq size, {seconds:.0f} s stereo, niter 1, {THREADS} threads: float32 {results['float32'][0]:.1f}x, "
          f"bfloat16 {results['bfloat16'][0]:.1f}x real time (ratio {results['bfloat16'][0] / results['float32'][0]:.2f}); "
          f"stems' relative difference {difference:.1e}")


def quality(model, root, split, max_tracks):
    from training.evaluate import MODEL, evaluate, load_track
    from umx_core import storage
    from umx_core.pretrained import load_separator

    medians, differences = {}, []
    separators = {p: load_separator(model, niter=1, precision=p) for p in ("float32", "bfloat16")}
    for precision, separator in separators.items():
        results = evaluate(root, separator, split=split, max_tracks=max_tracks, log=lambda line: None)[MODEL]
        # a score BSS Eval could not compute is stored as None
        medians[precision] = {t: float(np.nanmedian([np.nan if results[track][t]["SDR"] is None
                                                     else results[track][t]["SDR"] for track in results]))
                              for t in separator.targets}
    folder = storage.join(root, split)
    for name in storage.list_dirs(folder)[:max_tracks]:
        mixture, _, _ = load_track(storage.join(folder, name), separators["float32"].targets, None)
        a, b = (np.asarray(s(mixture[None])) for s in separators.values())
        differences.append(np.linalg.norm(a - b) / np.linalg.norm(a))
    targets = separators["float32"].targets
    print(f"{model} on {os.path.join(root, split)} ({len(differences)} songs), median SDR (dB) float32 / bfloat16:")
    for t in targets:
        print(f"  {t:<14} {medians['float32'][t]:6.2f} / {medians['bfloat16'][t]:6.2f}")
    mean = {p: np.mean([medians[p][t] for t in targets]) for p in medians}
    print(f"  {'mean':<14} {mean['float32']:6.2f} / {mean['bfloat16']:6.2f}; stems' relative difference "
          f"median {np.median(differences):.1e}, max {np.max(differences):.1e}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default="demo-5stems")
    parser.add_argument("--root", default="build/demo/data/5stems", help="rendered demo data (make demo-data)")
    parser.add_argument("--split", default="test-ood")
    parser.add_argument("--max-tracks", type=int, default=6)
    parser.add_argument("--no-speed", action="store_true", help="only the quality half")
    args = parser.parse_args()
    limit_threads()
    if not args.no_speed:
        speed(args.seconds, args.repeats)
    if os.path.isdir(os.path.join(args.root, args.split)):
        quality(args.model, args.root, args.split, args.max_tracks)
    else:
        print(f"{os.path.join(args.root, args.split)}: no rendered songs (make demo-data); quality not measured")


if __name__ == "__main__":
    main()
