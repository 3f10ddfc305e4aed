"""PyTorch `.pth` state dicts read without PyTorch: a restricted unpickler that builds numpy arrays.

Both of `torch.save`'s formats are read: the zip archive (`ARCHIVE/data.pkl` with each storage in
`ARCHIVE/data/KEY`, the default since PyTorch 1.6) and the older single pickle stream (storages
after the pickle, each as an 8-byte element count and its bytes). The pickle may ask only for
ordered dicts, tensors and typed storages; anything else (a function to call, a class to build:
what a malicious `.pth` uses to run code) is refused with an error naming the file, before it runs.
"""

import collections
import io
import pickle
import struct
import zipfile

import numpy as np

from umx_core.errors import UMXError

# storage classes torch pickles, and the element type each holds
STORAGES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
            "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16, "CharStorage": np.int8,
            "ByteStorage": np.uint8, "BoolStorage": np.bool_}
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


class _Storage:
    """A typed storage's element type, until its bytes are read."""

    def __init__(self, dtype):
        self.dtype = dtype


class _Tensor:
    """A tensor as `torch._utils._rebuild_tensor_v2` describes it; `array()` once its storage is filled."""

    def __init__(self, storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None):
        self.storage, self.offset, self.size, self.stride = storage, int(offset), tuple(size), tuple(stride)

    def array(self):
        if not self.size:
            return np.array(self.storage[self.offset], copy=True)
        itemsize = self.storage.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(self.storage[self.offset:], shape=self.size,
                                               strides=tuple(s * itemsize for s in self.stride), writeable=False)
        return np.array(view, copy=True)


def _rebuild_parameter(data, requires_grad=False, hooks=None):
    return data


ALLOWED = {("collections", "OrderedDict"): collections.OrderedDict,
           ("torch._utils", "_rebuild_tensor_v2"): _Tensor,
           ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
           **{("torch", name): _Storage(np.dtype(dtype)) for name, dtype in STORAGES.items()}}


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, label, storage):
        super().__init__(file)
        self.label, self.storage, self.keys = label, storage, []

    def find_class(self, module, name):
        if (module, name) not in ALLOWED:
            raise UMXError(f"{self.label}: not a plain state dict: its pickle asks for {module}.{name} (refused: "
                           f"only ordered dicts, tensors and storages are read)")
        return ALLOWED[module, name]

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage" and isinstance(pid[1], _Storage)):
            raise UMXError(f"{self.label}: an unknown persistent id in its pickle ({pid!r:.80})")
        self.keys.append(pid[2])
        return self.storage(pid[1].dtype, str(pid[2]), int(pid[4]))


def _zip_state(path, label):
    with zipfile.ZipFile(path) as archive:
        (pickled,) = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
        root = pickled[: -len("data.pkl")]
        cache = {}

        def storage(dtype, key, numel):
            if key not in cache:
                raw = archive.read(f"{root}data/{key}")
                cache[key] = np.frombuffer(raw, dtype=dtype, count=numel).copy()
            return cache[key]

        return _Unpickler(io.BytesIO(archive.read(pickled)), label, storage).load()


def _legacy_state(data, label):
    f = io.BytesIO(data)
    if pickle.load(f) != LEGACY_MAGIC:
        raise UMXError(f"{label}: not a PyTorch file")
    pickle.load(f), pickle.load(f)  # protocol version, system info
    storages = {}

    def storage(dtype, key, numel):  # filled once the bytes after the pickle are read
        return storages.setdefault(key, np.zeros(numel, dtype))

    state = _Unpickler(f, label, storage).load()
    for key in pickle.load(f):  # the storages' keys (plain strings), in file order
        (count,) = struct.unpack("<q", f.read(8))
        array = storages[str(key)]
        array[:count] = np.frombuffer(f.read(count * array.dtype.itemsize), dtype=array.dtype, count=count)
    return state


def _arrays(value):
    """The unpickled state with every tensor made a numpy array."""
    if isinstance(value, _Tensor):
        return value.array()
    if isinstance(value, dict):
        return collections.OrderedDict((k, _arrays(v)) for k, v in value.items())
    return value


def load(path):
    """`{name: numpy array}` of a `.pth` state dict (zip or legacy format), without PyTorch.

    Raises:
        UMXError naming the file: unreadable, not a PyTorch file, or a pickle asking for anything
        but ordered dicts, tensors and storages.
    """
    label = str(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise UMXError(f"{label}: cannot read it ({exc})") from exc
    try:
        if zipfile.is_zipfile(io.BytesIO(data)):
            state = _zip_state(io.BytesIO(data), label)
        else:
            state = _legacy_state(data, label)
    except UMXError:
        raise
    except Exception as exc:  # a damaged archive or pickle
        raise UMXError(f"{label}: not a readable PyTorch state dict ({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, dict):
        raise UMXError(f"{label}: holds a {type(state).__name__}, not a state dict")
    return _arrays(state)
