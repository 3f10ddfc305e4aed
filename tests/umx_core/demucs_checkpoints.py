"""Demucs checkpoints written by demucs's own code, from tiny HTDemucs models with random weights."""

import json
import os
import struct
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from demucs.htdemucs import HTDemucs
from demucs.states import get_state, save_with_checksum
from safetensors.torch import save_file

from umx_core.errors import UMXError

SOURCES = ["drums", "bass", "other", "vocals"]
SEGMENT = Fraction(39, 5)  # what `use_train_segment` models carry: the training length, not a whole second


def tiny_htdemucs(seed=0, sources=SOURCES):
    """An HTDemucs small enough to build in milliseconds (8 channels, depth 2, one transformer layer)."""
    torch.manual_seed(seed)
    return HTDemucs(sources=list(sources), channels=8, depth=2, nfft=256, segment=SEGMENT, t_layers=1, t_heads=1)


def package(model):
    """What demucs's tools/export.py saves: `states.serialize_model`'s dict (its `training_args` the plain
    container OmegaConf.to_container gives; omegaconf is not installed here) and `metrics`, whose numbers
    are numpy scalars."""
    args, kwargs = model._init_args_kwargs
    return {"klass": model.__class__, "args": args, "kwargs": kwargs, "state": get_state(model, None, half=True),
            "training_args": {"seed": 42, "dset": {"sources": list(kwargs["sources"]), "segment": 11},
                              "optim": {"lr": 3e-4, "betas": [0.9, 0.999]}, "weights": [1.0, 1.0, 1.0, 1.0]},
            "metrics": ({"loss": np.float64(0.125), "nsdr": np.float32(7.5), "epoch": np.int64(359)},
                        {"nsdr": np.float64(9.0), "sdr": {"drums": np.float64(9.5)}})}


def save_th(model, path, zipped=True):
    """`torch.save` of the exported package at `path` (a str)."""
    torch.save(package(model), path, _use_new_zipfile_serialization=zipped)
    return str(path)


def save_signed(model, folder, sig):
    """demucs's `save_with_checksum`: `<sig>-<first 8 hex of sha256>.th` in `folder`; returns its path."""
    save_with_checksum(package(model), Path(folder) / f"{sig}.th")
    return str(next(Path(folder).glob(f"{sig}-*.th")))


def encoded(value):
    """JSON of init arguments as demucs's tools/export_hf.py writes them: a Fraction as demucs/hf.py decodes it."""
    def fraction(item):
        if isinstance(item, Fraction):
            return {"_type": "fraction", "numerator": item.numerator, "denominator": item.denominator}
        return str(item)
    return json.dumps(value, default=fraction)


def save_safetensors(model, path, **metadata):
    """The HuggingFace form demucs 4.1 loads: the state's tensors, the class name and JSON arguments as
    metadata; `metadata` changes it (None: a key left out)."""
    args, kwargs = model._init_args_kwargs
    meta = {"klass": f"{type(model).__module__}.{type(model).__qualname__}", "args": encoded(args),
            "kwargs": encoded(kwargs), **metadata}
    meta = {key: value for key, value in meta.items() if value is not None}
    save_file({k: v.contiguous() for k, v in get_state(model, None, half=True).items()}, str(path), metadata=meta)
    return str(path)


def safetensors_bytes(header, data=b"", length=None):
    """A safetensors file made by hand: `header` as JSON (a dict, its text or its bytes), then `data`."""
    text = header if isinstance(header, bytes) else (header if isinstance(header, str) else json.dumps(header)).encode()
    return struct.pack("<Q", len(text) if length is None else length) + text + data


def refused_by(read, path, match):
    """The message of the UMXError `read(path)` raises: it must match `match` and name the file."""
    with pytest.raises(UMXError, match=match) as info:
        read(path)
    assert type(info.value) is UMXError and os.path.basename(str(path)) in str(info.value)
    return str(info.value)
