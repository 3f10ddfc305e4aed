"""umx_core/safe_tensors.py: safetensors files equal to the safetensors library's reading, and files whose
header lies about the bytes refused before any memory is taken."""

import time
import tracemalloc

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file as numpy_load
from safetensors.torch import save_file

from tests.umx_core.demucs_checkpoints import refused_by, safetensors_bytes
from tests.umx_core.test_pth_hostile import write as hostile_write
from umx_core import safe_tensors
from umx_core.errors import UMXError


def write(tmp_path, data, name="hostile.safetensors"):
    return hostile_write(tmp_path, data, name)


def refused(path, match):
    return refused_by(safe_tensors.read, path, match)


def test_equal_to_the_safetensors_library(tmp_path):
    tensors = {"half": torch.linspace(-2, 2, 12, dtype=torch.float16).reshape(3, 4), "float": torch.randn(2, 3, 5),
               "double": torch.randn(4, dtype=torch.float64), "long": torch.arange(-3, 3), "byte": torch.arange(7,
               dtype=torch.uint8), "empty": torch.zeros(0, 3), "scalar": torch.tensor(1.5)}
    path = str(tmp_path / "all.safetensors")
    save_file(tensors, path, metadata={"klass": "x.Y", "kwargs": '{"a": 1}'})
    got, metadata = safe_tensors.read(path)
    expected = numpy_load(path)
    assert sorted(got) == sorted(expected) and metadata == {"klass": "x.Y", "kwargs": '{"a": 1}'}
    for name, array in expected.items():
        assert got[name].dtype == array.dtype and got[name].shape == array.shape, name
        np.testing.assert_array_equal(got[name], array, err_msg=name)
    with pytest.raises(UMXError, match="tensor 'long' is 'I64'; only F16, F32 are read"):
        safe_tensors.read(path, dtypes=("F16", "F32"))


def entry(begin, end, shape=None, dtype="F32"):
    return {"dtype": dtype, "shape": [(end - begin) // 4] if shape is None else shape, "data_offsets": [begin, end]}


HOSTILE = {  # name: (file bytes, what the refusal says)
    "an empty file": (b"", "shorter than a header's length"),
    "a header length beyond the file": (safetensors_bytes({}, length=10 ** 12), "its header declares 1000000000000"),
    "a header length of 2**64 - 1": (safetensors_bytes({}, length=2 ** 64 - 1), "its header declares"),
    "a header not JSON": (safetensors_bytes("{'w': 1}"), "not readable JSON"),
    "a header not UTF-8": (safetensors_bytes(b'{"\xff": 1}'), "UnicodeDecodeError"),
    "a header nested 100k deep": (safetensors_bytes("[" * 100_000 + "]" * 100_000), "RecursionError"),
    "a header that is a list": (safetensors_bytes("[]"), "not a JSON object of tensors"),
    "metadata not text": (safetensors_bytes({"__metadata__": {"a": 1}}), "not a JSON object of tensors and text"),
    "a name given twice": (safetensors_bytes('{"w": {}, "w": {}}'), "names a key twice"),
    "offsets out of range": (safetensors_bytes({"w": entry(0, 8)}, bytes(4)),
                             "spans bytes 0 to 8 of a data section of 4"),
    "offsets backwards": (safetensors_bytes({"w": entry(8, 0, [0])}, bytes(8)), "spans bytes 8 to 0"),
    "overlapping tensors": (safetensors_bytes({"a": entry(0, 8), "b": entry(4, 12)}, bytes(12)),
                            "'b' starts at byte 4 of the data, the tensors before it end at 8"),
    "two tensors on the same bytes": (safetensors_bytes({"a": entry(0, 8), "b": entry(0, 8)}, bytes(8)),
                                      "starts at byte 0 of the data, the tensors before it end at 8"),
    "a hole": (safetensors_bytes({"a": entry(0, 8), "b": entry(12, 20)}, bytes(20)), "a hole"),
    "bytes after the tensors": (safetensors_bytes({"a": entry(0, 8)}, bytes(12)),
                                "cover 8 bytes of a data section of 12"),
    "a shape that disagrees": (safetensors_bytes({"w": entry(0, 8, [3])}, bytes(8)), r"shape \[3\] needs 12 bytes, its "
                                                                                     "offsets span 8"),
    "a huge shape on few bytes": (safetensors_bytes({"w": entry(0, 8, [2 ** 31, 2 ** 31])}, bytes(8)),
                                  "needs 18446744073709551616 bytes"),
    "a huge shape and offsets": (safetensors_bytes({"w": entry(0, 2 ** 62, [2 ** 60])}, bytes(8)),
                                 "of a data section of 8"),
    "a negative dimension": (safetensors_bytes({"w": entry(0, 8, [-2])}, bytes(8)), "malformed shape"),
    "a boolean dimension": (safetensors_bytes({"w": entry(0, 4, [True])}, bytes(4)), "malformed shape"),
    "too many dimensions": (safetensors_bytes({"w": entry(0, 4, [1] * 33)}, bytes(4)), "malformed shape"),
    "a float offset": (safetensors_bytes({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4.0]}}, bytes(4)),
                       "malformed shape or data_offsets"),
    "an extra field": (safetensors_bytes({"w": {**entry(0, 4), "x": 1}}, bytes(4)), "something else than dtype"),
    "bfloat16": (safetensors_bytes({"w": entry(0, 4, [2], "BF16")}, bytes(4)), "'BF16'; only"),
    "an unknown dtype": (safetensors_bytes({"w": entry(0, 4, [2], [])}, bytes(4)), r"is \[\]; only"),
}


@pytest.mark.parametrize("name", HOSTILE)
def test_a_header_that_lies_is_refused_before_memory_is_taken(tmp_path, name):
    data, says = HOSTILE[name]
    path = write(tmp_path, data)
    tracemalloc.start()
    start = time.perf_counter()
    try:
        refused(path, says)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * len(data) + (1 << 20) and time.perf_counter() - start < 5


def test_nothing_but_umx_error_escapes_mutated_files(tmp_path):
    path = str(tmp_path / "good.safetensors")
    save_file({"a": torch.randn(3, 2), "b": torch.ones(4, dtype=torch.float16)}, path, metadata={"k": "v"})
    good = open(path, "rb").read()
    rng = np.random.default_rng(0)
    read = 0
    for _ in range(1000):
        data = bytearray(good)
        for _ in range(int(rng.integers(1, 4))):
            data[int(rng.integers(0, len(data)))] = int(rng.integers(0, 256))
        if rng.integers(4) == 0:
            data = data[: int(rng.integers(0, len(data)))]
        try:
            safe_tensors.read(write(tmp_path, bytes(data), "mutated.safetensors"))
            read += 1
        except UMXError:
            pass
    assert 0 < read < 1000
