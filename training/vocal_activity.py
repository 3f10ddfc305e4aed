"""How well the analytics find vocals: `python -m training.vocal_activity --model M --root DATA --split test-ood`.

For each song of a split, the model's vocals stem is measured as the catalog job measures it
(`umx_core.analytics`, with the settings given) and compared with where the song's true vocals
sound: the true vocals stem measured against the true mixture with fixed settings (`TRUTH`: within
20 dB of the mixture, above -60 LUFS, stretches of at least 1 s), whatever the settings under test.
The figures: frame-level (100 ms) F1 of the vocal segments, pooled over the songs, and the
accuracy of the `instrumental` flag (true when no vocal segment is found). A second criterion,
instrumental when the vocals stem's audible share is under a threshold, is scored with
`--share-below`; `--choose` finds its threshold on a split (the validation songs). `--without-vocals` also scores every song again as an
instrumental (its mixture without the vocals stem: the same arrangement, no vocal part), whose
truth is "instrumental" and no segments.

Prints the figures and, with `--out FILE`, writes them as JSON.
"""

import argparse
import json
import os
import sys

import numpy as np

from umx_core.analytics import BLOCK_STEPS, Meter, describe
from umx_core.errors import UMXError
from umx_core.settings import SETTINGS

STEP = 0.1  # seconds per frame of the F1
TRUTH = {"audible_db": 20.0, "floor_lufs": -60.0, "vocal_min_seconds": 1.0}  # where true vocals sound


def frames(segments, count):
    """Booleans per 100 ms frame inside the `[[start, end], ...]` segments."""
    out = np.zeros(count, bool)
    for start, end in segments or []:
        out[int(round(start / STEP)):int(round(end / STEP))] = True
    return out


def measure(stems, mixture, rate, options):
    """`describe` of `{name: (channels, samples)}` against the mixture `(channels, samples)`."""
    meters = {}
    for name, audio in {**stems, None: mixture}.items():
        meters[name] = Meter(rate, audio.shape[0])
        meters[name].feed(audio)
    return describe({k: v for k, v in meters.items() if k is not None}, meters[None], **options)


def vocal_share(estimate):
    """The estimated vocals stem's audible share of the song (the second instrumental criterion's measure)."""
    return estimate["stems"]["vocals"]["audible_share"]


def score(pairs, share_below=None):
    """Frame F1 (pooled), flag accuracy and counts from `[(truth describe, estimate describe, frames)]`;
    with `share_below`, also the accuracy of the second criterion: instrumental when the vocals
    stem's audible share is under it."""
    tp = fp = fn = 0
    right = by_share = 0
    for truth, estimate, count in pairs:
        t, e = frames(truth["vocal_segments"], count), frames(estimate["vocal_segments"], count)
        tp, fp, fn = tp + int(np.sum(t & e)), fp + int(np.sum(~t & e)), fn + int(np.sum(t & ~e))
        right += truth["instrumental"] == estimate["instrumental"]
        if share_below is not None:
            by_share += truth["instrumental"] == (vocal_share(estimate) < share_below)
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0
    out = {"frame_f1": round(f1, 4), "instrumental_accuracy": round(right / max(len(pairs), 1), 4),
           "songs": len(pairs), "instrumental_songs": sum(p[0]["instrumental"] for p in pairs)}
    if share_below is not None:
        out["instrumental_accuracy_by_share"] = round(by_share / max(len(pairs), 1), 4)
    return out


def choose_share(pairs):
    """The audible-share threshold that best tells the songs with vocals from those without: the
    midpoint between two neighbouring measured shares that maximises the mean of the two accuracies."""
    shares = sorted({vocal_share(e) for _, e, _ in pairs})
    best, best_score = None, -1.0
    for low, high in zip(shares, shares[1:]):
        threshold = (low + high) / 2
        accuracy = [np.mean([t["instrumental"] == (vocal_share(e) < threshold) for t, e, _ in pairs
                             if t["instrumental"] == kind] or [1.0]) for kind in (False, True)]
        if np.mean(accuracy) > best_score:
            best, best_score = round(threshold, 4), float(np.mean(accuracy))
    return best


def evaluate(separator, root, split, options, without_vocals=False, max_tracks=None, log=print, share_below=None,
             choose=False):
    """`{"with_vocals": score, "without_vocals": score or None}` over the split's songs (`share_below`:
    see `score`); with `choose`, also `"share_threshold"`: `choose_share` over every song scored."""
    from training.evaluate import load_track, split_tracks

    if "vocals" not in separator.targets:
        raise UMXError(f"the model has no vocals target ({separator.targets})")
    others = [t for t in separator.targets if t != "vocals"]
    scored = {"with_vocals": [], "without_vocals": []}
    for name in split_tracks(root, split, max_tracks):
        mixture, stems, rate = load_track(os.path.join(root, split, name), separator.targets,
                                          int(separator.sample_rate))
        truth_stems = dict(zip(separator.targets, stems))
        variants = [("with_vocals", mixture)]
        if without_vocals:
            variants.append(("without_vocals", mixture - truth_stems["vocals"]))
        for variant, mix in variants:
            estimates = separator.to_dict(separator(mix[None]))
            estimated = {k: v[0] for k, v in estimates.items() if k in separator.targets}
            truth = {"vocals": truth_stems["vocals"] * (variant == "with_vocals"),
                     **{k: truth_stems[k] for k in others}}
            count = mix.shape[-1] // int(STEP * rate) + BLOCK_STEPS
            pair = (measure(truth, mix, rate, TRUTH), measure(estimated, mix, rate, options), count)
            scored[variant].append(pair)
            log(f"{name} {variant}: truth {pair[0]['vocal_segments']} estimate {pair[1]['vocal_segments']}")
    out = {variant: score(pairs, share_below) if pairs else None for variant, pairs in scored.items()}
    if choose:
        out["share_threshold"] = choose_share(scored["with_vocals"] + scored["without_vocals"])
    return out


def main(argv=None):
    """Command line of `python -m training.vocal_activity`; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m training.vocal_activity", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="model name or path with a vocals target")
    parser.add_argument("--root", required=True, help="dataset root")
    parser.add_argument("--split", default="test-ood", help="subfolder of the root (default: test-ood)")
    parser.add_argument("--without-vocals", action="store_true", help="also score each song without its vocals")
    parser.add_argument("--max-tracks", type=int, help="the first N songs only")
    parser.add_argument("--out", help="write the figures as JSON to this file")
    parser.add_argument("--share-below", type=float, help="also score the second instrumental criterion: "
                        "instrumental when the vocals stem's audible share is under this")
    parser.add_argument("--choose", action="store_true", help="also give the audible-share threshold that best "
                        "tells this split's songs with vocals from those without (choose it on the validation split)")
    for name in ("audible_db", "audible_floor", "vocal_min_seconds"):
        setting = SETTINGS[name]
        parser.add_argument(setting.flag("umx"), type=float, default=setting.default, help=setting.help_text("umx"))
    args = parser.parse_args(argv)
    from umx_core.cli.console import quiet_tensorflow

    quiet_tensorflow()
    from umx_core.pretrained import load_separator

    options = {"audible_db": args.audible_db, "floor_lufs": args.audible_floor,
               "vocal_min_seconds": args.vocal_min_seconds}
    try:
        figures = evaluate(load_separator(args.model), args.root, args.split, options, args.without_vocals,
                           args.max_tracks, log=lambda line: None, share_below=args.share_below,
                           choose=args.choose)
    except UMXError as exc:
        print(f"vocal_activity: error: {exc}", file=sys.stderr)
        return 2
    figures = {"model": args.model, "split": args.split, "options": options, **figures}
    print(json.dumps(figures, indent=2))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(figures, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
