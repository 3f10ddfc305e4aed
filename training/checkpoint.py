"""Training checkpoints: model and optimizer variables plus the loop's state, never half-written.

A checkpoint is a folder with `weights.npz` (model weights, then optimizer variables, by
position) and `state.json` (epoch, step, schedules, the resolved configuration and the
sha256 of `weights.npz`). The folder is written beside its final name and renamed into place;
`state.json` is the last file copied to a gs:// output, and a checkpoint whose weights do not
match the recorded digest is refused, so a copy interrupted half-way is never resumed from.
"""

import hashlib
import json
import os
import shutil

import numpy as np

from umx_core import storage
from umx_core.errors import UMXError

WEIGHTS, STATE = "weights.npz", "state.json"


def _digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def save(folder, model, optimizer, state):
    """Write a checkpoint folder atomically (on the local disk)."""
    tmp, old = folder + ".tmp", folder + ".old"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    arrays = {f"model_{i:04d}": np.asarray(w) for i, w in enumerate(model.get_weights())}
    arrays.update({f"optimizer_{i:04d}": np.asarray(v.numpy()) for i, v in enumerate(optimizer.variables)})
    np.savez(os.path.join(tmp, WEIGHTS), **arrays)
    state = {**state, "weights_sha256": _digest(os.path.join(tmp, WEIGHTS))}
    with open(os.path.join(tmp, STATE), "w") as f:
        json.dump(state, f, indent=2)
    shutil.rmtree(old, ignore_errors=True)
    if os.path.exists(folder):
        os.rename(folder, old)
    os.rename(tmp, folder)
    shutil.rmtree(old, ignore_errors=True)


def _locate(folder):
    """The folder holding `folder`'s checkpoint: itself, or locally `folder.old` (a save
    interrupted between its two renames); None if neither has one."""
    if storage.exists(storage.join(folder, STATE)):
        return folder
    if not storage.is_gcs(folder) and os.path.exists(os.path.join(folder + ".old", STATE)):
        return folder + ".old"
    return None


def exists(folder):
    """True if `folder` (local or gs://) holds a checkpoint `read` would read."""
    return _locate(folder) is not None


def read(folder):
    """`(state, arrays)` of a checkpoint folder (local or gs://); UMXError if missing or corrupt."""
    found = _locate(folder)
    if found is None:
        raise UMXError(f"{folder}: no checkpoint ({STATE} missing)")
    state_path, weights_path = storage.join(found, STATE), storage.join(found, WEIGHTS)
    try:
        state = json.loads(storage.read_bytes(state_path))
    except json.JSONDecodeError as exc:
        raise UMXError(f"{state_path}: corrupt ({exc})") from exc
    data = storage.read_bytes(weights_path)
    if hashlib.sha256(data).hexdigest() != state.get("weights_sha256"):
        raise UMXError(f"{weights_path}: does not match the digest in {STATE} (incomplete copy?)")
    import io

    with np.load(io.BytesIO(data)) as npz:
        arrays = {key: npz[key] for key in npz.files}
    return state, arrays


def restore_model(arrays, model, source):
    """Assign a checkpoint's model weights (not the optimizer's) to a built model; UMXError on a shape mismatch."""
    weights = [arrays[k] for k in sorted(arrays) if k.startswith("model_")]
    expected = [tuple(w.shape) for w in model.weights]
    if [tuple(w.shape) for w in weights] != expected:
        raise UMXError(f"{source}: the checkpoint's weights do not fit this model (different configuration?)")
    model.set_weights(weights)


def restore(arrays, model, optimizer, source):
    """Assign checkpoint arrays to a model and a built optimizer; UMXError on a shape mismatch."""
    restore_model(arrays, model, source)
    slots = [arrays[k] for k in sorted(arrays) if k.startswith("optimizer_")]
    if len(slots) != len(optimizer.variables):
        raise UMXError(f"{source}: the checkpoint has {len(slots)} optimizer variables, expected "
                       f"{len(optimizer.variables)}")
    for variable, value in zip(optimizer.variables, slots):
        variable.assign(value)


class Syncer:
    """Copies a local run folder to a gs:// output: changed files only, JSON files last (a checkpoint's
    `state.json`, a model's `separator.json`: each marks the files beside it complete)."""

    def __init__(self, local, output):
        self.local, self.output = local, output
        self.enabled = storage.is_gcs(output)
        self._seen = {}

    def __call__(self):
        if not self.enabled:
            return 0
        changed = []
        for path in storage.list_files(self.local):
            if path.endswith((".tmp", ".old")) or ".tmp" + os.sep in path or ".old" + os.sep in path:
                continue
            stat = os.stat(path)
            if self._seen.get(path) != (stat.st_size, stat.st_mtime_ns):
                changed.append((path, (stat.st_size, stat.st_mtime_ns)))
        changed.sort(key=lambda item: item[0].endswith(".json"))  # the records after what they describe
        for path, key in changed:
            rel = os.path.relpath(path, self.local).replace(os.sep, "/")
            storage.upload_file(path, storage.join(self.output, rel))
            self._seen[path] = key
        return len(changed)
