"""The catalog job on DirectRunner against the bare Separator over the same files, one run.

Generates `--tracks` stereo 44.1 kHz tracks of `--seconds` each (FLAC), then measures audio
seconds per wall second of: the bare `umx_core.separate_file` loop in this process (model
already loaded, compiled on a warm-up file first), the job with one worker
(`python -m pipelines.separate_catalog`, start-up and model loading included), and the job with
`--direct_running_mode=multi_processing --direct_num_workers=2`. The job's fixed start-up (process,
imports, model load and compilation, pipeline construction) is timed on one 10 s
track and also taken out, so the overhead that grows with the catalog shows on its own. With
`--long-minutes`, also the job's peak RSS on one track of that length (the child process's ru_maxrss).

    .venv/bin/python bench/pipeline_throughput.py [--model demo-5stems] [--tracks 4] [--seconds 180] [--long-minutes 60]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from common import THREADS, limit_threads
from long_file import write_track

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_tracks(folder, count, seconds):
    import soundfile as sf

    os.makedirs(folder)
    rng = np.random.default_rng(0)
    for k in range(count):
        t = np.arange(int(seconds * 44100)) / 44100
        tone = 0.2 * np.sin(2 * np.pi * (110 * (k + 2)) * t)[:, None]
        sf.write(os.path.join(folder, f"track{k}.flac"), tone + rng.standard_normal((t.size, 2)) * 0.05, 44100)


def job(inputs, output, model, extra=()):
    """(wall seconds, peak RSS GB) of the catalog job in a child process."""
    env = {**os.environ, "PYTHONPATH": REPO, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2"}
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.separate_catalog", "--input", inputs, "--output",
                             output, "--model", model, "--codec", "flac", *extra], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = proc.stderr.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"job failed: {err[-2000:]}")
    return time.perf_counter() - start, usage.ru_maxrss / 1024**2


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo-5stems")
    parser.add_argument("--tracks", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--long-minutes", type=float, default=0.0, help="also the peak RSS on one track this long")
    args = parser.parse_args()
    audio_seconds = args.tracks * args.seconds
    with tempfile.TemporaryDirectory(prefix="umx-pipe-bench-") as tmp:
        data = os.path.join(tmp, "catalog")
        write_tracks(data, args.tracks, args.seconds)
        pattern = os.path.join(data, "*.flac")
        short = os.path.join(tmp, "short")
        write_tracks(short, 1, 10.0)
        job(os.path.join(short, "*.flac"), os.path.join(tmp, "warm-job"), args.model)  # the OS's file caches
        startup, _ = job(os.path.join(short, "*.flac"), os.path.join(tmp, "short-out"), args.model)
        one, _ = job(pattern, os.path.join(tmp, "one"), args.model)
        two, _ = job(pattern, os.path.join(tmp, "two"), args.model,
                     ("--direct_running_mode", "multi_processing", "--direct_num_workers", "2"))
        limit_threads(("tensorflow",))
        from umx_core.pretrained import load_separator
        from umx_core.stream import separate_file

        separator = load_separator(args.model, niter=1)  # the job's own defaults
        files = sorted(os.listdir(data))
        separate_file(os.path.join(data, files[0]), os.path.join(tmp, "warm"), separator, ext="flac", duration=10)
        start = time.perf_counter()
        for name in files:
            separate_file(os.path.join(data, name), os.path.join(tmp, "bare", name), separator, ext="flac")
        bare = time.perf_counter() - start
        print(f"model {args.model}, {args.tracks} x {args.seconds:.0f} s stereo, niter 1, flac, {THREADS} threads")
        print(f"bare separate_file loop (warm):  {audio_seconds / bare:6.1f}x real time ({bare:.0f} s)")
        print(f"job, 1 worker (cold start):      {audio_seconds / one:6.1f}x real time ({one:.0f} s), "
              f"overhead {one / bare - 1:+.0%}")
        print(f"job start-up (one 10 s track):  {startup:6.1f} s; overhead beyond it {(one - startup) / bare - 1:+.0%}")
        print(f"job, 2 worker processes:         {audio_seconds / two:6.1f}x real time ({two:.0f} s), "
              f"{one / two:.2f}x the 1-worker throughput")
        if args.long_minutes:
            long_dir = os.path.join(tmp, "long")
            os.makedirs(long_dir)
            write_track(os.path.join(long_dir, "long.wav"), args.long_minutes)
            seconds, rss = job(os.path.join(long_dir, "long.wav"), os.path.join(tmp, "long-out"), args.model)
            print(f"job on one {args.long_minutes:.0f}-minute track: peak RSS {rss:.2f} GB, "
                  f"{args.long_minutes * 60 / seconds:.1f}x real time")


if __name__ == "__main__":
    main()
