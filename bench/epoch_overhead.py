"""What a training epoch spends besides its steps: validation and the TensorBoard audio examples, as
the trainer runs them (compiled with XLA) against the same work uncompiled, in one run.

Builds the real trainer for a profile and times, alternating, `Trainer.validate` with its compiled
validation step against the same loss in a `tf.function` without XLA, and `summaries.write_epoch`
with the trainer's compiled separator against the end-to-end model called eagerly. Prints each
side's median seconds (after a first call that compiles) and the validation losses of both sides.

    .venv/bin/python bench/epoch_overhead.py --profile demo-5stems --root build/demo/data/5stems
"""

import argparse
import statistics
import tempfile
import time

from common import THREADS, add_dataset_arguments, limit_threads, profile_trainer


def _median_time(fn, rounds):
    fn()  # compiles
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="demo-5stems")
    parser.add_argument("--rounds", type=int, default=3)
    add_dataset_arguments(parser)
    args = parser.parse_args()
    limit_threads(("tensorflow",))
    import numpy as np
    import tensorflow as tf

    from training import summaries

    with tempfile.TemporaryDirectory(prefix="umx-bench-") as tmp:
        trainer = profile_trainer(args, tmp, steps_per_epoch=1)
        config = trainer.config
        plain = tf.function(trainer.losses, reduce_retracing=True)

        def validate_plain():
            totals = np.zeros(len(config["targets"]))
            for mixture, stems in trainer.valid_set.dataset().batch(1):
                totals += plain(mixture, stems).numpy()[0]
            return totals / len(trainer.valid_set)

        record = {"train_loss": 0.0, "valid_loss": 0.0, "lr": config["lr"], "excerpts_per_second": 0.0,
                  "train_targets": {}, "valid_targets": {}}
        sides = {
            "validation": (trainer.validate, validate_plain),
            "audio examples": (
                lambda: summaries.write_epoch(trainer.writer, 1, record, trainer.separate, trainer.valid_set, config),
                lambda: summaries.write_epoch(trainer.writer, 1, record, trainer.umx, trainer.valid_set, config)),
        }
        print(f"profile {args.profile}: {len(trainer.valid_set)} validation items, {config['audio_examples']} audio "
              f"examples of {config['audio_seconds']} s; {THREADS} threads, tf {tf.__version__}, "
              f"median of {args.rounds} after a compiling call")
        for name, (compiled, reference) in sides.items():
            a, b = (_median_time(fn, args.rounds) for fn in (compiled, reference))
            print(f"{name:15s} compiled {a:.2f} s  uncompiled {b:.2f} s  ratio {a / b:.2f}")
        ours, theirs = trainer.validate(), validate_plain()
        print(f"validation loss compiled {ours.sum():.6f}  uncompiled {theirs.sum():.6f}  "
              f"largest relative difference per target {np.max(np.abs(ours / theirs - 1)):.1e}")


if __name__ == "__main__":
    main()
