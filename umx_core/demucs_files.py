"""Demucs checkpoints read without PyTorch and without running a pickle: every byte is untrusted input.

Demucs publishes a model in two forms, each its class's name, the arguments it is built with, and
its weights:
* `<sig>-<sha8>.th`: `torch.save` of `{klass, args, kwargs, state, training_args, metrics}`, read
  through `umx_core.pth`. Its pickle may hold no more than such a file needs: the model's class, as
  a name that is never imported; `fractions.Fraction` from two integers or its text (the segment
  stays exact); numpy's numeric dtypes and scalars (the numbers in `metrics`); bytes as pickle's
  protocol 2 writes them. A name of the form `<sig>-<sha8>.th` is checked against the file's sha256.
* `<sig>.safetensors` (demucs 4.1's HuggingFace form), read by `umx_core.safe_tensors`: the class
  name and the JSON arguments are in its `__metadata__`, a fraction as `{"_type": "fraction", ...}`.
Only HTDemucs is read; diffq-quantized states are refused. A `.th`'s `training_args`, `metrics` and
any other key are read (as data, through the same allow list) but not kept. Bags: `demucs_bag`.
"""

import dataclasses
import json
import os
import re
from fractions import Fraction

import numpy as np

from umx_core import pth, safe_tensors, storage
from umx_core.errors import UMXError
from umx_core.safe_pickle import Buildable, Global, PickleRefused

HTDEMUCS = "demucs.htdemucs.HTDemucs"
SUPPORTED = (HTDEMUCS,)
# demucs's model classes: named as data, so that a model other than HTDemucs is refused by its name
MODEL_CLASSES = (("demucs.htdemucs", "HTDemucs"), ("demucs.hdemucs", "HDemucs"), ("demucs.demucs", "Demucs"))
REQUIRED = ("klass", "args", "kwargs", "state")
REFUSAL = ("not a demucs checkpoint: {} (refused: only a model's class name, its arguments, fractions, "
           "numpy numbers, tensors and storages are read)")
NUMPY_CODES = {"b1"} | {f"{kind}{size}" for kind in "iu" for size in (1, 2, 4, 8)} | {"f2", "f4", "f8"}
FRACTION_TEXT = re.compile(r"-?\d{1,40}(/\d{1,40})?")
SIGNED_NAME = re.compile(r"(?P<sig>.+)-(?P<digest>[0-9a-f]{8})\.th")
WEIGHTS = (np.float16, np.float32)  # the state's element types read (upcast to float32)


@dataclasses.dataclass(frozen=True, eq=False)
class DemucsCheckpoint:
    """One demucs model as its file describes it.

    Args:
        klass: its class's dotted name, e.g. "demucs.htdemucs.HTDemucs" (never imported).
        args: its positional arguments.
        kwargs: its keyword arguments (`segment` a `Fraction` where the file has one).
        state: `{name: float32 numpy array}`, its weights in the shapes PyTorch gives them.
        path: the file it was read from.
    """

    klass: str
    args: list
    kwargs: dict
    state: dict
    path: str

    @property
    def sources(self):
        """The names of the stems it separates, in its output order."""
        return list(self.kwargs["sources"] if "sources" in self.kwargs else self.args[0])


def _fraction(*args):
    if len(args) == 2 and all(type(a) is int for a in args) and args[1] != 0:
        return Fraction(*args)
    if len(args) == 1 and isinstance(args[0], str) and FRACTION_TEXT.fullmatch(args[0]):
        numerator, _, denominator = args[0].partition("/")
        if int(denominator or 1):
            return Fraction(int(numerator), int(denominator or 1))
    raise PickleRefused("its pickle makes a fraction of something else than two integers or its text")


class _DType(Buildable):
    """A numeric numpy dtype as it is pickled: its code from the call, its byte order from `BUILD`."""

    def __init__(self, code):
        self.code, self.dtype = code, None

    def build(self, state):
        if not (type(state) is tuple and len(state) == 8 and state[0] == 3 and state[1] in ("<", "|")
                and state[2:] == (None, None, None, -1, -1, 0)):
            raise PickleRefused("its pickle gives a numpy dtype an unknown state (only little-endian numbers are read)")
        self.dtype = np.dtype("<" + self.code)


def _dtype(*args):
    if not (len(args) == 3 and isinstance(args[0], str) and args[0] in NUMPY_CODES
            and all(isinstance(a, bool) for a in args[1:])):
        raise PickleRefused("its pickle makes a numpy dtype other than a number's")
    return _DType(args[0])


def _scalar(dtype, data=None):
    if not (isinstance(dtype, _DType) and dtype.dtype is not None and type(data) is bytes
            and len(data) == dtype.dtype.itemsize):
        raise PickleRefused("its pickle makes a numpy scalar other than a number of its dtype's size")
    return np.frombuffer(data, dtype.dtype)[0].item()


def _latin1(text, encoding):
    if not (isinstance(text, str) and encoding == "latin1" and max(text, default="\0") <= "\xff"):
        raise PickleRefused("its pickle encodes something else than bytes written as latin-1 text")
    return text.encode("latin1")


CALLS = {Global("fractions", "Fraction"): _fraction, Global("numpy", "dtype"): _dtype,
         Global("numpy.core.multiarray", "scalar"): _scalar, Global("numpy._core.multiarray", "scalar"): _scalar,
         Global("_codecs", "encode"): _latin1}


def _plain_data(value, what, path):
    """Refuses `value` unless it is numbers, text, fractions, lists, tuples and dicts keyed by text."""
    stack, seen = [value], set()
    while stack:
        item = stack.pop()
        if isinstance(item, (dict, list)) or type(item) is tuple:
            if id(item) in seen:  # shared parts are looked at once
                continue
            seen.add(id(item))
            if isinstance(item, dict) and not all(isinstance(k, str) for k in item):
                raise UMXError(f"{path}: its {what} has a key that is not text")
            stack.extend(item.values() if isinstance(item, dict) else item)
        elif not isinstance(item, (type(None), bool, int, float, str, Fraction)):
            raise UMXError(f"{path}: its {what} holds a {type(item).__name__} (only numbers, text, fractions, "
                           f"lists and dicts are read)")


def _checkpoint(path, klass, args, kwargs, state):
    """A `DemucsCheckpoint` from a file's parts, each checked; refuses models other than HTDemucs."""
    if klass not in SUPPORTED:
        raise UMXError(f"{path}: a {klass} model; only HTDemucs ({HTDEMUCS}) is supported")
    if not (isinstance(args, list) or type(args) is tuple) or not isinstance(kwargs, dict):
        raise UMXError(f"{path}: its args are not a list or its kwargs not a dict")
    _plain_data(args, "args", path)
    _plain_data(kwargs, "kwargs", path)
    sources = kwargs["sources"] if "sources" in kwargs else args[0] if args else None
    if not (isinstance(sources, (list, tuple)) and sources and all(isinstance(s, str) for s in sources)
            and len(set(sources)) == len(sources)):
        raise UMXError(f"{path}: its sources are not a list of distinct names")
    if not isinstance(state, dict):
        raise UMXError(f"{path}: its state is a {type(state).__name__}, not a dict of tensors")
    if "__quantized" in state:
        raise UMXError(f"{path}: a diffq-quantized model; only float16 and float32 weights are read")
    weights = {}
    for name, value in state.items():
        if not (isinstance(name, str) and isinstance(value, np.ndarray) and value.dtype in WEIGHTS):
            kind = value.dtype if isinstance(value, np.ndarray) else type(value).__name__
            raise UMXError(f"{path}: state entry {name!r} is a {kind}; only float16 and float32 tensors are read")
        weights[name] = value.astype(np.float32)
    return DemucsCheckpoint(klass, list(args), dict(kwargs), weights, path)


def _read_th(path):
    package = pth.read(path, allowed=MODEL_CLASSES, calls=CALLS, refusal=REFUSAL, kind="demucs checkpoint")
    missing = [key for key in REQUIRED if key not in package]
    if missing:
        raise UMXError(f"{path}: not a demucs checkpoint (it has no {', '.join(missing)})")
    klass = package["klass"]
    if not isinstance(klass, Global):
        raise UMXError(f"{path}: its klass is a {type(klass).__name__}, not a model class")
    return _checkpoint(path, f"{klass.module}.{klass.name}", package["args"], package["kwargs"], package["state"])


def _json_object(pairs):
    """A JSON object; demucs's encoding of a fraction (its `hf.py`) becomes the `Fraction`."""
    value = dict(pairs)
    if value.get("_type") == "fraction":
        numerator, denominator = value.get("numerator"), value.get("denominator")
        if set(value) != {"_type", "numerator", "denominator"} or type(numerator) is not int \
                or type(denominator) is not int or denominator == 0:
            raise ValueError(f"a malformed fraction {pairs}")
        return Fraction(numerator, denominator)
    return value


def _read_safetensors(path):
    state, metadata = safe_tensors.read(path, dtypes=("F16", "F32"))
    if not all(key in metadata for key in ("klass", "args", "kwargs")):
        raise UMXError(f"{path}: not a demucs model (its metadata has no klass, args and kwargs)")
    if "structure" in metadata:
        raise UMXError(f"{path}: a diffq-quantized model (a nested state); only float16 and float32 weights are read")
    try:
        args, kwargs = (json.loads(metadata[key], object_pairs_hook=_json_object) for key in ("args", "kwargs"))
    except (ValueError, RecursionError) as exc:
        raise UMXError(f"{path}: its args or kwargs are not readable JSON ({type(exc).__name__}: {exc})") from None
    return _checkpoint(path, metadata["klass"], args, kwargs, state)


def check_signed_name(path):
    """Refuses a file named `<sig>-<sha8>.th` whose sha256 does not start with those 8 hex digits.

    Args:
        path: a local file.
    Returns:
        True when the name carries a digest (which matched), False when it carries none.
    Raises:
        UMXError naming the file and both digests.
    """
    match = SIGNED_NAME.fullmatch(os.path.basename(path))
    if match is None:
        return False
    actual = storage.file_digest(path, "sha256").split(":", 1)[1]
    if not actual.startswith(match["digest"]):
        raise UMXError(f"{path}: has sha256 {actual}, its name says {match['digest']}...: refused "
                       f"(corrupt or tampered file)")
    return True


def read_checkpoint(path):
    """One demucs HTDemucs model from a local `.th` or `.safetensors` file, without PyTorch.

    Args:
        path: the file (gs:// files are downloaded by the caller first).
    Returns:
        `DemucsCheckpoint`; float16 weights are upcast to float32.
    Raises:
        UMXError naming the file and what is wrong: unreadable, a digest that disagrees with a
        `<sig>-<sha8>.th` name, a pickle asking for anything but what a demucs checkpoint holds,
        sizes the file does not back, a model other than HTDemucs, or quantized weights.
    """
    path = str(path)
    if path.endswith(".safetensors"):
        return _read_safetensors(path)
    if path.endswith(".th"):
        if os.path.isfile(path):
            check_signed_name(path)
        return _read_th(path)
    raise UMXError(f"{path}: not a demucs checkpoint (a .th or .safetensors file is read)")
