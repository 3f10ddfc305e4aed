"""Join independently trained single-target models into one joint separator.

    python -m training.assemble --out joint/ runs/vocals runs/drums runs/bass runs/other

Each input is a training run folder (its `separator/` is used) or a separator directory,
local or gs://, holding one or more targets. They must agree on sample rate, STFT size and
hop, and channels, and name each target once. The result is written like a training export:
`OUT/separator` (.keras) and `OUT/saved_model`, with every input's training configuration
in `separator.json` under "assembled_from".
"""

import argparse
import json
import sys

from umx_core import storage
from umx_core.cli.console import quiet_tensorflow
from umx_core.errors import UMXError
from umx_core.saved import CONFIG_NAME

_MUST_AGREE = ("sample_rate", "n_fft", "n_hop", "nb_channels")


def _separator_dir(path):
    candidate = storage.join(path, "separator")
    return candidate if storage.exists(storage.join(candidate, CONFIG_NAME)) else path


def assemble(inputs, out, niter=None, residual=False):
    """Write the joint separator of `inputs` to `out`; returns the Separator."""
    from training.export import export_filters
    from umx_core.pretrained import load_separator

    if not inputs:
        raise UMXError("nothing to assemble: give one or more runs or separator directories")
    filters, origin, settings, configs = {}, {}, None, {}
    for path in inputs:
        folder = _separator_dir(path)
        separator = load_separator(folder)
        these = {key: getattr(separator, key) for key in _MUST_AGREE}
        if settings is None:
            settings, first = these, folder
        elif these != settings:
            diff = {k: (settings[k], these[k]) for k in _MUST_AGREE if settings[k] != these[k]}
            raise UMXError(f"{folder}: does not match {first} in {diff}")
        for target, layer in zip(separator.targets, separator.model.joint.filter_layers):
            if target in filters:
                raise UMXError(f"{folder}: target {target!r} is also in {origin[target]}")
            filters[target], origin[target] = layer, folder
        configs[folder] = {"path": folder, "targets": separator.targets,
                           "training": _read_config(folder).get("training")}
    metadata = {"assembled_from": list(configs.values())}
    return export_filters(filters, settings, settings["sample_rate"], out, niter, residual, metadata)


def _read_config(folder):
    return json.loads(storage.read_bytes(storage.join(folder, CONFIG_NAME)))


def main(argv=None):
    """Command line of `python -m training.assemble`; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m training.assemble", description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="+", help="training run folders or separator directories (local or gs://)")
    parser.add_argument("--out", required=True, help="output folder (local or gs://)")
    parser.add_argument("--niter", type=int, help="EM iterations stored with the separator (default: 1)")
    parser.add_argument("--residual", action="store_true", help="add a residual source")
    parser.add_argument("--verbose", action="store_true", help="also show TensorFlow's native log lines")
    args = parser.parse_args(argv)
    quiet_tensorflow(args.verbose)  # first: TensorFlow's start-up lines are not ours to print
    try:
        separator = assemble(args.inputs, args.out, args.niter, args.residual)
    except UMXError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: targets {separator.targets}, niter {separator.niter}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
