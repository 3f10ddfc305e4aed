"""The `umx` command's latency on one short file, as a ratio to a bare `import tensorflow`.

Writes a 10 s stereo WAV, runs `umx` on it once to fill the persistent XLA cache (a scratch
cache folder, so earlier runs do not count), then alternates `umx` (default model: the shipped
demo-5stems) and `python -c "import tensorflow"` `--runs` times each and prints the median wall
times and the median of the pairwise ratios (pairs share the machine's state, so the ratio holds
when its speed drifts). The goal is a second invocation at most 1.6x the bare import.

    .venv/bin/python bench/cli_latency.py [--runs 5] [--seconds 10] [--model demo-5stems]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from common import RATE, THREADS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def wall(command, env):
    """Wall seconds of one run of `command` (its output discarded); fails loudly if it fails."""
    start = time.perf_counter()
    proc = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--model", default="demo-5stems")
    args = parser.parse_args()
    import soundfile as sf

    with tempfile.TemporaryDirectory(prefix="umx-latency-") as tmp:
        track = os.path.join(tmp, "short.wav")
        noise = np.random.default_rng(0).standard_normal((int(args.seconds * RATE), 2)) * 0.1
        sf.write(track, noise.astype(np.float32), RATE, subtype="FLOAT")
        env = {**os.environ, "PYTHONPATH": REPO, "UMX_XLA_CACHE": os.path.join(tmp, "xla"),
               "TF_NUM_INTRAOP_THREADS": str(THREADS), "TF_NUM_INTEROP_THREADS": str(THREADS),
               "CUDA_VISIBLE_DEVICES": ""}
        umx = [sys.executable, "-m", "umx_core", track, "--model", args.model, "--outdir", os.path.join(tmp, "out")]
        bare = [sys.executable, "-c", "import tensorflow"]
        first = wall(umx, env)
        ours, theirs = [], []
        for _ in range(args.runs):
            ours.append(wall(umx, env))
            theirs.append(wall(bare, env))
    ratios = [a / b for a, b in zip(ours, theirs)]
    print(f"umx on {args.seconds:.0f} s stereo ({args.model}), {THREADS} threads: first run {first:.1f} s "
          f"(fills the XLA cache); later runs median {statistics.median(ours):.2f} s; "
          f"python -c 'import tensorflow' median {statistics.median(theirs):.2f} s; "
          f"ratio median {statistics.median(ratios):.2f} (min {min(ratios):.2f}, max {max(ratios):.2f}; goal <= 1.6)")


if __name__ == "__main__":
    main()
