"""umx_core/pth.py against files written by hand to run code, overread, crash or exhaust memory."""

import collections
import os
import pickle
import struct
import tracemalloc
import zipfile

import numpy as np
import pytest

from tests.umx_core.pth_files import Storage, Tensor, legacy_file, saved, state_pickle, torch_load, zip_file
from umx_core import pth
from umx_core.errors import UMXError

FORMATS = {"zip": zip_file, "legacy": legacy_file}


def tensor_file(layout, state, storages, **kwargs):
    """`state` (hand-made tensors over `storages`) in one of torch's two layouts."""
    return FORMATS[layout](state_pickle(state, legacy=layout == "legacy"), storages, **kwargs)


class Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):  # a call made while unpickling: what a malicious file uses to run code
        return os.system, (f"touch {self.marker}",)


def write(tmp_path, data, name="hostile.pth"):
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def refused(path, match):
    with pytest.raises(UMXError, match=match) as info:
        pth.load(path)
    assert type(info.value) is UMXError and os.path.basename(path) in str(info.value)
    return str(info.value)


@pytest.mark.parametrize("part", ["magic", "protocol", "sys_info", "keys"])
def test_every_pickle_of_the_legacy_format_is_refused_before_it_runs(tmp_path, part):
    marker = tmp_path / "ran"
    honest = Storage("0", 2, np.ones(2, np.float32).tobytes())
    data = tensor_file("legacy", {"w": Tensor(honest, 0, (2,), (1,))}, [honest],
                       **{part: pickle.dumps(Payload(marker), protocol=2)})
    refused(write(tmp_path, data), r"posix\.system")
    assert not marker.exists()


@pytest.mark.parametrize("layout", FORMATS)
def test_a_tensor_may_address_only_inside_its_storage(tmp_path, layout):
    six = Storage("0", 6, np.arange(6, dtype=np.float32).tobytes())
    for offset, size, stride in [(0, (4096,), (1,)),  # 4090 elements past the storage
                                 (0, (2,), (2 ** 30,)),  # a stride that used to crash the process
                                 (5, (2,), (1,)), (7, (), ()), (0, (2, 3), (3, 2))]:
        data = tensor_file(layout, {"w": Tensor(six, offset, size, stride)}, [six])
        refused(write(tmp_path, data), r"addresses element|starts past")
    # the same storage read at its very edge, with strides and an offset: equal to torch
    data = tensor_file(layout, {"w": Tensor(six, 1, (2, 2), (1, 3))}, [six])
    np.testing.assert_array_equal(pth.load(write(tmp_path, data))["w"], torch_load(data)["w"].numpy())


@pytest.mark.parametrize("layout", FORMATS)
def test_sizes_are_checked_before_memory_is_taken(tmp_path, layout):
    huge = Storage("0", 128 << 20, np.ones(6, np.float32).tobytes())  # 512 MiB declared, 24 bytes present
    data = tensor_file(layout, {"w": Tensor(huge, 0, (6,), (1,))}, [huge])
    assert len(data) < 1000
    path = write(tmp_path, data)
    tracemalloc.start()
    try:
        refused(path, r"(storage |entry archive/data/)0 (declares|holds|has)")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20


def test_a_zip_bomb_is_refused_before_it_inflates(tmp_path):
    bomb = Storage("0", 16 << 20, bytes(64 << 20))  # 64 MiB of zeros deflate to about 64 KiB
    data = zip_file(state_pickle({"w": Tensor(bomb, 0, (16 << 20,), (1,))}), [bomb], zipfile.ZIP_DEFLATED)
    path = write(tmp_path, data)
    del bomb
    tracemalloc.start()
    try:
        refused(path, "out of proportion")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * len(data) + (2 << 20)


def test_views_cannot_multiply_a_storage_beyond_the_budget(tmp_path):
    # a stride of 0 addresses one element as often as it likes: a small file asking for a huge array
    one = Storage("0", 1, np.ones(1, np.float32).tobytes())
    data = zip_file(state_pickle({"w": Tensor(one, 0, (1 << 28,), (0,))}), [one])
    refused(write(tmp_path, data), "view far more data")


def opcodes(*parts):
    return b"\x80\x02" + b"".join(parts) + b"."


def text(s):
    return b"X" + struct.pack("<I", len(s.encode())) + s.encode()


HOSTILE_PICKLES = {  # name: (pickle, what the refusal says)
    # BUILD on the reader's own allow-listed things: they must not be changed for the next file
    "build on a storage type": (opcodes(b"ctorch\nFloatStorage\n}", text("dtype"), b"Nsb0}"), "did not make"),
    "build on OrderedDict": (opcodes(b"ccollections\nOrderedDict\n}", text("__init__"), b"Nsb0}"), "did not make"),
    "build on a tensor rebuilder": (opcodes(b"ctorch._utils\n_rebuild_tensor_v2\n}", text("x"), b"Nsb0}"),
                                    "did not make"),
    "setitem on a global": (opcodes(b"ccollections\nOrderedDict\n", text("k"), b"Ns0}"), "not a container"),
    "an ordered dict built from arguments": (opcodes(b"ccollections\nOrderedDict\n(]tR"), "only empty ones"),
    "a global by STACK_GLOBAL": (b"\x80\x04" + text("builtins") + text("eval") + b"\x93" + text("1") + b"\x85R.",
                                 "STACK_GLOBAL opcode"),
    "a cycle": (opcodes(b"}", text("x"), b"]q\x00h\x00as"), "a cycle"),
    "nesting 100 deep": (opcodes(b"}", text("x"), b"]" * 100, b"a" * 99, b"s"), "more than 64 deep"),
    "nesting 100k deep": (opcodes(b"}", text("x"), b"]" * 100_000, b"a" * 99_999, b"s"), "more than 64 deep"),
    "a dict keyed by a list": (opcodes(b"}]Ns"), "a list as a dict key"),
    "a million DUPs": (opcodes(b"N", b"2" * 1_000_000), "DUP opcode"),
    "a million memo entries": (opcodes(b"N", b"".join(b"r" + struct.pack("<I", i) for i in range(1_000_000))),
                               "not a state dict"),
    "a million empty dicts": (opcodes(b"(", b"}" * 1_000_000), "as a bomb"),
    "a million appends": (opcodes(b"]q\x00", b"h\x00a" * 500_000), "not a state dict"),
    "an object by NEWOBJ": (opcodes(b"ccollections\nOrderedDict\n)\x81"), "NEWOBJ opcode"),
    "a list key in SETITEMS": (opcodes(b"}(]Nu"), "a list as a dict key"),
    "a bare class as a value": (opcodes(b"}", text("x"), b"ccollections\nOrderedDict\ns"), "bare storage or class"),
}


@pytest.mark.parametrize("name", HOSTILE_PICKLES)
@pytest.mark.parametrize("layout", FORMATS)
def test_hostile_pickles_are_refused_and_change_nothing_for_the_next_file(tmp_path, layout, name):
    pickled, says = HOSTILE_PICKLES[name]
    data = FORMATS[layout](pickled)
    tracemalloc.start()
    try:
        refused(write(tmp_path, data), says)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 80 * len(data) + (2 << 20)  # the reader's budget: 64 bytes per byte of pickle, and 1 MiB
    honest = collections.OrderedDict(w=__import__("torch").arange(6.0).reshape(2, 3))
    for zipped in (True, False):
        data = saved(honest, zipped)
        got, expected = pth.load(write(tmp_path, data, "honest.pth")), torch_load(data)
        assert list(got) == ["w"]
        np.testing.assert_array_equal(got["w"], expected["w"].numpy())


def test_nothing_but_umx_error_escapes_random_bytes(tmp_path):
    rng = np.random.default_rng(0)
    for n in range(300):
        data = rng.integers(0, 256, int(rng.integers(0, 400)), dtype=np.uint8).tobytes()
        if n % 3 == 0:
            data = b"\x80\x02" + data  # past the protocol opcode, into the pickle machine
        with pytest.raises(UMXError):
            pth.load(write(tmp_path, data))
