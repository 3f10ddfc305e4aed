"""umx_core/pth.py fuzzed: seeded mutations of valid `.pth` files of both layouts either load equal
to `torch.load` of the same bytes or raise UMXError, in bounded memory, and nothing runs."""

import io
import pickletools
import tracemalloc
import zipfile

import numpy as np
import pytest

from tests.umx_core.pth_files import legacy_parts, saved, torch_load
from tests.umx_core.test_pth import state_dict
from umx_core import pth
from umx_core.errors import UMXError

CASES = 2000  # per layout
# opcodes a mutation inserts: hostile globals and calls, state writes, stack and memo games
INSERTS = [b"cos\nsystem\n", b"cbuiltins\neval\n", b"cposix\nsystem\n(S'touch RAN'\ntR", b"c__builtin__\ngetattr\n",
           b"ctorch\nload\n", b"cnumpy\nfrombuffer\n", b"ctorch._utils\n_rebuild_tensor_v2\n",
           b"ccollections\nOrderedDict\n", b"ctorch\nFloatStorage\n", b"b", b"R", b"(", b"0", b"1", b"2", b".",
           b"s", b"u", b"a", b"e", b"t", b"\x85", b"\x86", b"}", b"]", b")", b"N", b"\x88", b"Q", b"\x81",
           b"h\x00", b"h\x07", b"q\x00", b"j\xff\xff\xff\x7f", b"K\xff", b"J\xff\xff\xff\x7f", b"M\xff\xff",
           b"\x8a\x08" + b"\xff" * 8, b"X\xff\xff\xff\x7f", b"\x80\x05", b"\x95" + b"\xff" * 8]


def opcode_spans(pickled):
    """(start, end) of each opcode of a pickle."""
    ops = list(pickletools.genops(io.BytesIO(pickled)))
    starts = [pos for _op, _arg, pos in ops]
    return list(zip(starts, starts[1:] + [len(pickled)]))


def mutate_pickle(pickled, rng):
    spans = opcode_spans(pickled)
    kind = rng.integers(5)
    i, j = sorted(rng.choice(len(spans) - 1, 2, replace=False))  # never the final STOP
    (a, b), (c, d) = spans[i], spans[j]
    if kind == 0:  # two opcodes swapped
        return pickled[:a] + pickled[c:d] + pickled[b:c] + pickled[a:b] + pickled[d:]
    if kind == 1:  # an opcode inserted
        return pickled[:a] + INSERTS[rng.integers(len(INSERTS))] + pickled[a:]
    if kind == 2:  # an opcode deleted
        return pickled[:a] + pickled[b:]
    if kind == 3:  # an argument's bytes changed (sizes, strides, offsets, memo indices, lengths)
        if b - a < 2:
            return pickled[:a] + INSERTS[rng.integers(len(INSERTS))] + pickled[b:]
        k = int(rng.integers(a + 1, b))
        return pickled[:k] + bytes([rng.integers(256)]) + pickled[k + 1:]
    return pickled[:a] + INSERTS[rng.integers(len(INSERTS))] + pickled[b:]  # an opcode replaced


def mutate_bytes(data, rng):
    if rng.integers(2):  # truncated
        return data[: int(rng.integers(len(data)))]
    data = bytearray(data)
    for _ in range(int(rng.integers(1, 5))):  # bytes flipped anywhere
        data[int(rng.integers(len(data)))] = int(rng.integers(256))
    return bytes(data)


def rezip(data, pickled):
    """The archive with its data.pkl replaced (CRCs recomputed, so the pickle reaches the reader)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, pickled if info.filename.endswith("/data.pkl") else src.read(info))
    return out.getvalue()


def mutants(layout, rng):
    base = saved(state_dict(), layout == "zip")
    if layout == "zip":
        with zipfile.ZipFile(io.BytesIO(base)) as archive:
            (name,) = [n for n in archive.namelist() if n.endswith("/data.pkl")]
            pickled = archive.read(name)
        wrap = lambda p: rezip(base, p)  # noqa: E731
    else:
        spans = legacy_parts(base)
        part = lambda k: base[spans[k][0]:spans[k][1]]  # noqa: E731
        wraps = {k: (lambda p, k=k: base[:spans[k][0]] + p + base[spans[k][1]:]) for k in range(5)}
    for _ in range(CASES):
        if rng.integers(3) == 0:
            yield mutate_bytes(base, rng)
        elif layout == "zip":
            yield wrap(mutate_pickle(pickled, rng))
        else:
            k = int(rng.choice(5, p=[0.1, 0.05, 0.15, 0.6, 0.1]))  # mostly the state, every pickle some
            yield wraps[k](mutate_pickle(part(k), rng))


def check_case(tmp_path, data):
    """'loaded' (equal to torch.load) or 'refused' (UMXError); peak memory within a multiple of the file."""
    path = tmp_path / "case.pth"
    path.write_bytes(data)
    tracemalloc.start()
    try:
        try:
            got = pth.load(str(path))
        except UMXError as exc:
            assert "case.pth" in str(exc)
            return "refused"
        finally:
            peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * len(data) + (2 << 20), peak
    expected = torch_load(data)  # where ours loads, torch must too, and agree
    assert list(got) == list(expected)
    for key, tensor in expected.items():
        value = tensor.detach().numpy() if hasattr(tensor, "numpy") else tensor
        np.testing.assert_array_equal(got[key], value, err_msg=key)
        assert np.asarray(got[key]).dtype == np.asarray(value).dtype, key
    return "loaded"


@pytest.mark.parametrize("layout", ["zip", "legacy"])
def test_mutated_files_load_like_torch_or_are_refused(tmp_path, monkeypatch, layout):
    monkeypatch.chdir(tmp_path)  # where an inserted `touch RAN` would land, had it run
    rng = np.random.default_rng(2026)
    outcomes = [check_case(tmp_path, data) for data in mutants(layout, rng)]
    assert not (tmp_path / "RAN").exists()
    # the mutations reach both outcomes: a fuzzer refusing everything would test nothing
    assert outcomes.count("loaded") > CASES // 20 and outcomes.count("refused") > CASES // 2, outcomes.count("loaded")
