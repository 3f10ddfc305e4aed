"""Train a joint Open-Unmix model: `python -m training.train --profile 5stems --root DATA --output OUT`.

The command line of the training loop (`training.trainer.Trainer`): a configuration from a profile
and flags, the distribution strategy, and `--resume` / `--auto-resume` after a kill.
"""

import argparse
import sys

from training import config as configuration
from training.distribute import make_strategy
from training.run_folder import LATEST, checkpoint_folder
from training.trainer import Trainer
from umx_core.cli.console import quiet_tensorflow
from umx_core.errors import UMXError

__all__ = ["Trainer", "main", "parse_args"]


def parse_args(argv=None):
    """The command line of `python -m training.train` (run options and every configuration key)."""
    parser = argparse.ArgumentParser(prog="python -m training.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile",
                        help="shipped profile name (5stems, 2stems, demo-5stems, demo-2stems) or a JSON path")
    parser.add_argument("--output", required=True, help="run folder, local or gs://")
    parser.add_argument("--workdir", help="local folder for checkpoints and logs when --output is gs://, and for "
                                          "the checkpoints of workers other than the chief (default: temporary)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in OUTPUT from its checkpoints/latest, with its saved configuration; "
                             "flags given change only " + ", ".join(map(configuration.flag, configuration.RESUMABLE)))
    parser.add_argument("--auto-resume", action="store_true",
                        help="continue from OUTPUT/checkpoints/latest if it exists, else start afresh (for jobs "
                             "a scheduler restarts, such as Vertex AI custom jobs)")
    parser.add_argument("--cpu-replicas", type=int, default=0,
                        help="mirror over N logical CPU devices (multi-replica runs without GPUs)")
    parser.add_argument("--max-steps", type=int, help="stop after this many optimizer steps in total")
    parser.add_argument("--verbose", action="store_true", help="also show TensorFlow's native log lines")
    configuration.add_arguments(parser)
    return parser.parse_args(argv)


def main(argv=None):
    """Command line of `python -m training.train`; returns the exit code."""
    args = parse_args(argv)
    quiet_tensorflow(args.verbose)  # first: TensorFlow's start-up lines are not ours to print
    try:
        from training import checkpoint

        latest = checkpoint_folder(args.output, LATEST)
        resume = args.resume or (args.auto_resume and checkpoint.exists(latest))
        # a resumed run is the saved one: only what the user gave may change it, not the defaults
        config = configuration.given(args) if resume else configuration.from_args(args)
        strategy = make_strategy(args.cpu_replicas)
        trainer = Trainer(config, args.output, args.workdir, resume, strategy, args.max_steps)
        trainer.run()
    except UMXError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
