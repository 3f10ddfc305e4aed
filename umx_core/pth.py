"""PyTorch `.pth` state dicts read without PyTorch: every byte of the file is untrusted input.

Both of `torch.save`'s formats are read: the zip archive (`ARCHIVE/data.pkl` with each storage in
`ARCHIVE/data/KEY`, the default since PyTorch 1.6) and the older stream of pickles (a magic number,
the protocol, the system's sizes, the state dict, the storage keys, then each storage as an 8-byte
element count and its bytes). Every pickle in either goes through `umx_core.safe_pickle`, which
runs nothing: it may name ordered dicts, tensors, typed storages and what a caller of `read` allows,
and anything else (a function to call, a class to build: what a malicious `.pth` uses to run code) is
refused before it runs.
Sizes are checked before memory is taken: a storage's element count must be backed by the bytes
present, a zip entry may not inflate out of proportion, a tensor must address only inside its
storage, and the arrays made may not exceed a small multiple of the storages read.
"""

import collections
import functools
import io
import struct
import zipfile

from umx_core import safe_pickle
from umx_core.errors import UMXError
from umx_core.safe_pickle import Global, PickleRefused
from umx_core.safe_zip import SafeZip, ZipRefused
from umx_core.torch_tensors import CALLS, STORAGE_GLOBALS, Storage, Storages, Tensor

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
MAX_NESTING = 64  # containers inside containers: a state dict needs two or three
# the arrays made may total this many times the storages' bytes (views sharing a storage), plus a little
ARRAY_BYTES_PER_STORAGE_BYTE, ARRAY_BYTES_ALLOWANCE = 4, 1 << 20


def _zip_state(data, unpickle):
    archive = SafeZip(data)
    pickles = [n for n in archive.names() if n.endswith("/data.pkl") or n == "data.pkl"]
    if len(pickles) != 1:
        raise PickleRefused(f"an archive with {len(pickles)} data.pkl entries, not one")
    root = pickles[0][: -len("data.pkl")]
    unread = set(archive.names()) - {pickles[0]}
    for name, check in ((f"{root}byteorder", lambda v: v == b"little"),  # torch reads these too, and refuses
                        (f"{root}version", bytes.isdigit), (f"{root}.format_version", bytes.isdigit),
                        (f"{root}.storage_alignment", bytes.isdigit)):
        if name in unread and not check(archive.read(name).strip()):
            raise PickleRefused(f"entry {name} is malformed (only little-endian files of a known version are read)")
    storages = Storages(fields=5)
    raw = archive.read(pickles[0])
    state = unpickle(io.BytesIO(raw), persistent=storages, size=len(raw))
    for key, storage in storages.by_key.items():
        name = f"{root}data/{key}"
        if name not in unread:
            raise PickleRefused(f"storage {key} has no entry in the archive")
        unread.discard(name)
        storage.fill(archive.read(name, storage.numel * storage.dtype.itemsize))
    for name in unread:  # the rest checked whole (sizes, CRC), as torch reads them
        archive.read(name)
    return state, storages


def _legacy_state(data, unpickle, kind):
    f = io.BytesIO(data)
    try:
        magic = safe_pickle.load(f)
    except PickleRefused as exc:
        raise PickleRefused(f"not a readable PyTorch {kind} (neither a zip archive nor the legacy format: {exc})")
    if magic != LEGACY_MAGIC:
        raise PickleRefused("not a PyTorch file")
    if safe_pickle.load(f) != LEGACY_PROTOCOL:
        raise PickleRefused("an unknown version of the legacy format")
    info = safe_pickle.load(f)
    if not (isinstance(info, dict) and info.get("little_endian") is True):
        raise PickleRefused("its tensors are not little-endian, or its system information is malformed")
    storages = Storages(fields=6)
    state = unpickle(f, persistent=storages)
    keys = safe_pickle.load(f)
    if not (isinstance(keys, list) and all(isinstance(k, str) for k in keys) and len(set(keys)) == len(keys)):
        raise PickleRefused("its list of storage keys is malformed")
    for key in keys:  # each storage after the pickles: an element count, then the elements
        storage = storages.by_key.get(key)
        if storage is None:
            raise PickleRefused(f"storage {key} is listed but no tensor declares it")
        head = f.read(8)
        if len(head) != 8 or struct.unpack("<q", head)[0] != storage.numel:
            raise PickleRefused(f"storage {key} holds another element count than its tensors declare")
        nbytes = storage.numel * storage.dtype.itemsize
        if nbytes > len(data) - f.tell():
            raise PickleRefused(f"storage {key} declares {nbytes} bytes, the file has {len(data) - f.tell()} left")
        storage.fill(f.read(nbytes))
    return state, storages


def _plain(value, budget, markers):
    """The unpickled value with every tensor made a numpy array (shared parts converted once); of the
    globals, only `markers` may stand where data belongs."""
    done, open_, stack = {}, set(), [(value, False, 0)]
    while stack:  # depth-first without recursion: a hostile nesting cannot exhaust the C stack
        item, expanded, depth = stack.pop()
        if id(item) in done or not _container(item):
            continue
        if not expanded and id(item) in open_:  # met again below itself
            raise PickleRefused("its pickle holds a cycle")
        if depth > MAX_NESTING:
            raise PickleRefused(f"its pickle nests containers more than {MAX_NESTING} deep")
        if isinstance(item, Tensor):
            budget[0] -= item.elements() * item.storage.dtype.itemsize
            if budget[0] < 0:
                raise PickleRefused("its tensors view far more data than its storages hold (refused)")
            done[id(item)] = item.array()
        elif not expanded:
            open_.add(id(item))
            stack.append((item, True, depth))
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, False, depth + 1) for child in children if id(child) not in done)
        else:
            open_.discard(id(item))
            if isinstance(item, dict):
                done[id(item)] = collections.OrderedDict((k, _converted(v, done, markers)) for k, v in item.items())
            else:
                done[id(item)] = type(item)(_converted(v, done, markers) for v in item)
    return done.get(id(value), value)


def _container(value):
    return isinstance(value, (dict, list, Tensor)) or type(value) is tuple  # a Global is a tuple too, not data


def _converted(value, done, markers):
    if _container(value):
        return done[id(value)]
    if isinstance(value, Storage) or (isinstance(value, Global) and value not in markers):
        raise PickleRefused("its pickle holds a bare storage or class where data belongs")
    return value


def read(path, allowed=(), calls=None, refusal=safe_pickle.STATE_DICT_REFUSAL, kind="state dict"):
    """The dict `torch.save` wrote to `path` (zip or legacy format), without PyTorch and running nothing.

    Args:
        path: a local file.
        allowed: `(module, name)` globals the file may hold as data; each comes back a `Global` marker.
        calls: `{Global: function}` the pickle may call besides torch's rebuilders, each checking its arguments.
        refusal: the message for any other global (`safe_pickle.load`'s).
        kind: what the file should hold, for the messages.
    Returns:
        the unpickled dict, every tensor a numpy array and every dict an ordered dict.
    Raises:
        UMXError naming the file and what is wrong: unreadable, not a PyTorch file, a pickle asking
        for a global neither allowed nor torch's, sizes the file's bytes do not back, or not a dict.
    """
    label = str(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise UMXError(f"{label}: cannot read it ({exc})") from exc
    # the main pickle's reader: torch's storages, tensors and ordered dicts, and what the caller adds
    unpickle = functools.partial(safe_pickle.load, allowed=set(allowed) | STORAGE_GLOBALS,
                                 calls={**(calls or {}), **CALLS}, refusal=refusal)
    try:
        if zipfile.is_zipfile(io.BytesIO(data)):
            value, storages = _zip_state(data, unpickle)
        else:
            value, storages = _legacy_state(data, unpickle, kind)
        if not isinstance(value, dict):
            raise PickleRefused(f"holds a {type(value).__name__}, not a {kind}")
        budget = [ARRAY_BYTES_PER_STORAGE_BYTE * storages.bytes_declared() + ARRAY_BYTES_ALLOWANCE]
        return _plain(value, budget, {Global(*name) for name in allowed})
    except (PickleRefused, ZipRefused) as exc:
        raise UMXError(f"{label}: {exc}") from None
    except Exception as exc:  # a damaged archive or pickle: whatever the parsers raise on bytes they cannot read
        raise UMXError(f"{label}: not a readable PyTorch {kind} ({type(exc).__name__}: {exc})") from None


def load(path):
    """`{name: numpy array}` of a `.pth` state dict (zip or legacy format), without PyTorch.

    Raises:
        UMXError naming the file and what is wrong (`read`'s, with only ordered dicts, tensors and
        storages allowed).
    """
    return read(path)
