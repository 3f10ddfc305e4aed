"""BSS Eval v4 speed: training.bsseval (every method in one pass) against museval.evaluate (one call
per method), on the same songs in one run.

A song is scored as `training.evaluate --baselines` scores it: its stems against three estimate
sets (the mixture, the ideal ratio mask, and a third standing in for a model: the stems with
another stem's leakage and noise added). Prints each side's seconds per song, the ratio, and the
largest difference of any SDR / ISR / SIR / SAR below 60 dB (above, a ratio's denominator is
rounding error). One BLAS thread, as each `training.evaluate --jobs` worker has.

    .venv/bin/python bench/bsseval_speed.py --root build/demo/data/5stems --split test --songs 3
    .venv/bin/python bench/bsseval_speed.py            # synthetic 12 s songs of five stems
"""

import argparse
import os
import sys
import time

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

TARGETS = ("vocals", "bass", "drums", "guitar", "other")


def _songs(args, rng):
    import numpy as np

    if args.root:
        from training.evaluate import load_track, split_tracks

        for name in split_tracks(args.root, args.split, args.songs):
            mixture, stems, rate = load_track(os.path.join(args.root, args.split, name), list(TARGETS))
            yield name, mixture, stems, rate
        return
    rate = 44100
    for i in range(args.songs):
        t = np.arange(12 * rate) / rate
        stems = np.stack([np.stack([np.convolve(rng.standard_normal(len(t)), rng.standard_normal(5 + j), "same")
                                    * (1 + 0.5 * np.sin(2 * np.pi * (0.1 + j) * t)) for _ in range(2)])
                          for j in range(len(TARGETS))]).astype(np.float32) * 0.05
        yield f"synthetic{i}", stems.sum(axis=0), stems, rate


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", help="a dataset root with five-stem songs (default: synthetic songs)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--songs", type=int, default=3)
    args = parser.parse_args()
    import museval
    import numpy as np

    from training import bsseval
    from training.evaluate import ideal_ratio_mask

    rng = np.random.default_rng(0)
    ours_s, theirs_s, worst, scored = [], [], 0.0, 0
    for name, mixture, stems, rate in _songs(args, rng):
        leak = stems * 0.8 + 0.2 * stems[np.roll(np.arange(len(stems)), 1)]
        model = leak + 0.01 * rng.standard_normal(stems.shape).astype(np.float32)
        sets = [np.repeat(mixture[None], len(stems), 0), ideal_ratio_mask(mixture, stems, 2048, 1024), model]
        references = np.transpose(stems, (0, 2, 1))
        estimates = [np.transpose(e, (0, 2, 1)) for e in sets]
        start = time.perf_counter()
        ours = bsseval.evaluate(references, estimates, rate)
        ours_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        theirs = [museval.evaluate(references, e, win=rate, hop=rate) for e in estimates]
        theirs_s.append(time.perf_counter() - start)
        for a_set, b_set in zip(ours, theirs):
            for a, b in zip(a_set, b_set):
                exact = np.isfinite(b) & (b < 60)
                if exact.any():
                    worst = max(worst, float(np.abs(a[exact] - b[exact]).max()))
                    scored += int(exact.sum())
        print(f"{name}: training.bsseval {ours_s[-1]:.1f} s, museval {theirs_s[-1]:.1f} s", flush=True)
    ours_t, theirs_t = np.median(ours_s), np.median(theirs_s)
    print(f"{len(ours_s)} songs of {len(TARGETS)} stems x 3 estimate sets, 1 BLAS thread: median per song "
          f"training.bsseval {ours_t:.1f} s, museval {theirs_t:.1f} s, museval/ours {theirs_t / ours_t:.1f}x; "
          f"largest difference {worst:.1e} dB over {scored} window scores")


if __name__ == "__main__":
    main()
