"""Where separators come from: `load_separator` for directories written by `Separator.save`
or `Separator.export` (SavedModel).

Model names (shipped demo models, published open-unmix weights) resolve here too once the
model registry lands; today a path (local or gs://) is what it takes.
"""

import json
import os

from umx_core import storage
from umx_core.errors import UMXError
from umx_core.separator import CONFIG_NAME, MODEL_NAME, SAVED_MODEL_CONFIG, Separator

# Separator settings stored in separator.json that load_separator passes back
_SETTINGS = ("niter", "softmask", "residual", "wiener_win_len", "filterbank", "segment", "context",
             "batch_frames", "jit_compile", "eps")


def _read_json(path, local_path):
    with open(local_path) as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as exc:
            raise UMXError(f"{path}: corrupt JSON ({exc})") from exc


def _model_from_saved_model(path, local, config):
    """A UMX rebuilt from its config, with the variables of the SavedModel at `local`."""
    import tensorflow as tf

    from umx_core.umx import UMX

    try:
        loaded = tf.saved_model.load(local)
    except Exception as exc:
        raise UMXError(f"{path}: cannot load the SavedModel ({exc})") from exc
    model = UMX.from_config(config["model"])
    values = {v.name.rsplit(":", 1)[0]: v for v in loaded.variables}
    missing = [w.path for w in model.weights if w.path not in values]
    if missing or len(values) != len(model.weights):
        raise UMXError(f"{path}: the SavedModel's variables do not match its config (missing {missing[:3]})")
    for weight in model.weights:
        source = values[weight.path]
        if tuple(source.shape) != tuple(weight.shape):
            raise UMXError(f"{path}: variable {weight.path} has shape {tuple(source.shape)}, "
                           f"the config gives {tuple(weight.shape)}")
        weight.assign(source.numpy())
    return model


def load_separator(path, **overrides):
    """A `Separator` from a directory written by `Separator.save` or `Separator.export` (local or gs://).

    Args:
        path: the directory.
        **overrides: Separator settings to change (niter, residual, softmask, wiener_win_len, ...).
    Raises:
        UMXError: naming the path, when it is missing, not a saved separator, or corrupt.
    """
    import keras

    with storage.local_dir(path) as local:
        if os.path.exists(os.path.join(local, "saved_model.pb")):
            config_path = os.path.join(local, SAVED_MODEL_CONFIG)
            if not os.path.exists(config_path):
                raise UMXError(f"{path}: a SavedModel without {SAVED_MODEL_CONFIG}, not written by Separator.export")
            config = _read_json(f"{path}/{SAVED_MODEL_CONFIG}", config_path)
            model = _model_from_saved_model(path, local, config)
        else:
            config_path = os.path.join(local, CONFIG_NAME)
            if not os.path.exists(config_path):
                raise UMXError(f"{path}: no {CONFIG_NAME} or saved_model.pb, not written by Separator.save "
                               "or Separator.export")
            config = _read_json(f"{path}/{CONFIG_NAME}", config_path)
            try:
                model = keras.saving.load_model(os.path.join(local, MODEL_NAME), compile=False)
            except Exception as exc:
                raise UMXError(f"{path}/{MODEL_NAME}: cannot load the model ({exc})") from exc
    settings = {key: config[key] for key in _SETTINGS if key in config}
    settings.update(overrides)
    return Separator(model, **settings)
