"""`.pth` files made by hand, as an attacker would: torch's two layouts with any pickle inside."""

import collections
import io
import pickle
import pickletools
import struct
import zipfile

import torch

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
SYS_INFO = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}


class Storage:
    """A storage a hand-made tensor points at: declared `numel` float32 elements, `data` written."""

    def __init__(self, key, numel, data=b""):
        self.key, self.numel, self.data = key, numel, data


class Tensor:
    """Pickles as torch's `_rebuild_tensor_v2` with whatever offset, size and stride it is given."""

    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, tuple(size), tuple(stride), False, collections.OrderedDict())

    def __reduce__(self):
        return torch._utils._rebuild_tensor_v2, self.args


class _Pickler(pickle.Pickler):
    legacy = False

    def persistent_id(self, obj):
        if isinstance(obj, Storage):  # the legacy format adds a view (None) to the zip format's five
            return ("storage", torch.FloatStorage, obj.key, "cpu", obj.numel) + ((None,) if self.legacy else ())
        return None


def state_pickle(state, legacy=False):
    """The state's pickle as torch writes it (protocol 2, storages as persistent ids)."""
    out = io.BytesIO()
    pickler = _Pickler(out, protocol=2)
    pickler.legacy = legacy
    pickler.dump(state)
    return out.getvalue()


def zip_file(pickled, storages=(), compression=zipfile.ZIP_STORED):
    """A zip-format `.pth`: `archive/data.pkl` and one `archive/data/KEY` entry per storage."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as archive:
        archive.writestr("archive/data.pkl", pickled)
        archive.writestr("archive/byteorder", "little")
        for storage in storages:
            archive.writestr(f"archive/data/{storage.key}", storage.data)
        archive.writestr("archive/version", "3\n")
    return out.getvalue()


def legacy_file(pickled, storages=(), magic=None, protocol=None, sys_info=None, keys=None):
    """A legacy `.pth`: magic, protocol, system information, the state, the keys, then each storage."""
    dump = lambda value: pickle.dumps(value, protocol=2)  # noqa: E731
    parts = [magic if magic is not None else dump(LEGACY_MAGIC), protocol if protocol is not None else dump(1001),
             sys_info if sys_info is not None else dump(SYS_INFO), pickled,
             keys if keys is not None else dump([s.key for s in storages])]
    for storage in storages:
        parts.append(struct.pack("<q", storage.numel) + storage.data)
    return b"".join(parts)


def saved(state, zipped):
    """`torch.save`'s bytes of `state`."""
    out = io.BytesIO()
    torch.save(state, out, _use_new_zipfile_serialization=zipped)
    return out.getvalue()


def legacy_parts(data):
    """A legacy file's spans: (start, end) of its five pickles, then the storages' bytes."""
    f, spans = io.BytesIO(data), []
    for _ in range(5):
        start = f.tell()
        for _op in pickletools.genops(f):
            pass
        spans.append((start, f.tell()))
    return spans


def torch_load(data):
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
