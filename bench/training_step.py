"""A training profile's step against a variant of it (other hyper-parameters), interleaved in one run.

Builds the real trainer for both (same dataset, same batches) and times, round by round
(A B A B ...), steps fed by the training input pipeline as the loop runs them (`full`) and
steps on one cached batch (`compute`: the XLA forward and backward pass and the optimizer).
Prints each side's median seconds per step and the ratio A/B, so what a profile change buys
is read off one run on a noisy machine.

    .venv/bin/python bench/training_step.py --profile demo-5stems --vs hidden_size=64 n_hop=512
    .venv/bin/python bench/training_step.py --root build/demo/data/5stems   # the rendered demo songs
"""

import argparse
import json
import os
import statistics
import tempfile
import time

from common import THREADS, add_dataset_arguments, dataset_root, limit_threads


def _override(text):
    key, _, value = text.partition("=")
    return key, json.loads(value)


def _timed(step, count):
    start = time.perf_counter()
    for _ in range(count):
        step()
    return (time.perf_counter() - start) / count


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="demo-5stems", help="training profile (side A)")
    parser.add_argument("--vs", nargs="+", type=_override, default=[("hidden_size", 64), ("n_hop", 512)],
                        metavar="KEY=VALUE", help="side B: the profile with these values (JSON)")
    parser.add_argument("--steps", type=int, default=8, help="steps timed per side and round")
    parser.add_argument("--rounds", type=int, default=3, help="A B rounds")
    add_dataset_arguments(parser)
    args = parser.parse_args()
    limit_threads(("tensorflow",))
    import tensorflow as tf

    from training import config as configuration
    from training.train import Trainer

    profile = configuration.load_profile(args.profile)
    variant = dict(args.vs)
    with tempfile.TemporaryDirectory(prefix="umx-bench-") as tmp:
        root = dataset_root(args, tmp, profile["targets"])
        sides, steps = {}, args.rounds * args.steps + 4  # an epoch long enough for every fed step
        for name, overrides in (("A", {}), ("B", variant)):
            config = configuration.resolve(profile, root=root, audio_examples=0, steps_per_epoch=steps, **overrides)
            trainer = Trainer(config, os.path.join(tmp, name))
            batch = config["batch_size"]
            fed = iter(trainer.epoch_batches(0, 0))
            cached = iter(trainer.strategy.experimental_distribute_dataset(
                trainer.train_set.dataset(0, size=batch).batch(batch, drop_remainder=True).take(1).cache().repeat()))
            trainer.train_step(fed).numpy()  # trace and compile, start the input threads
            trainer.train_step(cached).numpy()
            sides[name] = {"config": config, "weights": sum(int(v.numpy().size) for v in trainer.model.weights),
                           "full": lambda t=trainer, it=fed: t.train_step(it).numpy(),
                           "compute": lambda t=trainer, it=cached: t.train_step(it).numpy()}
        times = {(name, kind): [] for name in sides for kind in ("full", "compute")}
        for _ in range(args.rounds):
            for kind in ("full", "compute"):
                for name, side in sides.items():
                    times[name, kind].append(_timed(side[kind], args.steps))

    print(f"profile {args.profile}; B: {json.dumps(variant)}; {THREADS} threads, tf {tf.__version__}, "
          f"{args.rounds} rounds of {args.steps} steps")
    for name, side in sides.items():
        c = side["config"]
        print(f"{name}: hidden {c['hidden_size']}, n_fft {c['n_fft']}, hop {c['n_hop']}, batch {c['batch_size']}, "
              f"{c['seq_duration']} s excerpts, {side['weights']} weights ({side['weights'] * 4 / 1e6:.2f} MB float32)")
    for kind in ("full", "compute"):
        a, b = (statistics.median(times[name, kind]) for name in ("A", "B"))
        print(f"{kind:8s} A {a:.3f} s/step  B {b:.3f} s/step  A/B {a / b:.2f}")


if __name__ == "__main__":
    main()
