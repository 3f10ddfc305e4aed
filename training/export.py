"""Trained spectral filters -> the end-to-end UMX, saved as `separator/` (.keras) and `saved_model/`.

Both folders load with `umx_core.load_separator`; each carries the training configuration
and the code version in its `separator.json`. A folder holding them (a training run, an
assembled model, an exported checkpoint) loads with `load_separator(folder)` too.

A training checkpoint is not a model `umx_core` reads: its layout belongs to `training.checkpoint`.
The run keeps its `separator/` at the best weights so far; any other checkpoint (`latest`, or a
copy) becomes a model folder with

    python -m training.export RUN/checkpoints/latest --out DIR
"""

import argparse
import os
import shutil
import sys
import tempfile

from umx_core import storage
from umx_core.cli.console import quiet_tensorflow
from umx_core.errors import UMXError

SAVED_MODEL = "saved_model"  # beside the run's separator/ (umx_core.pretrained.RUN_SEPARATOR)


def joint_filter(config, sample_rate, **statistics):
    """The built `JointSpectralFilter` a training configuration describes (`statistics`: input_mean,
    input_scale of a fresh model; a restored one takes them from its weights)."""
    from umx_core.nn.model import JointSpectralFilter
    from umx_core.nn.spectral_filter import bandwidth_to_max_bin

    nb_bins = config["n_fft"] // 2 + 1
    kwargs = dict(nb_bins=nb_bins, nb_channels=config["nb_channels"], hidden_size=config["hidden_size"],
                  nb_layers=config["nb_layers"], unidirectional=config["unidirectional"],
                  max_bin=bandwidth_to_max_bin(sample_rate, config["n_fft"], config["bandwidth"]), **statistics)
    model = JointSpectralFilter(config["targets"], filter_kwargs=kwargs, bridge=config.get("bridge", False))
    model.build((None, None, nb_bins, config["nb_channels"]))
    return model


def build_umx(filters, config, sample_rate):
    """A fresh UMX (outside any distribution strategy) holding copies of `{target: filter}` weights."""
    from umx_core.nn.umx import UMX

    copies = {}
    for target, layer in filters.items():
        copy = type(layer).from_config(layer.get_config())
        copy.build((None, None, copy.nb_bins, copy.nb_channels))
        copy.set_weights(layer.get_weights())
        copies[target] = copy
    return UMX(list(copies), filters=copies, n_fft=config["n_fft"], n_hop=config["n_hop"],
               nb_channels=config["nb_channels"], sample_rate=float(sample_rate), bridge=config.get("bridge", False))


def _write(folder, name, write):
    """`write(path)` as `folder/name`. On a local disk the attempt writes beside the final name (a
    temporary name of its own) and is renamed into place, so a kill never leaves a half-written model
    there (at worst, between the two renames, none: the previous one stays in `name.*.old`). On gs://
    each object appears whole, and the training run's copy uploads `separator.json` last."""
    target = storage.join(folder, name)
    if storage.is_gcs(folder):
        write(target)
        return
    os.makedirs(folder, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f"{name}.", suffix=".tmp", dir=folder)  # .tmp: the gs:// sync skips it
    old = tmp[: -len(".tmp")] + ".old"
    try:
        write(tmp)
        if os.path.exists(target):
            os.rename(target, old)
        os.rename(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def export_filters(filters, config, sample_rate, folder, niter=None, residual=False, metadata=None,
                   saved_model=True):
    """Write `folder/separator` and `folder/saved_model` (local or gs://); returns the Separator.

    Args:
        config: holds n_fft, n_hop and nb_channels (a training configuration).
        niter: EM iterations; default as open-unmix's `umx` command: one when there are two or
            more sources, none for a single-target model without residual (EM needs two).
        metadata: stored in separator.json (default: `{"training": config}`).
        saved_model: also write `saved_model/` (the slower export; a run writes it when it ends).
    """
    from umx_core.pretrained import RUN_SEPARATOR
    from umx_core.separator import Separator

    model = build_umx(filters, config, sample_rate)
    if niter is None:
        niter = 1 if len(model.targets) + bool(residual) > 1 else 0
    separator = Separator(model, niter=niter, residual=residual)
    metadata = {"training": config} if metadata is None else metadata
    _write(folder, RUN_SEPARATOR, lambda path: separator.save(path, metadata))
    if saved_model:
        _write(folder, SAVED_MODEL, lambda path: separator.export(path, metadata))
    return separator


def export_checkpoint(checkpoint_folder, out, saved_model=True):
    """Write a training checkpoint's model as `out/separator` (and `out/saved_model`); returns the Separator."""
    from training import checkpoint

    state, arrays = checkpoint.read(checkpoint_folder)
    config = state.get("config")
    if not config or "targets" not in config:
        raise UMXError(f"{checkpoint_folder}: its {checkpoint.STATE} has no training configuration")
    model = joint_filter(config, config["sample_rate"])
    checkpoint.restore_model(arrays, model, checkpoint_folder)
    metadata = {"training": config, "checkpoint": {"path": checkpoint_folder, "epoch": state.get("epoch"),
                                                   "global_step": state.get("global_step")}}
    return export_filters(model.filters, config, config["sample_rate"], out, metadata=metadata,
                          saved_model=saved_model)


def main(argv=None):
    """Command line of `python -m training.export`; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m training.export",
                                     description="Write a training checkpoint's model as a folder that "
                                                 "load_separator reads.")
    parser.add_argument("checkpoint", help="a checkpoint folder (RUN/checkpoints/latest or best), local or gs://")
    parser.add_argument("--out", required=True, help="folder for separator/ and saved_model/ (local or gs://)")
    parser.add_argument("--no-saved-model", action="store_true", help="write separator/ only")
    parser.add_argument("--verbose", action="store_true", help="also show TensorFlow's native log lines")
    args = parser.parse_args(argv)
    quiet_tensorflow(args.verbose)  # first: TensorFlow's start-up lines are not ours to print
    try:
        separator = export_checkpoint(args.checkpoint, args.out, saved_model=not args.no_saved_model)
    except UMXError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: targets {separator.targets}, niter {separator.niter}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
