"""The Separator's own on-disk formats: a `.keras` folder and a SavedModel, local or gs://.

`save` writes `separator.json` (every setting, the code version, optional metadata such as the
training configuration) beside `model.keras`; `export` writes a TensorFlow SavedModel whose
`assets.extra/separator.json` also holds the UMX config. `umx_core.pretrained.load_separator`
reads both back.
"""

import json
import os
import tempfile

from umx_core import storage

CONFIG_NAME = "separator.json"  # beside a saved model: the Separator's settings and code version
MODEL_NAME = "model.keras"
# beside saved_model.pb: the separator settings and the UMX config (TF leaves assets.extra alone)
SAVED_MODEL_CONFIG = os.path.join("assets.extra", CONFIG_NAME)


def save(separator, path, metadata=None):
    """Write `separator.json` (settings, code version) and `model.keras` to a directory, local or gs://.

    Args:
        separator: a `umx_core.Separator`.
        metadata: optional JSON-serialisable dict stored in `separator.json` (e.g. the
            training configuration under "training").
    Returns:
        `path`.
    """
    with tempfile.TemporaryDirectory(prefix="umx-save-") as tmp:
        separator.model.save(os.path.join(tmp, MODEL_NAME))
        with open(os.path.join(tmp, CONFIG_NAME), "w") as f:
            json.dump({**(metadata or {}), **separator.config()}, f, indent=2)
        storage.upload_dir(tmp, path)
    return path


def export(separator, path, metadata=None):
    """Write the end-to-end UMX as a TensorFlow SavedModel, local or gs://.

    The `serve` signature takes float32 `(batch, channels, samples)` of any batch and
    length and returns `(batch, sources, channels, samples)` for the whole input at once
    (TF Serving, other languages). `assets.extra/separator.json` holds the settings and
    the model's config, so `load_separator(path)` rebuilds a (segmenting) Separator from
    the SavedModel's variables. `metadata` as for `save`.
    """
    with tempfile.TemporaryDirectory(prefix="umx-export-") as tmp:
        separator.model.export(tmp, verbose=False)
        os.makedirs(os.path.join(tmp, "assets.extra"), exist_ok=True)
        with open(os.path.join(tmp, SAVED_MODEL_CONFIG), "w") as f:
            json.dump({**(metadata or {}), **separator.config(), "model": separator.model.get_config()}, f, indent=2)
        storage.upload_dir(tmp, path)
    return path
