"""How `torch.save` pickles tensors, read as data: typed storages named by persistent ids, and the
calls that rebuild a tensor or a parameter over a storage, each checked before any memory is taken
(a tensor must address only inside its storage). `umx_core.pth` reads the files around them."""

import collections
import math

import numpy as np

from umx_core.safe_pickle import Global, PickleRefused

# storage classes torch pickles, and the element type each holds
STORAGES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
            "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16, "CharStorage": np.int8,
            "ByteStorage": np.uint8, "BoolStorage": np.bool_}
MAX_DIMS = 32
ORDERED_DICT = Global("collections", "OrderedDict")
REBUILD_TENSOR = Global("torch._utils", "_rebuild_tensor_v2")
REBUILD_PARAMETER = Global("torch._utils", "_rebuild_parameter")


class Storage:
    """One storage of this file: its element type and count, and its elements once read."""

    def __init__(self, key, dtype, numel):
        self.key, self.dtype, self.numel, self.array = key, dtype, numel, None

    def fill(self, raw):
        """Take the storage's elements from the file's bytes `raw`."""
        if self.dtype == np.bool_:  # any non-zero byte is True, as torch reads it
            self.array = np.frombuffer(raw, dtype=np.uint8) != 0
        else:
            self.array = np.frombuffer(raw, dtype=self.dtype).copy()


class Tensor:
    """A tensor as `torch._utils._rebuild_tensor_v2` describes it, checked against its storage."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def elements(self):
        """Elements the tensor holds."""
        return math.prod(self.size)

    def array(self):
        """The tensor as a numpy array of its storage's elements."""
        values = self.storage.array
        if values is None:
            raise PickleRefused(f"storage {self.storage.key} has no data in the file")
        itemsize = values.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(values[self.offset:], shape=self.size,
                                               strides=tuple(s * itemsize for s in self.stride), writeable=False)
        return np.array(view, copy=True)


def _ints(value, what):
    if not (isinstance(value, tuple) and len(value) <= MAX_DIMS
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)):
        raise PickleRefused(f"a tensor's {what} is not a short tuple of non-negative integers")
    return value


def _flags(requires_grad, hooks, what):
    if not isinstance(requires_grad, bool) or not isinstance(hooks, (dict, type(None))):
        raise PickleRefused(f"a {what}'s requires_grad or hooks are malformed")


def _rebuild_tensor(storage, offset, size, stride, requires_grad, hooks, metadata=None):
    if not isinstance(storage, Storage):
        raise PickleRefused("a tensor without a storage")
    _flags(requires_grad, hooks, "tensor")
    if not isinstance(metadata, (dict, type(None))):
        raise PickleRefused("a tensor's metadata is malformed")
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise PickleRefused("a tensor's offset is not a non-negative integer")
    size, stride = _ints(size, "size"), _ints(stride, "stride")
    if len(size) != len(stride):
        raise PickleRefused("a tensor's size and stride differ in length")
    if all(size):  # the last element it addresses must lie inside its storage (an empty tensor addresses none)
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= storage.numel:
            raise PickleRefused(f"a tensor addresses element {last} of a storage of {storage.numel} "
                                f"(storage {storage.key})")
    elif offset > storage.numel:
        raise PickleRefused(f"a tensor starts past the end of storage {storage.key}")
    return Tensor(storage, offset, size, stride)


def _rebuild_parameter(data, requires_grad, hooks):
    if not isinstance(data, Tensor):
        raise PickleRefused("a parameter without a tensor")
    _flags(requires_grad, hooks, "parameter")
    return data


def _ordered_dict(*args):
    if args:
        raise PickleRefused("an ordered dict built from arguments (only empty ones are read)")
    return collections.OrderedDict()


CALLS = {ORDERED_DICT: _ordered_dict, REBUILD_TENSOR: _rebuild_tensor, REBUILD_PARAMETER: _rebuild_parameter}
STORAGE_GLOBALS = {("torch", name) for name in STORAGES}


class Storages:
    """The persistent ids of one pickle: `('storage', type, key, location, numel, ...)` -> `Storage`."""

    def __init__(self, fields):
        self.by_key, self.fields = {}, fields  # the zip format's ids have 5 fields, the legacy's 6

    def __call__(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == self.fields and pid[0] == "storage" and isinstance(pid[1], Global)
                and (pid[1].module, pid[1].name) in STORAGE_GLOBALS and isinstance(pid[2], str)
                and isinstance(pid[4], int) and not isinstance(pid[4], bool) and pid[4] >= 0):
            raise PickleRefused("its pickle holds an unknown persistent id")
        if self.fields == 6 and pid[5] is not None:
            raise PickleRefused("its pickle holds a storage view (the oldest format's), which is not read")
        dtype, key, numel = np.dtype(STORAGES[pid[1].name]), pid[2], pid[4]
        known = self.by_key.setdefault(key, Storage(key, dtype, numel))
        if (known.dtype, known.numel) != (dtype, numel):
            raise PickleRefused(f"storage {key} is declared twice, differently")
        return known

    def bytes_declared(self):
        """Bytes the storages named so far declare."""
        return sum(s.numel * s.dtype.itemsize for s in self.by_key.values())
