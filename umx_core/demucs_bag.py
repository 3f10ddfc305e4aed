"""Demucs bags of models read from a local folder: the bag's yaml and the checkpoints it names.

A bag (demucs's `remote/*.yaml`, and the yaml of each HuggingFace repository `demucs/hf.py` reads)
lists its models' signatures under `models:`, optionally a `weights:` row per model of one number
per source (how much each model's estimate of a source counts), and a `segment:` in seconds. Each
model's file lies beside the yaml as `<sig>.safetensors`, `<sig>.th` or `<sig>-<sha8>.th`. The
yaml is read with `yaml.safe_load` only, after its size is checked.
"""

import dataclasses
import math
import os
import re

import numpy as np
import yaml

from umx_core.demucs_files import read_checkpoint
from umx_core.errors import UMXError

SIGNATURE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")  # a file name's stem, never a path
SIGNED_SUFFIX = r"-[0-9a-f]{8}\.th"  # what demucs's save_with_checksum adds: the sha256's first 8 hex digits
MAX_BAG_YAML = 1 << 20


@dataclasses.dataclass(frozen=True, eq=False)
class DemucsBag:
    """Models whose outputs are averaged per source, as a demucs bag's yaml names them.

    Args:
        models: `DemucsCheckpoint`s in the yaml's order (a signature named twice is read once).
        weights: `(models, sources)` float32 array of each model's weight per source, or None (all 1).
        segment: seconds the bag's models are run on (demucs lowers a model's to it), or None.
        path: the yaml file.
    """

    models: list
    weights: object
    segment: object
    path: str

    @property
    def sources(self):
        """The names of the stems the bag separates (every model's)."""
        return self.models[0].sources


def _model_file(path, folder, names, sig):
    """The file of model `sig` in `folder`: `<sig>.safetensors` where there is one, else its one `.th`."""
    if f"{sig}.safetensors" in names:
        return os.path.join(folder, f"{sig}.safetensors")
    th = sorted(n for n in names if n == f"{sig}.th" or re.fullmatch(re.escape(sig) + SIGNED_SUFFIX, n))
    if len(th) != 1:
        raise UMXError(f"{path}: model {sig!r} has " + (f"several files ({', '.join(th)}): keep one" if th else
                       f"no {sig}.safetensors, {sig}.th or {sig}-<sha8>.th in {folder}"))
    return os.path.join(folder, th[0])


def _bag_yaml(path):
    """The yaml's `(signatures, weights or None, segment or None)`, each checked (a weight row's length
    once the models' sources are known)."""
    try:
        if os.path.getsize(path) > MAX_BAG_YAML:
            raise UMXError(f"{path}: {os.path.getsize(path)} bytes, too large for a bag's yaml")
        with open(path, encoding="utf-8") as f:
            bag = yaml.safe_load(f)
    except (OSError, ValueError, RecursionError, yaml.YAMLError) as exc:
        raise UMXError(f"{path}: not a readable yaml file ({type(exc).__name__}: {exc})") from None
    models = bag.get("models") if isinstance(bag, dict) else None
    if not (isinstance(models, list) and models and all(isinstance(s, str) and SIGNATURE.fullmatch(s) for s in models)):
        raise UMXError(f"{path}: not a demucs bag (its `models:` must list the models' signatures)")
    segment, weights = bag.get("segment"), bag.get("weights")
    if segment is not None and not (type(segment) in (int, float) and 0 < segment < math.inf):
        raise UMXError(f"{path}: its segment {segment!r} is not a positive number of seconds")
    if weights is not None and not (isinstance(weights, list) and len(weights) == len(models) and all(
            isinstance(row, list) and all(type(w) in (int, float) and math.isfinite(w) for w in row) for row in weights)):
        raise UMXError(f"{path}: its weights must be a row of numbers per model ({len(models)} rows)")
    return models, weights, segment


def read_bag(path):
    """A demucs bag of models: its yaml and the models it names, read from one local folder.

    Args:
        path: the yaml file, or a folder holding exactly one; each model `<sig>` is its
            `<sig>.safetensors`, else its `<sig>.th` or `<sig>-<sha8>.th` beside the yaml.
    Returns:
        `DemucsBag`.
    Raises:
        UMXError naming the file and what is wrong: a malformed yaml, a model file missing or
        unreadable (`read_checkpoint`'s errors), models that disagree on their sources, or
        weights that are not one row per model and one number per source.
    """
    path = str(path)
    if os.path.isdir(path):
        found = sorted(n for n in os.listdir(path) if n.endswith((".yaml", ".yml")))
        if len(found) != 1:
            raise UMXError(f"{path}: holds {len(found)} yaml files, not one bag (name the bag's yaml file)")
        path = os.path.join(path, found[0])
    signatures, weights, segment = _bag_yaml(path)
    folder = os.path.dirname(path) or "."
    names = set(os.listdir(folder))
    files = [_model_file(path, folder, names, sig) for sig in signatures]
    read = {file: read_checkpoint(file) for file in dict.fromkeys(files)}
    models = [read[file] for file in files]
    for model in models:
        if model.sources != models[0].sources:
            raise UMXError(f"{path}: its models disagree on their sources: {models[0].sources} in "
                           f"{models[0].path}, {model.sources} in {model.path}")
    sources = models[0].sources
    for k, row in enumerate(weights or ()):
        if len(row) != len(sources):
            raise UMXError(f"{path}: row {k} of its weights has {len(row)} numbers for the {len(sources)} sources "
                           f"{sources}")
    return DemucsBag(models, None if weights is None else np.array(weights, np.float32), segment, path)
