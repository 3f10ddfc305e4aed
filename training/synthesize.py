"""A deterministic synthetic multi-stem dataset in the track-folder layout.

`python -m training.synthesize --out DIR --tracks N --targets vocals drums bass other`
writes `DIR/{train,valid}/<track>/<target>.wav` (and `DIR/test/` with `--test-tracks`).
Two renderers:

- `numpy` (default, no system packages; what the tests use): each target has its own kind
  of sound (a vibrato voice, noise-burst drums, a low bass line, plucked harmonic tones).
- `fluidsynth`: songs in many styles, played by General MIDI soundfonts through fluidsynth, with a
  sung vocal line and per-stem effects (`training/render/`); targets from vocals, bass, drums,
  guitar, other, accompaniment. `--ood-tracks` adds a `test-ood/` split rendered only with the
  held-out styles and soundfont.

`--from ROOT` regroups an existing dataset instead of rendering (e.g. a 5-stem one into vocals +
accompaniment). `--jobs` renders tracks in parallel processes. The same seed gives the same files.
`--extra-tracks` adds training songs after the held-out ones, so a larger training set keeps every
validation and test song as it was. A run again into the same folder keeps the tracks already
complete (each file is written under a temporary name and renamed when whole), so an interrupted
render resumes where it stopped.
"""

import argparse
import json
import multiprocessing
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


def _numpy_stems(targets, seed, index, duration, rate):
    stems = {}
    for j, target in enumerate(targets):
        rng = np.random.default_rng([seed, index, j])
        mono = _render(kind_of(target, j), rng, duration, rate)
        pan = rng.uniform(0.3, 0.7)
        stems[target] = np.stack([mono * (1 - pan), mono * pan], axis=1) * 2
    return stems


def synthesize(out, tracks=8, targets=("vocals", "drums", "bass", "other"), duration=10.0, rate=44100,
               valid_fraction=0.25, seed=0, renderer="numpy", test_tracks=0, ood_tracks=0, jobs=1,
               extra_tracks=0, more_test_tracks=0):
    """Write a stereo dataset; returns the list of track folders (written or already complete).

    Tracks `0 .. tracks-1` go to train/ and valid/ (the last `valid_fraction`), then
    `test_tracks` more to test/, held out from both, then (fluidsynth only) `ood_tracks` to
    test-ood/, rendered with the styles and soundfont that no other split uses, then
    `extra_tracks` more to train/, then `more_test_tracks` more to test/ (numbered last, so a
    test split grown this way keeps every song of every split). A track folder that already
    holds every target is kept.
    """
    if renderer == "fluidsynth":
        from training import render

        render.targets_supported(targets)
    elif renderer != "numpy":
        raise ValueError(f"renderer must be 'numpy' or 'fluidsynth', got {renderer!r}")
    elif ood_tracks:
        raise ValueError("an out-of-distribution split needs the fluidsynth renderer")
    _check_resumable(out, {"seed": seed, "duration": duration, "rate": rate, "renderer": renderer})
    nb_valid = max(1, int(round(tracks * valid_fraction))) if tracks > 1 else 0
    jobs_args = []
    held_out_end = tracks + test_tracks + ood_tracks
    for index in range(held_out_end + extra_tracks + more_test_tracks):
        split = ("test" if index >= held_out_end + extra_tracks else "train" if index >= held_out_end
                 else "test-ood" if index >= tracks + test_tracks else "test" if index >= tracks
                 else "valid" if index >= tracks - nb_valid else "train")
        jobs_args.append((os.path.join(out, split, f"track{index:04d}"), split, index, tuple(targets), seed,
                          duration, rate, renderer))
    if jobs > 1:
        with multiprocessing.get_context("spawn").Pool(jobs) as pool:
            return list(pool.imap(_write_track, jobs_args))
    return [_write_track(a) for a in jobs_args]


def _check_resumable(out, settings):
    """Record what renders `out`; refuse to add to a folder rendered with other settings."""
    path = os.path.join(out, ".synthesize.json")
    if os.path.exists(path):
        with open(path) as f:
            before = json.load(f)
        differing = {k: (before.get(k), v) for k, v in settings.items() if before.get(k) != v}
        if differing:
            raise ValueError(f"{out} was rendered with other settings (before, now: {differing}); "
                             "render into a new folder")
        return
    os.makedirs(out, exist_ok=True)
    with open(path + ".partial", "w") as f:
        json.dump(settings, f)
    os.replace(path + ".partial", path)


def _write_track(job):
    """Render and write one track folder (a module-level function, so a process pool can run it)."""
    folder, split, index, targets, seed, duration, rate, renderer = job
    if all(os.path.isfile(os.path.join(folder, f"{target}.wav")) for target in targets):
        return folder
    os.makedirs(folder, exist_ok=True)
    if renderer == "numpy":
        stems = _numpy_stems(targets, seed, index, duration, rate)
    else:
        from training import render

        stems = render.stems_for(targets, render.render_track(seed, index, duration, rate, split))
    for target, stereo in stems.items():
        _write_wav(os.path.join(folder, f"{target}.wav"), stereo.astype(np.float32), rate)
    return folder


def _write_wav(path, stereo, rate):
    """16-bit WAV at `path`, written under a temporary name and renamed once whole."""
    partial = path + ".partial"
    sf.write(partial, stereo, rate, subtype="PCM_16", format="WAV")
    os.replace(partial, path)


def regroup(source, out, targets):
    """Write `source`'s tracks again with other targets (`accompaniment`: every stem but vocals).

    Returns the list of track folders written.
    """
    from training import render

    written = []
    splits = [s for s in sorted(os.listdir(source)) if os.path.isdir(os.path.join(source, s))]  # not .done
    for split in splits:
        for track in sorted(os.listdir(os.path.join(source, split))):
            folder = os.path.join(source, split, track)
            if not os.path.isdir(folder):
                continue
            parts, rate = {}, None
            for name in sorted(os.listdir(folder)):
                if name.endswith(".wav"):
                    parts[name[:-4]], rate = sf.read(os.path.join(folder, name), dtype="float32", always_2d=True)
            target_dir = os.path.join(out, split, track)
            os.makedirs(target_dir, exist_ok=True)
            for target, stereo in render.stems_for(targets, parts).items():
                _write_wav(os.path.join(target_dir, f"{target}.wav"), stereo, rate)
            written.append(target_dir)
    return written


def main(argv=None):
    """Command line of `python -m training.synthesize`."""
    parser = argparse.ArgumentParser(description="Write a deterministic synthetic multi-stem dataset.")
    parser.add_argument("--out", required=True, help="output root (train/ and valid/ are created)")
    parser.add_argument("--tracks", type=int, default=8)
    parser.add_argument("--targets", nargs="+", default=["vocals", "drums", "bass", "other"])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per track")
    parser.add_argument("--rate", type=int, default=44100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--valid-fraction", type=float, default=0.25, help="share of --tracks written to valid/")
    parser.add_argument("--test-tracks", type=int, default=0, help="extra held-out tracks written to test/")
    parser.add_argument("--ood-tracks", type=int, default=0,
                        help="extra tracks in held-out styles and soundfont, written to test-ood/ (fluidsynth)")
    parser.add_argument("--extra-tracks", type=int, default=0,
                        help="more training tracks, rendered after the held-out ones (which stay as they were)")
    parser.add_argument("--more-test-tracks", type=int, default=0,
                        help="more test/ tracks, rendered after every other track (which stay as they were)")
    parser.add_argument("--renderer", choices=("numpy", "fluidsynth"), default="numpy",
                        help="numpy tones (no system packages) or General MIDI songs through fluidsynth")
    parser.add_argument("--jobs", type=int, default=1, help="tracks rendered in parallel processes")
    parser.add_argument("--from", dest="source", help="regroup this dataset into --targets instead of rendering")
    args = parser.parse_args(argv)
    if args.source and not os.path.isdir(args.source):
        parser.error(f"--from {args.source}: no such dataset folder")
    if args.source:
        folders = regroup(args.source, args.out, args.targets)
    else:
        folders = synthesize(args.out, args.tracks, args.targets, args.duration, args.rate, args.valid_fraction,
                             args.seed, renderer=args.renderer, test_tracks=args.test_tracks,
                             ood_tracks=args.ood_tracks, jobs=args.jobs, extra_tracks=args.extra_tracks,
                             more_test_tracks=args.more_test_tracks)
    print(f"wrote {len(folders)} tracks x {len(args.targets)} targets to {args.out}")

if __name__ == "__main__":
    main()
