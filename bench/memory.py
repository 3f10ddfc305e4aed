"""Peak memory (RSS) of a long separation: umx_core against openunmix, each in its own process.

umxhq-size model, 4 targets, stereo, niter=1, random weights, generated audio. Peak RSS is
the child process's ru_maxrss (from os.wait4), so imports, the model and the input audio
count too. Each side imports only its own framework. The real-time factor includes XLA
compilation for umx_core (one compile per process).

    .venv/bin/python bench/memory.py [--minutes 10] [--openunmix-minutes 10]
"""

import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))

CHILD = r"""
import sys, time
sys.path.insert(0, {here!r})
from common import RATE, TARGETS, limit_threads, umxhq_size_models
limit_threads(("torch",) if {which!r} == "openunmix" else ("tensorflow",))
import numpy as np
seconds = {minutes} * 60
audio = np.random.default_rng(0).standard_normal((1, 2, int(seconds * RATE)), dtype=np.float32) * 0.1
if {which!r} == "openunmix":
    import torch
    from openunmix.model import Separator
    separator = Separator(umxhq_size_models(), niter=1).eval()
    start = time.perf_counter()
    with torch.no_grad():
        out = separator(torch.from_numpy(audio)).numpy()
else:
    # the model built natively (umxhq size, random weights): torch is no part of our process
    from umx_core import BLSTMSpectralFilterLayer, Separator
    filters = {{t: BLSTMSpectralFilterLayer(hidden_size=512, max_bin=1487, name=t) for t in TARGETS}}
    separator = Separator(filters, niter=1)
    start = time.perf_counter()
    out = separator(audio)
elapsed = time.perf_counter() - start
assert out.shape == (1, 4, 2, audio.shape[-1]) and np.isfinite(out).all()
print(f"{{seconds / elapsed:.1f}}")
"""


def run(which, minutes):
    """(peak RSS in GB, real-time factor) of one child process."""
    code = CHILD.format(here=HERE, minutes=minutes, which=which)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = proc.stdout.read().decode().strip()
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        return None, out or f"exit status {status}"
    return usage.ru_maxrss / 1024**2, float(out.splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--openunmix-minutes", type=float, default=10.0)
    args = parser.parse_args()
    print("stereo, 4 targets, umxhq size, niter=1; peak RSS of the whole process")
    for which, minutes in (("umx_core", args.minutes), ("openunmix", args.openunmix_minutes)):
        if minutes <= 0:
            continue
        start = time.time()
        rss, rtf = run(which, minutes)
        if rss is None:
            print(f"{which:9s} {minutes:5.1f} min: failed ({rtf})")
        else:
            print(f"{which:9s} {minutes:5.1f} min: peak RSS {rss:5.2f} GB, {rtf:.1f}x real time "
                  f"({time.time() - start:.0f} s with start-up)")


if __name__ == "__main__":
    main()
