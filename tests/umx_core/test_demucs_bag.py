"""umx_core/demucs_bag.py: a bag read as demucs reads it (its own loader on the same folder), and bags that
name what is not there, or weights of another shape, refused naming their yaml."""

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from demucs.pretrained import get_model

from tests.umx_core.demucs_checkpoints import SOURCES, save_safetensors, save_signed, save_th, tiny_htdemucs
from umx_core.demucs_bag import read_bag
from umx_core.demucs_files import read_checkpoint
from umx_core.errors import UMXError

FT_WEIGHTS = [[1.0, 0.0, 0.0, 0.5], [0.0, 1.0, 1.0, 0.5]]


def bag_folder(tmp_path, text, name="mybag"):
    folder = tmp_path / "bag"
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.yaml").write_text(text)
    return folder


def refused(path, match):
    with pytest.raises(UMXError, match=match) as info:
        read_bag(path)
    assert type(info.value) is UMXError
    return str(info.value)


def test_a_bag_reads_as_demucs_loads_it(tmp_path):
    folder = bag_folder(tmp_path, f"models: ['f7e0c4bc', 'd12395a8']\nweights: {FT_WEIGHTS}\nsegment: 7.5\n")
    files = [save_signed(tiny_htdemucs(seed), folder, sig) for seed, sig in ((1, "f7e0c4bc"), (2, "d12395a8"))]
    theirs = get_model("mybag", repo=Path(folder))  # demucs's LocalRepo and BagOnlyRepo on the same folder
    for bag in (read_bag(folder), read_bag(folder / "mybag.yaml")):
        assert [m.path for m in bag.models] == files and bag.sources == SOURCES == theirs.sources
        np.testing.assert_array_equal(bag.weights, np.array(theirs.weights, np.float32))
        assert bag.weights.shape == (2, 4) and bag.segment == 7.5
        for ours, model in zip(bag.models, theirs.models):
            expected = model.state_dict()
            assert sorted(ours.state) == sorted(expected)
            for name, tensor in expected.items():
                np.testing.assert_array_equal(ours.state[name], tensor.numpy(), err_msg=name)


def test_safetensors_files_are_found_and_a_signature_named_twice_is_read_once(tmp_path):
    folder = bag_folder(tmp_path, "models: ['a1b2c3d4', 'e5f6a7b8', 'a1b2c3d4']\n")
    save_safetensors(tiny_htdemucs(1), folder / "a1b2c3d4.safetensors")
    save_th(tiny_htdemucs(1), folder / "a1b2c3d4.th")  # the safetensors file is taken where both are
    save_th(tiny_htdemucs(2), folder / "e5f6a7b8.th")
    bag = read_bag(folder)
    names = [os.path.basename(m.path) for m in bag.models]
    assert names == ["a1b2c3d4.safetensors", "e5f6a7b8.th", "a1b2c3d4.safetensors"]
    assert bag.models[0] is bag.models[2] and bag.weights is None and bag.segment is None
    direct = read_checkpoint(folder / "e5f6a7b8.th")
    assert all(np.array_equal(direct.state[k], v) for k, v in bag.models[1].state.items())


BAD_YAML = {  # name: (yaml text, what the refusal says)
    "a missing model": ("models: ['f7e0c4bc', 'cccc0003']\n",
                        "model 'cccc0003' has no cccc0003.safetensors, cccc0003.th or cccc0003-<sha8>.th in"),
    "too few weight rows": ("models: ['f7e0c4bc']\nweights: []\n", r"a row of numbers per model \(1 rows\)"),
    "too many weight rows": (f"models: ['f7e0c4bc']\nweights: {FT_WEIGHTS}\n", "a row of numbers per model"),
    "a short weight row": ("models: ['f7e0c4bc']\nweights: [[1, 1, 1]]\n",
                           r"row 0 of its weights has 3 numbers for the 4 sources \['drums'"),
    "a weight that is text": ("models: ['f7e0c4bc']\nweights: [[1, 1, 1, 'x']]\n", "a row of numbers per model"),
    "a weight that is true": ("models: ['f7e0c4bc']\nweights: [[1, 1, 1, true]]\n", "a row of numbers per model"),
    "an infinite weight": ("models: ['f7e0c4bc']\nweights: [[1, 1, 1, .inf]]\n", "a row of numbers per model"),
    "a negative segment": ("models: ['f7e0c4bc']\nsegment: -1\n", "segment -1 is not a positive number"),
    "a segment that is text": ("models: ['f7e0c4bc']\nsegment: long\n", "is not a positive number"),
    "no models": ("weights: [[1]]\n", "not a demucs bag"),
    "models empty": ("models: []\n", "not a demucs bag"),
    "a model named by a path": ("models: ['../f7e0c4bc']\n", "not a demucs bag"),
    "a model named by a number": ("models: [12345678]\n", "not a demucs bag"),
    "not a mapping": ("- f7e0c4bc\n", "not a demucs bag"),
    "not yaml": ("models: [\n", "not a readable yaml file"),
    "a python object": ("models: !!python/object/apply:os.system ['touch RAN']\n", "not a readable yaml file"),
}


@pytest.mark.parametrize("name", BAD_YAML)
def test_a_bag_naming_what_is_not_there_is_refused_naming_its_yaml(tmp_path, name):
    text, says = BAD_YAML[name]
    folder = bag_folder(tmp_path, text)
    save_signed(tiny_htdemucs(), folder, "f7e0c4bc")
    message = refused(folder, says)
    assert "mybag.yaml" in message and not (folder / "RAN").exists() and not Path("RAN").exists()


def test_models_must_agree_and_be_found_once(tmp_path):
    folder = bag_folder(tmp_path, "models: ['aaaa0001', 'bbbb0002']\n")
    save_th(tiny_htdemucs(1), folder / "aaaa0001.th")
    save_th(tiny_htdemucs(2, sources=["vocals", "accompaniment"]), folder / "bbbb0002.th")
    refused(folder, r"its models disagree on their sources: \['drums', 'bass', 'other', 'vocals'\] in .*aaaa0001\.th, "
                    r"\['vocals', 'accompaniment'\] in .*bbbb0002\.th")
    os.remove(folder / "bbbb0002.th")
    save_signed(tiny_htdemucs(2), folder, "bbbb0002")
    shutil.copy(next(folder.glob("bbbb0002-*.th")), folder / "bbbb0002.th")
    refused(folder, r"model 'bbbb0002' has several files \(bbbb0002-[0-9a-f]{8}\.th, bbbb0002\.th\): keep one")


def test_a_folder_must_hold_one_bag(tmp_path):
    refused(tmp_path, "holds 0 yaml files, not one bag")
    (tmp_path / "a.yaml").write_text("models: ['x']\n")
    (tmp_path / "b.yaml").write_text("models: ['x']\n")
    refused(tmp_path, "holds 2 yaml files")
    refused(tmp_path / "missing.yaml", "missing.yaml: not a readable yaml file")
    (tmp_path / "big.yaml").write_text("#" * (2 << 20))
    refused(tmp_path / "big.yaml", "too large for a bag's yaml")


def test_a_bad_model_file_is_named(tmp_path):
    folder = bag_folder(tmp_path, "models: ['f7e0c4bc']\n")
    path = save_signed(tiny_htdemucs(), folder, "f7e0c4bc")
    shutil.move(path, folder / "f7e0c4bc-00000000.th")
    refused(folder, r"f7e0c4bc-00000000\.th: has sha256")
