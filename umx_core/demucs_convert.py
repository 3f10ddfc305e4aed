"""Demucs checkpoints (`umx_core.demucs_files`, `umx_core.demucs_bag`) as Keras models: a `HTDemucs`
built from the arguments the file records, its weights from the file's state; a bag as a `ModelBag`."""

import os

from umx_core.errors import UMXError

CHECKPOINT_SUFFIXES = (".th", ".safetensors")
BAG_SUFFIXES = (".yaml", ".yml")


def htdemucs_from_checkpoint(checkpoint):
    """The `HTDemucs` a `DemucsCheckpoint` describes, with its weights (UMXError naming its file)."""
    from umx_core.nn.htdemucs import HTDemucs
    from umx_core.nn.htdemucs_weights import assign_htdemucs_weights

    kwargs = dict(checkpoint.kwargs)
    if len(checkpoint.args) > 1 or (checkpoint.args and "sources" in kwargs):
        raise UMXError(f"{checkpoint.path}: unexpected positional arguments {checkpoint.args!r}")
    sources = kwargs.pop("sources") if "sources" in kwargs else checkpoint.args[0]
    try:
        model = HTDemucs(list(sources), name=f"htdemucs_{os.path.basename(checkpoint.path).split('.')[0]}"
                         .replace("-", "_"), **kwargs)
        assign_htdemucs_weights(model, checkpoint.state)
    except UMXError as exc:
        raise UMXError(f"{checkpoint.path}: {exc}") from None
    return model


def _one_or_bag(models, weights, where):
    """The one model (unweighted), or a `ModelBag` of `models` with `weights` (UMXError naming `where`)."""
    from umx_core.nn.bag import ModelBag

    if len(models) == 1 and weights is None:
        return models[0]
    try:
        return ModelBag(models, weights, name="bag")
    except UMXError as exc:
        raise UMXError(f"{where}: {exc}") from None


def model_from_files(paths, weights=None):
    """A `HTDemucs` of one checkpoint file, or a `ModelBag` of several with `weights` `(models, sources)`."""
    from umx_core.demucs_files import read_checkpoint

    return _one_or_bag([htdemucs_from_checkpoint(read_checkpoint(path)) for path in paths], weights, paths[0])


def is_demucs(local):
    """Whether a local path is a demucs checkpoint file, a bag's yaml, or a folder holding one bag."""
    if os.path.isfile(local):
        return local.endswith(CHECKPOINT_SUFFIXES + BAG_SUFFIXES)
    return os.path.isdir(local) and any(name.endswith(BAG_SUFFIXES) for name in os.listdir(local))


def model_from_demucs(local):
    """A Keras model of a local demucs checkpoint (`HTDemucs`) or bag (a `ModelBag`; a bag of one
    unweighted model is that model).

    Raises:
        UMXError naming the file and the problem.
    """
    from umx_core.demucs_bag import read_bag
    from umx_core.demucs_files import read_checkpoint

    if os.path.isfile(local) and local.endswith(CHECKPOINT_SUFFIXES):
        return htdemucs_from_checkpoint(read_checkpoint(local))
    bag = read_bag(local)
    models = [htdemucs_from_checkpoint(checkpoint) for checkpoint in bag.models]
    if bag.segment is not None and any(abs(float(bag.segment) * m.config["samplerate"] - m.training_length) >= 1
                                       for m in models):
        raise UMXError(f"{bag.path}: a bag segment ({bag.segment} s) other than its models' own is not supported")
    return _one_or_bag(models, bag.weights, bag.path)
