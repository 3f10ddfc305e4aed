"""Separator speed and device memory without any reference package: what a GPU worker measures.

Runs inside the worker image (`docker run --gpus all IMAGE python /opt/umx/bench/device_speed.py`)
on whatever device TensorFlow picks: a umxhq-size model with random weights (4 targets, hidden 512),
N seconds of stereo, for each `--batch-frames`, niter 1; prints the real-time factor and, on a GPU,
the peak device memory. These are the figures docs/deploy.md's GPU cost model asks for.

    .venv/bin/python bench/device_speed.py [--seconds 60] [--batch-frames auto 1200 4800 9600]
"""

import argparse
import time

import numpy as np

from common import RATE, TARGETS  # noqa: F401  (also sets up the path to the project)


def umxhq_size_separator(batch_frames):
    """A `Separator` of umxhq's size with random weights (no torch needed)."""
    from umx_core import BLSTMSpectralFilterLayer, Separator

    filters = {}
    for k, target in enumerate(TARGETS):
        layer = BLSTMSpectralFilterLayer(nb_bins=2049, nb_channels=2, hidden_size=512, max_bin=1487, name=target)
        layer.build((None, None, 2049, 2))
        rng = np.random.default_rng(k)
        layer.set_weights([rng.uniform(0.5, 1.5, w.shape).astype(np.float32) if "scale" in w.path or
                           "variance" in w.path else rng.uniform(-0.05, 0.05, w.shape).astype(np.float32)
                           for w in layer.weights])
        filters[target] = layer
    return Separator(filters, niter=1, batch_frames=batch_frames)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--batch-frames", type=lambda v: None if v == "auto" else int(v), nargs="+",
                        default=[None, 1200, 4800], help="frames per call; auto: what the Separator picks for the device")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    from umx_core.cli.console import quiet_tensorflow

    quiet_tensorflow()
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)
    device = gpus[0].name if gpus else "CPU"
    audio = (np.random.default_rng(0).standard_normal((1, 2, int(args.seconds * RATE))) * 0.1).astype(np.float32)
    print(f"{args.seconds:g} s stereo, umxhq size, 4 targets, niter 1, on {device}")
    for batch_frames in args.batch_frames:
        separator = umxhq_size_separator(batch_frames)
        separator(audio[..., : RATE * 10])  # compile
        if gpus:
            tf.config.experimental.reset_memory_stats("GPU:0")
        best = float("inf")
        for _ in range(args.repeats):
            start = time.perf_counter()
            separator(audio)
            best = min(best, time.perf_counter() - start)
        memory = ""
        if gpus:
            memory = f", peak GPU memory {tf.config.experimental.get_memory_info('GPU:0')['peak'] / 2**30:.2f} GiB"
        chosen = f"{separator.batch_frames} ({'auto' if batch_frames is None else 'given'})"
        print(f"  batch_frames {chosen:>13}: {args.seconds / best:6.1f}x real time ({best:.2f} s){memory}")


if __name__ == "__main__":
    main()
