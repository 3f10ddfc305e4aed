"""umx_core/pth.py: .pth state dicts read without PyTorch, equal to torch.load, and nothing else runs."""

import collections
import os

import numpy as np
import pytest
import torch

from tests.conftest import random_openunmix
from umx_core import pth
from umx_core.errors import UMXError


def state_dict():
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6) / 7
    sd = collections.OrderedDict()
    sd["weight"] = base
    sd["transposed"] = base.t()  # strides, one storage shared with `weight`
    sd["column"] = base[:, 2]  # an offset into that storage
    sd["double"] = torch.linspace(-1, 1, 5, dtype=torch.float64)
    sd["half"] = torch.tensor([0.5, -2.0], dtype=torch.float16)
    sd["count"] = torch.tensor(7)  # a 0-d int64
    sd["flags"] = torch.tensor([True, False])
    sd["empty"] = torch.zeros(0, 3)
    return sd


@pytest.mark.parametrize("zipped", [True, False], ids=["zip", "legacy"])
def test_equal_to_torch_load(tmp_path, zipped):
    path = tmp_path / "sd.pth"
    model = random_openunmix(hidden_size=8, nb_bins=129, max_bin=100)
    for sd in (state_dict(), model.state_dict()):
        torch.save(sd, path, _use_new_zipfile_serialization=zipped)
        expected = torch.load(path, map_location="cpu", weights_only=True)
        got = pth.load(str(path))
        assert list(got) == list(expected)
        for key, tensor in expected.items():
            assert got[key].dtype == tensor.numpy().dtype and got[key].shape == tuple(tensor.shape), key
            np.testing.assert_array_equal(got[key], tensor.numpy(), err_msg=key)


class Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):  # what a malicious .pth uses: a call made while unpickling
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("zipped", [True, False], ids=["zip", "legacy"])
def test_a_pickle_asking_for_anything_else_is_refused_before_it_runs(tmp_path, zipped):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pth"
    torch.save({"weight": torch.ones(2), "x": Payload(marker)}, path, _use_new_zipfile_serialization=zipped)
    with pytest.raises(UMXError, match=r"evil\.pth: not a plain state dict: its pickle asks for posix\.system"):
        pth.load(str(path))
    assert not marker.exists()
    os.system(f"touch {marker}")  # the payload itself works: the refusal is what stopped it
    assert marker.exists()


def test_damaged_files_name_themselves(tmp_path):
    path = tmp_path / "cut.pth"
    torch.save(state_dict(), path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(UMXError, match="cut.pth: not a readable PyTorch state dict"):
        pth.load(str(path))
    (tmp_path / "text.pth").write_text("hello")
    with pytest.raises(UMXError, match="text.pth"):
        pth.load(str(tmp_path / "text.pth"))
    torch.save([torch.ones(1)], tmp_path / "list.pth")
    with pytest.raises(UMXError, match="list.pth: holds a list, not a state dict"):
        pth.load(str(tmp_path / "list.pth"))
    with pytest.raises(UMXError, match="missing.pth: cannot read it"):
        pth.load(str(tmp_path / "missing.pth"))
