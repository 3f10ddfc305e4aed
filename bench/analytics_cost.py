"""What the analytics and the manifest cost, and that streaming them changes nothing.

1. The catalog job (DirectRunner, `--model`, `--tracks` generated tracks of `--seconds`) with
   `--analytics true` and `--analytics false`, alternated `--rounds` times, each run into a fresh
   output: the median wall-time ratio on/off.
2. `separate_file` on one `--minutes` track with analytics and without, each in a child process:
   peak RSS and wall time; then the streamed analytics against the same numbers computed from the
   written stems read whole (the in-memory path): the largest difference.

    .venv/bin/python bench/analytics_cost.py [--model demo-5stems] [--tracks 4] [--seconds 60] [--rounds 3] [--minutes 60]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from common import THREADS
from long_file import write_track

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "PYTHONPATH": REPO, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3",
       "TF_NUM_INTRAOP_THREADS": str(THREADS), "TF_NUM_INTEROP_THREADS": str(THREADS)}
CHILD = r"""
import json, sys
from umx_core import load_separator, separate_file
track, out, model, analytics = sys.argv[1:5]
result = separate_file(track, out, load_separator(model), analytics={} if analytics == "on" else None)
json.dump({"stems": result.stems, "analytics": result.analytics}, open(out + ".json", "w"))
"""


def job_seconds(inputs, output, model, analytics):
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pipelines.separate_catalog", "--input", inputs, "--output", output,
                    "--model", model, "--codec", "flac", f"--analytics={analytics}"], env=ENV, check=True,
                   capture_output=True)
    return time.perf_counter() - start


def child(track, out, model, analytics):
    """(peak RSS GB, wall seconds, the child's result) of one `separate_file`."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", CHILD, track, out, model, analytics], env=ENV)
    _, status, usage = os.wait4(proc.pid, 0)
    if status:
        raise SystemExit(f"the child failed ({status})")
    return usage.ru_maxrss / 1024 ** 2, time.perf_counter() - start, json.load(open(out + ".json"))


def in_memory(stems, rate):
    """`{name: Meter}` of audio files, each read whole and fed in one block."""
    import soundfile as sf

    from umx_core.analytics import Meter

    meters = {}
    for name, path in stems.items():
        audio = sf.read(path, dtype="float32", always_2d=True)[0].T
        meters[name] = Meter(rate, audio.shape[0])
        meters[name].feed(audio)
    return meters


def largest_difference(a, b, path=""):
    """The largest absolute difference between two nested analytics (None = None)."""
    if isinstance(a, dict):
        return max((largest_difference(a[k], b[k], f"{path}/{k}") for k in a), default=(0.0, path))
    if isinstance(a, list):
        return max((largest_difference(x, y, path) for x, y in zip(a, b)), default=(0.0, path))
    if a is None or b is None or isinstance(a, bool):
        return (0.0 if a == b else float("inf"), path)
    return (abs(a - b), path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo-5stems")
    parser.add_argument("--tracks", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--minutes", type=float, default=60.0, help="the long track; 0 skips it")
    args = parser.parse_args()
    import soundfile as sf

    from umx_core.analytics import describe

    with tempfile.TemporaryDirectory(prefix="umx-analytics-") as tmp:
        os.makedirs(os.path.join(tmp, "in"))
        for k in range(args.tracks):
            write_track(os.path.join(tmp, "in", f"t{k}.wav"), args.seconds / 60)
        ratios, times = [], {"true": [], "false": []}
        for r in range(args.rounds):
            for analytics in ("true", "false"):
                times[analytics].append(job_seconds(os.path.join(tmp, "in", "*.wav"),
                                                    os.path.join(tmp, f"out-{analytics}-{r}"), args.model, analytics))
            ratios.append(times["true"][-1] / times["false"][-1])
        print(f"catalog job, {args.model}, {args.tracks} x {args.seconds:.0f} s, {THREADS} threads: analytics and "
              f"manifest on {statistics.median(times['true']):.1f} s, off {statistics.median(times['false']):.1f} s "
              f"(median of {args.rounds}); on/off median {statistics.median(ratios):.3f} "
              f"(min {min(ratios):.3f}, max {max(ratios):.3f})")
        if args.minutes <= 0:
            return
        track = os.path.join(tmp, "long.wav")
        write_track(track, args.minutes)
        rate = sf.info(track).samplerate
        results = {}
        for analytics in ("off", "on"):
            results[analytics] = child(track, os.path.join(tmp, f"long-{analytics}"), args.model, analytics)
            print(f"separate_file, {args.minutes:.0f} min, analytics {analytics}: peak RSS "
                  f"{results[analytics][0]:.2f} GB, {results[analytics][1]:.0f} s")
        streamed = results["on"][2]
        meters = in_memory(streamed["stems"], rate)
        mixture = in_memory({"mixture": track}, rate)["mixture"]
        whole = describe(meters, mixture)
        difference, where = largest_difference(streamed["analytics"], whole)
        print(f"streamed analytics against the stems read whole: largest difference {difference:.2e} ({where})")


if __name__ == "__main__":
    main()
