"""`umx` on a long file: peak memory and real-time factor, beside open-unmix in memory.

Writes a generated stereo 44.1 kHz WAV (noise under slow tones, 16 bit) of `--minutes`, a
umxhq-size model with random weights (4 targets, hidden 512, saved as a separator
directory), and runs the `umx` command on it (niter 1, streamed file to file) in a child
process; peak RSS is that process's ru_maxrss. open-unmix's Separator runs in its own child
on `--openunmix-minutes` of audio held in memory (as its `umx` command does), with the same
model size and thread count (bench/memory.py's child).

    .venv/bin/python bench/long_file.py [--minutes 60] [--openunmix-minutes 12] [--batch-frames N]
        [--family umx|htdemucs] [--precision float32|bfloat16]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from common import RATE, TARGETS, THREADS
from memory import run as run_in_memory

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_track(path, minutes, block_seconds=60):
    """A long stereo WAV written a minute at a time (the generator never holds the track)."""
    import soundfile as sf

    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", samplerate=RATE, channels=2, subtype="PCM_16") as f:
        for k in range(int(np.ceil(minutes * 60 / block_seconds))):
            n = int(min(block_seconds, minutes * 60 - k * block_seconds) * RATE)
            t = (np.arange(n) + k * block_seconds * RATE) / RATE
            tone = 0.2 * np.sin(2 * np.pi * (220 + 110 * np.sin(2 * np.pi * t / 30)) * t)
            f.write((rng.standard_normal((n, 2)) * 0.05 + tone[:, None]).astype(np.float32))


def write_model(path, family="umx"):
    """A separator directory of random weights: umxhq's size, or `htdemucs`'s shape."""
    from umx_core import BLSTMSpectralFilterLayer, Separator

    if family == "htdemucs":
        from htdemucs_speed import HTDEMUCS, SOURCES

        from umx_core.nn.htdemucs import HTDemucs

        Separator(HTDemucs(SOURCES, **HTDEMUCS)).save(path)
        return
    filters = {t: BLSTMSpectralFilterLayer(hidden_size=512, max_bin=1487, name=t) for t in TARGETS}
    Separator(filters, niter=1).save(path)


def run_umx(track, model, outdir, batch_frames=None, extra=()):
    """(peak RSS GB, wall seconds) of `umx track --model model [extra]` in a child process."""
    env = {**os.environ, "PYTHONPATH": REPO, "TF_NUM_INTRAOP_THREADS": str(THREADS),
           "TF_NUM_INTEROP_THREADS": str(THREADS), "CUDA_VISIBLE_DEVICES": ""}
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "umx_core", track, "--model", model, "--outdir", outdir,
                             "--niter", "1", *(["--batch-frames", str(batch_frames)] if batch_frames else []), *extra], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = proc.stdout.read().decode().strip()
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"umx failed (status {status}): {out}")
    return usage.ru_maxrss / 1024**2, time.perf_counter() - start, out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--openunmix-minutes", type=float, default=12.0, help="0 skips open-unmix")
    parser.add_argument("--batch-frames", type=int, help="umx --batch-frames (default: umx's own default)")
    parser.add_argument("--family", choices=("umx", "htdemucs"), default="umx",
                        help="umxhq's size, or htdemucs's shape (random weights)")
    parser.add_argument("--precision", default="float32", help="umx --precision")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="umx-long-") as tmp:
        track, model = os.path.join(tmp, "long.wav"), os.path.join(tmp, f"{args.family}-size")
        write_track(track, args.minutes)
        write_model(model, args.family)
        rss, seconds, line = run_umx(track, model, os.path.join(tmp, "out"), args.batch_frames,
                                     ["--precision", args.precision])
        stems = sorted(os.listdir(os.path.join(tmp, "out", "long")))
    size = "umxhq size, niter 1" if args.family == "umx" else "htdemucs shape, shifts 1"
    print(f"umx (streamed), {args.minutes:.0f} min stereo, {size}, {args.precision}, batch_frames {args.batch_frames or 'default'}, {THREADS} threads: "
          f"peak RSS {rss:.2f} GB, {args.minutes * 60 / seconds:.1f}x real time including start-up "
          f"({seconds:.0f} s), stems {stems}")
    print(f"  {line}")
    if args.openunmix_minutes > 0:
        rss, rtf = run_in_memory("openunmix", args.openunmix_minutes)
        if rss is None:
            print(f"openunmix (in memory), {args.openunmix_minutes:.0f} min: failed ({rtf})")
        else:
            print(f"openunmix (in memory), {args.openunmix_minutes:.0f} min: peak RSS {rss:.2f} GB, "
                  f"{rtf:.1f}x real time")


if __name__ == "__main__":
    main()
