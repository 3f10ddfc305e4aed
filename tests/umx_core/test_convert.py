"""open-unmix weights: .pth files, legacy keys, inferred shapes, clear errors."""

import builtins

import numpy as np
import pytest
import torch

from tests.conftest import random_openunmix, random_openunmix_targets, rel_error, state_dicts
from umx_core.convert import infer_filter_kwargs, load_state_dict
from umx_core.errors import UMXError
from umx_core.pretrained import separator_from_openunmix


def test_pth_files_with_legacy_keys(tmp_path, rng):
    models = random_openunmix_targets(("vocals", "other"))
    paths = {}
    for name, model in models.items():
        sd = dict(model.state_dict())
        # the released umxhq files carry these extra keys
        sd["stft.window"] = torch.hann_window(4096)
        sd["transform.0.window"] = torch.hann_window(4096)
        sd["sample_rate"] = torch.tensor(44100.0)
        paths[name] = str(tmp_path / f"{name}.pth")
        torch.save(sd, paths[name])
    from_files = separator_from_openunmix(paths, niter=1)
    from_dicts = separator_from_openunmix(state_dicts(models), niter=1)
    audio = rng.standard_normal((1, 2, 30000)).astype(np.float32)
    np.testing.assert_array_equal(from_files(audio), from_dicts(audio))


def test_numpy_state_dicts_work(rng):
    model = random_openunmix()
    as_numpy = {k: v.numpy() for k, v in model.state_dict().items()}
    audio = rng.standard_normal((1, 2, 30000)).astype(np.float32)
    a = separator_from_openunmix({"vocals": as_numpy}, residual=True)(audio)
    b = separator_from_openunmix({"vocals": model.state_dict()}, residual=True)(audio)
    assert rel_error(a, b) < 1e-7


def test_shapes_are_inferred():
    kw = infer_filter_kwargs(random_openunmix(nb_channels=1, hidden_size=20, nb_layers=3, max_bin=300).state_dict())
    assert kw == dict(nb_bins=2049, nb_channels=1, hidden_size=20, nb_layers=3, unidirectional=False, max_bin=300)


def test_bad_weights_raise(tmp_path):
    with pytest.raises(UMXError, match="missing"):
        infer_filter_kwargs({"fc2.weight": np.zeros((2, 2))})
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a pickle")
    with pytest.raises(UMXError, match="bad.pth"):
        load_state_dict(str(bad))


def test_pth_files_convert_without_pytorch(tmp_path, rng, monkeypatch):
    """The files torch wrote, read with torch unimportable: the same separator as from the state dicts."""
    models = random_openunmix_targets(("vocals", "other"))
    paths = {name: str(tmp_path / f"{name}.pth") for name in models}
    for name, model in models.items():
        torch.save(model.state_dict(), paths[name])
    real_import = builtins.__import__

    def no_torch(name, *args, **kwargs):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("no torch")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torch)
    from_files = separator_from_openunmix(paths, niter=1)
    monkeypatch.undo()
    audio = rng.standard_normal((1, 2, 30000)).astype(np.float32)
    np.testing.assert_array_equal(from_files(audio), separator_from_openunmix(state_dicts(models), niter=1)(audio))
