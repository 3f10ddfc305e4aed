"""Input pipeline against training step: excerpts per second each delivers, in one run.

Synthesizes a dataset (numpy renderer, 44.1 kHz stereo WAV), builds the real trainer for a
profile, then times (1) the training dataset alone, as the loop consumes it (random seeks,
augmentations, parallel map, batching, prefetch), and (2) training steps fed from one cached
batch, so they wait for no input. Goal: the pipeline delivers at least 3x what the steps use.

    .venv/bin/python bench/data_throughput.py [--profile demo-5stems] [--batches 12] [--tracks 12]
"""

import argparse
import tempfile
import time

from common import THREADS, add_dataset_arguments, limit_threads, profile_trainer


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="demo-5stems", help="training profile (model and excerpt size)")
    parser.add_argument("--batches", type=int, default=12, help="batches timed for each side")
    add_dataset_arguments(parser)
    args = parser.parse_args()
    limit_threads(("tensorflow",))
    import tensorflow as tf

    with tempfile.TemporaryDirectory(prefix="umx-bench-") as tmp:
        trainer = profile_trainer(args, tmp, audio_examples=0, steps_per_epoch=args.batches + 1)
        config = trainer.config
        batch = config["batch_size"]

        # (1) the input pipeline alone, as the loop builds it
        iterator = iter(trainer.epoch_batches(0, 0))
        next(iterator)  # start-up: threads, first reads
        start = time.perf_counter()
        for _ in range(args.batches):
            next(iterator)
        data_rate = args.batches * batch / (time.perf_counter() - start)

        # (2) training steps on one cached batch: compute only
        cached = trainer.strategy.experimental_distribute_dataset(
            trainer.train_set.dataset(0, size=batch).batch(batch, drop_remainder=True).take(1).cache().repeat())
        steps = iter(cached)
        trainer.train_step(steps).numpy()  # trace and compile
        start = time.perf_counter()
        for _ in range(args.batches):
            trainer.train_step(steps).numpy()
        step_rate = args.batches * batch / (time.perf_counter() - start)

    print(f"profile {args.profile}: {len(config['targets'])} targets, {config['seq_duration']} s excerpts, "
          f"batch {batch}, hidden {config['hidden_size']}, n_fft {config['n_fft']}; {THREADS} threads, "
          f"tf {tf.__version__}")
    print(f"input pipeline: {data_rate:8.1f} excerpts/s")
    print(f"training steps: {step_rate:8.1f} excerpts/s ({batch / step_rate:.2f} s per step)")
    print(f"ratio:          {data_rate / step_rate:8.1f}x (goal: at least 3x)")


if __name__ == "__main__":
    main()
