"""umx_core/demucs_files.py: demucs's own checkpoints read without torch, equal to what demucs loads from
them, and every file that asks for more than a checkpoint holds refused before anything runs."""

import os
import shutil
from fractions import Fraction

import numpy as np
import pytest
import torch
from demucs.hdemucs import HDemucs
from demucs.hf import load_safetensors_model
from demucs.states import load_model
from safetensors.torch import save_file

from tests.umx_core.demucs_checkpoints import (SEGMENT, SOURCES, package, refused_by, save_safetensors, save_signed,
                                               save_th, tiny_htdemucs)
from umx_core.demucs_files import HTDEMUCS, check_signed_name, read_checkpoint


NUMPY_SCALAR = np.float64(1).__reduce__()[0]  # numpy.core.multiarray.scalar, or numpy._core's in numpy 2


def refused(path, match):
    return refused_by(read_checkpoint, path, match)


def assert_same_model(ours, theirs, model):
    """`ours` (a DemucsCheckpoint) holds what demucs built `theirs` (a torch model) from."""
    args, kwargs = model._init_args_kwargs
    assert ours.klass == HTDEMUCS and ours.args == list(args) and ours.kwargs == kwargs
    assert type(ours.kwargs["segment"]) is Fraction and ours.kwargs["segment"] == SEGMENT  # exact, not 7.8
    assert ours.sources == SOURCES
    expected = theirs.state_dict()
    assert sorted(ours.state) == sorted(expected)  # safetensors stores them in an order of its own
    for name, tensor in expected.items():
        assert ours.state[name].dtype == np.float32, name
        np.testing.assert_array_equal(ours.state[name], tensor.numpy(), err_msg=name)
        # the file holds float16: the weights went through it, not around it
        np.testing.assert_array_equal(ours.state[name], model.state_dict()[name].half().float().numpy())


def test_a_th_file_reads_as_demucs_loads_it(tmp_path):
    model = tiny_htdemucs()
    path = save_th(model, tmp_path / "955717e8.th")
    assert_same_model(read_checkpoint(path), load_model(path), model)
    # torch.save's legacy format (the default before PyTorch 1.6; HTDemucs came with demucs 4 and
    # PyTorch >= 1.8) pickles a module's class with its source code: not read, and said so
    path = save_th(model, tmp_path / "legacy.th", zipped=False)
    load_model(path)
    refused(path, "unknown persistent id")


def test_a_signed_file_is_checked_against_its_name(tmp_path):
    model = tiny_htdemucs(seed=1)
    path = save_signed(model, tmp_path, "f7e0c4bc")
    assert check_signed_name(path) and not check_signed_name(str(tmp_path / "f7e0c4bc.th"))
    assert_same_model(read_checkpoint(path), load_model(path), model)
    wrong = str(tmp_path / "f7e0c4bc-00000000.th")
    shutil.copy(path, wrong)
    refused(wrong, r"has sha256 [0-9a-f]{64}, its name says 00000000\.\.\.: refused")
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 1  # one bit of the weights changed, the name kept
    open(path, "wb").write(bytes(data))
    refused(path, "its name says")


def test_a_safetensors_file_reads_as_demucs_loads_it(tmp_path):
    model = tiny_htdemucs(seed=2)
    path = save_safetensors(model, tmp_path / "04573f0d.safetensors")
    ours = read_checkpoint(path)
    assert_same_model(ours, load_safetensors_model(path), model)
    from_th = read_checkpoint(save_th(model, tmp_path / "04573f0d.th"))
    assert from_th.kwargs == ours.kwargs and all(np.array_equal(from_th.state[k], v) for k, v in ours.state.items())


class Call:
    """Pickles as a call of `func(*args)`: any global with any arguments, as a hand-made file holds them."""

    def __init__(self, func, *args):
        self.reduced = (func, args)

    def __reduce__(self):
        return self.reduced


def payloads(marker):
    """What a malicious checkpoint uses to run code, each creating `marker` if it ever runs."""
    return {"posix.system": Call(os.system, f"touch {marker}"),
            "builtins.eval": Call(eval, f"open({str(marker)!r}, 'w').close()"),
            "builtins.exec": Call(exec, f"open({str(marker)!r}, 'w').close()")}


@pytest.mark.parametrize("where", ["metrics", "training_args", "kwargs", "state"])
@pytest.mark.parametrize("name", ["posix.system", "builtins.eval", "builtins.exec"])
def test_a_payload_anywhere_is_refused_before_it_runs(tmp_path, where, name):
    marker = tmp_path / "ran"
    pkg = package(tiny_htdemucs())
    pkg[where] = {**pkg[where], "x": payloads(marker)[name]} if where != "metrics" else (payloads(marker)[name],)
    path = str(tmp_path / "evil.th")
    torch.save(pkg, path)
    module, function = name.split(".")  # protocol 2 names the builtins module by its Python 2 name
    refused(path, rf"evil\.th: not a demucs checkpoint: its pickle asks for ({module}|__builtin__)\.{function} "
                  r"\(refused")
    assert not marker.exists()


def saved_with(tmp_path, name="odd.th", **changes):
    pkg = package(tiny_htdemucs())
    pkg.update(changes)
    path = str(tmp_path / name)
    torch.save({k: v for k, v in pkg.items() if v is not None}, path)
    return path


MALFORMED = {  # name: (what the package gets, what the refusal says)
    "an HDemucs": (dict(klass=HDemucs),
                   r"a demucs\.hdemucs\.HDemucs model; only HTDemucs \(demucs\.htdemucs\.HTDemucs\) is supported"),
    "a class of another module": (dict(klass=torch.nn.Linear), r"asks for torch\.nn\.modules\.linear\.Linear"),
    "a class named as text": (dict(klass=HTDEMUCS), "its klass is a str, not a model class"),
    "no state": (dict(state=None), "not a demucs checkpoint \\(it has no state\\)"),
    "a quantized state": (dict(state={"__quantized": True, "w": torch.ones(2)}), "diffq-quantized"),
    "an integer weight": (dict(state={"w": torch.ones(2, dtype=torch.int64)}), "'w' is a int64; only float16"),
    "a fraction of floats": (dict(kwargs={"sources": SOURCES, "segment": Call(Fraction, 1.5, 2)}), "two integers"),
    "a fraction of text": (dict(kwargs={"sources": SOURCES, "segment": Call(Fraction, "1e9999")}), "two integers"),
    "a fraction over zero": (dict(kwargs={"sources": SOURCES, "segment": Call(Fraction, "1/00")}), "two integers"),
    "an object dtype": (dict(metrics=Call(np.dtype, "O", False, True)), "numpy dtype other than a number's"),
    "a big-endian scalar": (dict(metrics=Call(NUMPY_SCALAR, np.dtype(">f8"), b"\0" * 8)), "only little-endian numbers"),
    "a scalar of the wrong size": (dict(metrics=Call(NUMPY_SCALAR, np.dtype("f8"), b"\0" * 4)),
                                   "a number of its dtype's size"),
    "bytes in the kwargs": (dict(kwargs={"sources": SOURCES, "name": b"x"}), "kwargs holds a bytes"),
    "a numpy array": (dict(metrics=np.zeros(2)), r"asks for numpy\.(_core|core)\.multiarray\._reconstruct"),
    "no sources": (dict(kwargs={"segment": SEGMENT}), "its sources are not a list of distinct names"),
}


@pytest.mark.parametrize("name", MALFORMED)
def test_a_checkpoint_holding_anything_else_is_refused(tmp_path, name):
    changes, says = MALFORMED[name]
    refused(saved_with(tmp_path, **changes), says)


def test_damaged_and_foreign_files_name_themselves(tmp_path):
    path = save_th(tiny_htdemucs(), tmp_path / "cut.th")
    data = open(path, "rb").read()
    for size in (0, 100, len(data) // 2, len(data) - 30):
        open(path, "wb").write(data[:size])
        refused(path, "cut.th: ")
    torch.save([1, 2], tmp_path / "list.th")
    refused(tmp_path / "list.th", "holds a list, not a demucs checkpoint")
    refused(tmp_path / "missing.th", "cannot read it")
    refused(tmp_path / "model.ckpt", r"a \.th or \.safetensors file is read")


def test_a_fraction_pickled_as_its_text_reads_too(tmp_path):
    # Pythons before 3.12 pickle a Fraction as its text: "39/5"
    path = saved_with(tmp_path, kwargs={"sources": SOURCES, "segment": Call(Fraction, "39/5")})
    assert read_checkpoint(path).kwargs["segment"] == SEGMENT


SAFETENSORS_METADATA = {  # name: (metadata changed, what the refusal says)
    "an HDemucs": (dict(klass="demucs.hdemucs.HDemucs"), "only HTDemucs"),
    "a diffq structure": (dict(structure="{}"), "diffq-quantized"),
    "no kwargs": (dict(kwargs=None), "its metadata has no klass, args and kwargs"),
    "kwargs not JSON": (dict(kwargs="{sources"), "not readable JSON"),
    "a fraction over zero": (dict(kwargs='{"sources": ["a"], "segment": {"_type": "fraction", "numerator": 1, '
                                         '"denominator": 0}}'), "a malformed fraction"),
    "a fraction of floats": (dict(kwargs='{"sources": ["a"], "segment": {"_type": "fraction", "numerator": 1.5, '
                                         '"denominator": 2}}'), "a malformed fraction"),
    "deep kwargs": (dict(kwargs="[" * 100_000 + "]" * 100_000), "RecursionError"),
}


@pytest.mark.parametrize("name", SAFETENSORS_METADATA)
def test_safetensors_metadata_other_than_demucs_writes_is_refused(tmp_path, name):
    changes, says = SAFETENSORS_METADATA[name]
    refused(save_safetensors(tiny_htdemucs(), tmp_path / "odd.safetensors", **changes), says)


def test_a_safetensors_of_other_dtypes_is_refused(tmp_path):
    path = str(tmp_path / "bf16.safetensors")
    save_file({"w": torch.ones(2, dtype=torch.bfloat16)}, path,
              metadata={"klass": HTDEMUCS, "args": "[]", "kwargs": '{"sources": ["a"]}'})
    refused(path, "tensor 'w' is 'BF16'; only F16, F32 are read")
