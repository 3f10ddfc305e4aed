"""Where separators come from: `load_separator(NAME | PATH | gs://..., **overrides)`.

Resolved in order:
1. a shipped model name (`demo-5stems`, `demo-2stems`: inside the package);
2. a published open-unmix model name (`umxhq`, `umx`, `umxl`, `umxse`): downloaded once,
   checked, converted and cached (`umx_core.registry`);
3. a path, local or gs://: a directory written by `Separator.save`, a SavedModel written by
   `Separator.export`, a folder holding such a directory as `separator/` (a training run, whose
   `separator/` has the best weights so far, or an assembled or exported model), a `.keras` file
   of a `UMX` model, or a folder of open-unmix weights (`<target>.pth`, as open-unmix's local
   model folders), or a demucs checkpoint (`.th`, `.safetensors`) or bag (its yaml, or the folder
   holding it and its models' files). Training checkpoints are `training`'s own format, not read here: pass the run
   folder, or export the checkpoint (`python -m training.export`).
"""

import contextlib
import json
import os
import tempfile

from umx_core import demucs_convert, families, storage
from umx_core.errors import UMXError
from umx_core.saved import CONFIG_NAME, MODEL_NAME, SAVED_MODEL_CONFIG
from umx_core.separator import Separator

DEFAULT_FAMILY = "umx"  # a separator.json without "family" was written before there was another
RUN_SEPARATOR = "separator"  # the model inside a run folder (training writes it with Separator.save)
MODEL_FILES = (".keras",) + demucs_convert.CHECKPOINT_SUFFIXES  # a model in one file (a gs:// one is downloaded)


def _read_json(path, local_path):
    with open(local_path) as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as exc:
            raise UMXError(f"{path}: corrupt JSON ({exc})") from exc


def _saved_settings(family, config):
    """The family's settings a saved separator's `separator.json` keeps."""
    return {key: config[key] for key in family.saved_settings if key in config}


def _load_local(path, local):
    """`(model, Separator keywords)` from a local directory or file; None if not a known layout."""
    import keras

    join = lambda name: os.path.join(local, name)  # noqa: E731
    if os.path.isdir(local) and not os.path.exists(join(MODEL_NAME)) and any(
            f.endswith(".pth") for f in os.listdir(local)):
        return _openunmix_folder(path, local)
    if demucs_convert.is_demucs(local):
        return _demucs(path, local), {}
    if os.path.isfile(local):
        if local.endswith(".keras"):
            families.all_families()  # every family's layers known to Keras before it reads the file
            try:
                model = keras.saving.load_model(local, compile=False)
            except Exception as exc:
                raise UMXError(f"{path}: cannot load the model ({exc})") from exc
            return model, families.family_of(model).settings_of(model)
        return None
    if os.path.exists(join("saved_model.pb")):
        if not os.path.exists(join(SAVED_MODEL_CONFIG)):
            raise UMXError(f"{path}: a SavedModel without {SAVED_MODEL_CONFIG}, not written by Separator.export")
        config = _read_json(f"{path}/{SAVED_MODEL_CONFIG}", join(SAVED_MODEL_CONFIG))
        family = families.get(config.get("family", DEFAULT_FAMILY))
        return family.from_saved_model(path, local, config), _saved_settings(family, config)
    if os.path.exists(join(CONFIG_NAME)):
        config = _read_json(f"{path}/{CONFIG_NAME}", join(CONFIG_NAME))
        family = families.get(config.get("family", DEFAULT_FAMILY))  # its layers known to Keras
        try:
            model = keras.saving.load_model(join(MODEL_NAME), compile=False)
        except Exception as exc:
            raise UMXError(f"{path}/{MODEL_NAME}: cannot load the model ({exc})") from exc
        return model, _saved_settings(family, config)
    if os.path.exists(join(os.path.join(RUN_SEPARATOR, CONFIG_NAME))):  # a training run or assembled model
        return _load_local(f"{path}/{RUN_SEPARATOR}", join(RUN_SEPARATOR))
    return None


def _demucs(path, local):
    """The model of a demucs checkpoint or bag at `local` (named `path` in errors)."""
    try:
        return demucs_convert.model_from_demucs(local)
    except UMXError as exc:
        raise UMXError(str(exc).replace(local, path)) from None


def _not_a_model(path):
    """The error for a path that holds no model; for a folder inside a training run (a checkpoint,
    say), it names the run folder to pass instead."""
    parent = path.rstrip("/")
    for _ in range(3):
        parent = parent.rsplit("/", 1)[0] if "/" in parent.split("://")[-1] else ""
        if not parent:
            break
        if storage.exists(storage.join(parent, RUN_SEPARATOR, CONFIG_NAME)):
            return UMXError(f"{path}: not a model; it is inside {parent}, which holds one: pass {parent} "
                            f"(its {RUN_SEPARATOR}/ has the run's best weights so far)")
    return UMXError(f"{path}: not a model: no {CONFIG_NAME}, saved_model.pb, .keras file or open-unmix .pth weights "
                    f"(a training run folder holds one in {RUN_SEPARATOR}/ once its first epoch is validated; "
                    f"a training checkpoint becomes one with `python -m training.export CHECKPOINT --out DIR`)")


def separator_from_openunmix(state_dicts, **separator_kwargs):
    """A `Separator` from open-unmix weights.

    Args:
        state_dicts: `{target: state dict or .pth path}`, one OpenUnmix model per target.
        **separator_kwargs: `Separator` arguments (niter, residual, sample_rate, n_fft, ...);
            `nb_channels` defaults to the channels the weights were trained on.
    Returns:
        Separator
    """
    from umx_core.convert import filters_from_openunmix

    filters = filters_from_openunmix(state_dicts)
    separator_kwargs.setdefault("nb_channels", next(iter(filters.values())).nb_channels)
    return Separator(filters, **separator_kwargs)


def _convert_published(paths, model, folder, metadata):
    """`registry.resolve`'s conversion: a published model's downloaded weights saved as a separator."""
    from umx_core import registry

    if isinstance(model, registry.PublishedDemucs):
        Separator(demucs_convert.model_from_files(paths, model.weights)).save(folder, metadata=metadata)
        return
    separator_from_openunmix(paths, sample_rate=model.sample_rate, n_fft=model.n_fft, n_hop=model.n_hop,
                             nb_channels=model.nb_channels, niter=1).save(folder, metadata=metadata)


def _openunmix_folder(path, local):
    """`(filters, Separator keywords)` of an open-unmix model folder (`<target>.pth`, and its
    `separator.json` with sample_rate / nfft / nhop / nb_channels as open-unmix's train.py writes;
    without it the STFT size comes from the weights and the hop is a quarter of it)."""
    from umx_core.convert import filters_from_openunmix, infer_filter_kwargs, load_state_dict

    weights = {f[:-4]: os.path.join(local, f) for f in sorted(os.listdir(local)) if f.endswith(".pth")}
    settings = {}
    if os.path.exists(os.path.join(local, CONFIG_NAME)):
        conf = _read_json(f"{path}/{CONFIG_NAME}", os.path.join(local, CONFIG_NAME))
        settings = {"sample_rate": float(conf.get("sample_rate", 44100.0)), "n_fft": int(conf["nfft"]),
                    "n_hop": int(conf["nhop"])}
    else:
        first = load_state_dict(next(iter(weights.values())))
        nb_bins = infer_filter_kwargs(first)["nb_bins"]
        settings = {"n_fft": 2 * (nb_bins - 1), "n_hop": (nb_bins - 1) // 2}
    filters = filters_from_openunmix(weights)
    return filters, {**settings, "nb_channels": next(iter(filters.values())).nb_channels, "niter": 1}


def load_separator(path, targets=None, **overrides):
    """A `Separator` from a model name or a path (see the module docstring for the order).

    Args:
        path: a model name, or a path (local or gs://).
        targets: optional subset of the model's targets to separate.
        **overrides: Separator settings to change (niter, residual, softmask, wiener_win_len, ...;
            a setting of the commands that the model's family does not take must be at its default).
    Raises:
        UMXError: naming what was tried, when nothing matches, or the model is corrupt.
    """
    from umx_core import registry

    path = str(path)
    folder = registry.resolve(path, _convert_published)
    source = folder or path
    if folder is None and not storage.is_gcs(path) and not os.path.exists(path):
        raise UMXError(f"{path!r}: not a shipped model ({', '.join(registry.shipped()) or 'none'}), "
                       f"not a published model ({', '.join(registry.PUBLISHED) + ', ' + ', '.join(registry.PUBLISHED_DEMUCS)}), "
                       "and no such file or directory")
    if storage.is_gcs(path) and storage.exists(storage.join(path, RUN_SEPARATOR, CONFIG_NAME)):
        source = storage.join(path, RUN_SEPARATOR)  # a run folder: download its model, not its checkpoints
    if storage.is_gcs(path) and path.endswith(MODEL_FILES):
        with tempfile.TemporaryDirectory(prefix="umx-model-") as tmp:
            local = os.path.join(tmp, path.rsplit("/", 1)[-1])
            with open(local, "wb") as f:
                f.write(storage.read_bytes(path))
            loaded = _load_local(path, local)
    else:
        opener = storage.local_dir if os.path.isdir(source) or storage.is_gcs(source) else contextlib.nullcontext
        with opener(source) as local:
            loaded = _load_local(path, local)
    if loaded is None:
        raise _not_a_model(path)
    model, saved = loaded
    family = families.family_of(model)
    return Separator(model, targets=targets, **family.merge(saved, overrides))
