"""Shared benchmark setup: thread limits, the reference packages, umxhq-size random models."""

import os
import sys
import time
import types

THREADS = int(os.environ.get("BENCH_THREADS", "2"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
sys.modules.setdefault("torchaudio", types.ModuleType("torchaudio"))  # openunmix imports it, never uses it here
sys.path.append(os.path.join(sys.prefix, "reference"))  # where `make venv` puts openunmix (Makefile)
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

TARGETS = ["vocals", "drums", "bass", "other"]
RATE = 44100


def limit_threads(frameworks=("tensorflow", "torch")):
    """The named frameworks on the same number of threads (before either runs anything)."""
    if "torch" in frameworks:
        import torch

        torch.set_num_threads(THREADS)
    if "tensorflow" in frameworks:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(THREADS)
        tf.config.threading.set_inter_op_parallelism_threads(THREADS)


def take_turns(sides, repeats):
    """`(outputs, best)`: each side's output of a warm-up call (compiling what it compiles), and its best
    time over `repeats` calls, the sides taking turns (`sides`: `{name: function of no argument}`)."""
    outputs = {name: run() for name, run in sides.items()}
    times = {name: [] for name in sides}
    for _ in range(repeats):
        for name, run in sides.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return outputs, {name: min(t) for name, t in times.items()}


def add_dataset_arguments(parser):
    """`--tracks` and `--root`: the training benchmarks' dataset (see `dataset_root`)."""
    parser.add_argument("--tracks", type=int, default=12, help="synthetic tracks (30 s each)")
    parser.add_argument("--root", help="an existing dataset root instead of a synthetic one (local or gs://)")


def dataset_root(args, tmp, targets):
    """`args.root`, or a dataset of `args.tracks` synthetic 30 s tracks (numpy renderer, 44.1 kHz) made in `tmp`."""
    if args.root is not None:
        return args.root
    from training.synthesize import synthesize

    root = os.path.join(tmp, "data")
    synthesize(root, tracks=args.tracks, targets=targets, duration=30.0, rate=44100, seed=0)
    return root


def profile_trainer(args, tmp, **overrides):
    """The real `Trainer` for `args.profile` on the benchmark dataset (`dataset_root`), its
    configuration changed by `overrides`, writing under `tmp`."""
    from training import config as configuration
    from training.train import Trainer

    profile = configuration.load_profile(args.profile)
    root = dataset_root(args, tmp, profile["targets"])
    return Trainer(configuration.resolve(profile, root=root, **overrides), os.path.join(tmp, "run"))


def umxhq_size_models(targets=TARGETS, nb_channels=2):
    """openunmix OpenUnmix models of umxhq's size (hidden 512, max_bin 1487) with random weights."""
    import torch
    from openunmix.model import OpenUnmix
    from openunmix.utils import bandwidth_to_max_bin

    max_bin = int(bandwidth_to_max_bin(44100.0, 4096, 16000))
    models = {}
    for i, target in enumerate(targets):
        torch.manual_seed(i)
        models[target] = OpenUnmix(nb_bins=2049, nb_channels=nb_channels, hidden_size=512, max_bin=max_bin).eval()
    return models


def best_time(fn, repeats=3):
    """Best wall time of `repeats` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def network_flop_per_second(separator):
    """FLOP the separator's network needs per second of audio (multiply-adds counted as 2), from its
    layer sizes: fc1, the LSTM input projections and recurrences, fc2 and fc3, for every target."""
    total = 0.0
    for layer in separator.model.joint.filter_layers:
        hidden, channels, max_bin, bins = layer.hidden_size, layer.nb_channels, layer.max_bin, layer.nb_bins
        directions = 1 if layer.unidirectional else 2
        cell = hidden // directions
        per_frame = 2 * channels * max_bin * hidden  # fc1
        per_frame += layer.nb_layers * directions * 2 * hidden * 4 * cell  # LSTM input projections
        per_frame += layer.nb_layers * directions * 2 * cell * 4 * cell  # LSTM recurrences
        per_frame += 2 * 2 * hidden * hidden + 2 * hidden * bins * channels  # fc2 (skip concat), fc3
        total += per_frame
    return total * separator.sample_rate / separator.n_hop


def matmul_flop_rate(size=2048, repeats=5):
    """The machine's float32 matmul rate (FLOP/s) with TensorFlow on the benchmark's threads."""
    import tensorflow as tf

    a = tf.random.normal((size, size))
    b = tf.random.normal((size, size))
    run = tf.function(lambda: tf.linalg.matmul(a, b))
    seconds = best_time(lambda: run().numpy(), repeats)
    return 2 * size ** 3 / seconds
