"""Where separators come from: `load_separator` for directories written by `Separator.save`.

Model names (shipped demo models, published open-unmix weights) resolve here too once the
model registry lands; today a path (local or gs://) is what it takes.
"""

import json
import os

from umx_core import storage
from umx_core.errors import UMXError
from umx_core.separator import CONFIG_NAME, MODEL_NAME, Separator

# Separator settings stored in separator.json that load_separator passes back
_SETTINGS = ("niter", "softmask", "residual", "wiener_win_len", "filterbank", "segment", "context",
             "batch_frames", "jit_compile", "eps")


def load_separator(path, **overrides):
    """A `Separator` from a directory written by `Separator.save` (local or gs://).

    Args:
        path: the directory.
        **overrides: Separator settings to change (niter, residual, softmask, wiener_win_len, ...).
    Raises:
        UMXError: naming the path, when it is missing, not a saved separator, or corrupt.
    """
    import keras

    with storage.local_dir(path) as local:
        config_path = os.path.join(local, CONFIG_NAME)
        if not os.path.exists(config_path):
            raise UMXError(f"{path}: no {CONFIG_NAME}, not a directory written by Separator.save")
        with open(config_path) as f:
            try:
                config = json.load(f)
            except json.JSONDecodeError as exc:
                raise UMXError(f"{path}/{CONFIG_NAME}: corrupt JSON ({exc})") from exc
        try:
            model = keras.saving.load_model(os.path.join(local, MODEL_NAME), compile=False)
        except Exception as exc:
            raise UMXError(f"{path}/{MODEL_NAME}: cannot load the model ({exc})") from exc
    settings = {key: config[key] for key in _SETTINGS if key in config}
    settings.update(overrides)
    return Separator(model, **settings)
