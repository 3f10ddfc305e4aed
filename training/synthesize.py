"""A deterministic synthetic multi-stem dataset in the track-folder layout, numpy only.

`python -m training.synthesize --out DIR --tracks N --targets vocals drums bass other`
writes `DIR/{train,valid}/<track>/<target>.wav`. Each target has its own kind of sound
(a vibrato voice, noise-burst drums, a low bass line, plucked harmonic tones), so the
stems are separable; the same seed gives the same files.
"""

import argparse
import os

import numpy as np
import soundfile as sf

KINDS = ("voice", "drums", "bass", "pluck")
DEFAULT_KINDS = {"vocals": "voice", "drums": "drums", "bass": "bass"}


def _notes(rng, seconds, rate, low, high, per_second):
    """A piecewise-constant pitch track in Hz."""
    n = max(1, int(seconds * per_second))
    pitches = low * (high / low) ** rng.random(n)
    return np.repeat(pitches, int(np.ceil(seconds * rate / n)))[: int(seconds * rate)]


def _render(kind, rng, seconds, rate):
    """One mono stem of the given kind, float64, peak around 0.3."""
    t = np.arange(int(seconds * rate)) / rate
    if kind == "drums":
        out = np.zeros_like(t)
        hit = int(rate * 60 / rng.uniform(90, 140) / 2)
        decay = np.exp(-np.arange(hit) / (0.03 * rate))
        for start in range(0, t.size - hit, hit):
            if rng.random() < 0.8:
                out[start : start + hit] += rng.standard_normal(hit) * decay
        return 0.3 * out / max(1e-9, np.abs(out).max())
    low, high, rate_notes = {"voice": (200, 700, 2), "bass": (40, 110, 2), "pluck": (150, 1000, 4)}[kind]
    pitch = _notes(rng, seconds, rate, low, high, rate_notes)
    if kind == "voice":
        pitch = pitch * (1 + 0.01 * np.sin(2 * np.pi * 5.5 * t))  # vibrato
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    harmonics = {"voice": 6, "bass": 3, "pluck": 8}[kind]
    out = sum(np.sin(k * phase) / k ** (1.0 if kind == "pluck" else 1.5) for k in range(1, harmonics + 1))
    if kind == "pluck":
        period = int(rate / rate_notes)
        out *= np.tile(np.exp(-np.arange(period) / (0.15 * rate)), t.size // period + 1)[: t.size]
    return 0.3 * out / max(1e-9, np.abs(out).max())


def kind_of(target, index):
    """The sound kind a target name gets: known names by meaning, others in turn."""
    return DEFAULT_KINDS.get(target, KINDS[(index + 3) % len(KINDS)])


def synthesize(out, tracks=8, targets=("vocals", "drums", "bass", "other"), duration=10.0, rate=44100,
               valid_fraction=0.25, seed=0):
    """Write a stereo dataset; returns the list of track folders written."""
    written = []
    nb_valid = max(1, int(round(tracks * valid_fraction))) if tracks > 1 else 0
    for index in range(tracks):
        split = "valid" if index >= tracks - nb_valid else "train"
        folder = os.path.join(out, split, f"track{index:04d}")
        os.makedirs(folder, exist_ok=True)
        for j, target in enumerate(targets):
            rng = np.random.default_rng([seed, index, j])
            mono = _render(kind_of(target, j), rng, duration, rate)
            pan = rng.uniform(0.3, 0.7)
            stereo = np.stack([mono * (1 - pan), mono * pan], axis=1) * 2
            sf.write(os.path.join(folder, f"{target}.wav"), stereo.astype(np.float32), rate, subtype="PCM_16")
        written.append(folder)
    return written


def main(argv=None):
    parser = argparse.ArgumentParser(description="Write a deterministic synthetic multi-stem dataset.")
    parser.add_argument("--out", required=True, help="output root (train/ and valid/ are created)")
    parser.add_argument("--tracks", type=int, default=8)
    parser.add_argument("--targets", nargs="+", default=["vocals", "drums", "bass", "other"])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per track")
    parser.add_argument("--rate", type=int, default=44100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    folders = synthesize(args.out, args.tracks, args.targets, args.duration, args.rate, seed=args.seed)
    print(f"wrote {len(folders)} tracks x {len(args.targets)} targets to {args.out}")


if __name__ == "__main__":
    main()
