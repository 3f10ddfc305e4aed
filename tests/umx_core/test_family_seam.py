"""A second model family through every entry point: the tests' waveform family
(`tests/umx_core/wave_family.py`, found through `UMX_FAMILIES`) separates through `Separator`,
`separate_file` (a long file, in bounded memory), `umx` and the catalog job, equal to demucs's
`apply_model` split written out here in numpy."""

import json
import os
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest
import soundfile as sf

from umx_core import Separator, families
from umx_core.errors import UMXError
from umx_core.pretrained import load_separator
from umx_core.stream import separate_file

PLUGIN = "tests.umx_core.wave_family"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RATE = 8000


@pytest.fixture(scope="module", autouse=True)
def plugin():
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(families.PLUGINS, PLUGIN)
        yield


@pytest.fixture(scope="module")
def model(plugin):
    import keras

    from tests.umx_core.wave_family import WaveNet

    keras.utils.set_random_seed(3)
    return WaveNet(sources=("low", "high"), segment=2048, sample_rate=RATE)


@pytest.fixture(scope="module")
def saved(model, tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("wave") / "separator")
    Separator(model, overlap=0.25).save(folder)
    return folder


def apply_model(model, mix, overlap):
    """demucs 4.1.0 `apply_model(split=True, shifts=0)` of `(channels, samples)`: segments every
    `stride`, a short one centred with its neighbours (`TensorChunk.padded`), the output trimmed to
    its centre (`center_trim`), triangle weights, the weighted sum over the weights' sum."""
    segment = model.segment
    stride = int((1 - overlap) * segment)
    weight = np.concatenate([np.arange(1, segment // 2 + 1), np.arange(segment - segment // 2, 0, -1)])
    weight = weight / weight.max()
    out = np.zeros((len(model.source_names),) + mix.shape)
    total = np.zeros(mix.shape[-1])
    for offset in range(0, mix.shape[-1], stride):
        length = min(mix.shape[-1] - offset, segment)
        delta = segment - length
        start = offset - delta // 2
        lo, hi = max(0, start), min(mix.shape[-1], start + segment)
        padded = np.pad(mix[:, lo:hi], ((0, 0), (lo - start, start + segment - hi)))
        stems = model(padded[None].astype(np.float32)).numpy()[0][..., delta // 2 : delta // 2 + length]
        out[..., offset : offset + length] += weight[:length] * stems
        total[offset : offset + length] += weight[:length]
    return out / total


def song(samples, seed=0):
    return (np.random.default_rng(seed).standard_normal((2, samples)) * 0.1).astype(np.float32)


@pytest.mark.parametrize("samples", [700, 2048, 9001])
@pytest.mark.parametrize("jit", [True, False])
def test_separator_equals_the_demucs_split(model, samples, jit):
    mix = song(samples, samples)
    separator = Separator(model, overlap=0.25, jit_compile=jit)
    assert separator.family.name == "wave" and separator.sources == ["low", "high"]
    np.testing.assert_allclose(separator(mix[None])[0], apply_model(model, mix, 0.25), atol=1e-5)
    other = Separator(model, overlap=0.5, targets=["high"])
    np.testing.assert_allclose(other(mix[None])[0], apply_model(model, mix, 0.5)[1:], atol=1e-5)


def test_saved_form_names_its_family_and_loads_back(model, saved):
    with open(os.path.join(saved, "separator.json")) as f:
        config = json.load(f)
    assert config["family"] == "wave" and config["overlap"] == 0.25
    mix = song(5000, 1)
    loaded = load_separator(saved, targets=["low"], overlap=0.5)
    np.testing.assert_allclose(loaded(mix[None])[0], apply_model(model, mix, 0.5)[:1], atol=1e-5)
    with pytest.raises(UMXError, match="niter: the wave family has no such setting"):
        load_separator(saved, niter=3)  # a UMX setting away from its default
    assert load_separator(saved, niter=1, wiener_win_len=300).sources == ["low", "high"]  # the commands' defaults


def test_a_family_nobody_registered_is_refused(saved, tmp_path, monkeypatch):
    import shutil

    folder = str(tmp_path / "other")
    shutil.copytree(saved, folder)
    with open(os.path.join(folder, "separator.json")) as f:
        config = json.load(f)
    with open(os.path.join(folder, "separator.json"), "w") as f:
        json.dump({**config, "family": "nobody"}, f)
    with pytest.raises(UMXError, match="unknown model family 'nobody'.*UMX_FAMILIES"):
        load_separator(folder)


@pytest.mark.parametrize("module, problem", [("tests.no_such_family", "cannot be imported"),
                                             ("tests.umx_core.pth_files", "defines no FAMILY")])
def test_a_family_module_that_is_not_one_is_named(model, monkeypatch, module, problem):
    monkeypatch.setenv(families.PLUGINS, f"{PLUGIN},{module}")
    with pytest.raises(UMXError, match=f"'{module}' \\(FAMILIES or UMX_FAMILIES\\) {problem}"):
        Separator(model)


def test_a_long_file_streams_in_bounded_memory(model, saved, tmp_path):
    minutes = 4
    mix = song(minutes * 60 * RATE, 2)
    path = str(tmp_path / "long.wav")
    sf.write(path, mix.T, RATE, subtype="FLOAT")
    separator = load_separator(saved)
    tracemalloc.start()
    result = separate_file(path, str(tmp_path / "out"), separator)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    stems_bytes = 2 * mix.nbytes
    assert peak < stems_bytes / 20, (peak, stems_bytes)  # a few segments, never the track
    expected = separator(mix[None])[0]
    for k, name in enumerate(["low", "high"]):
        written, rate = sf.read(result.stems[name], dtype="float32")
        assert rate == RATE
        np.testing.assert_allclose(written.T, expected[k], atol=1e-5)


def test_umx_command(model, saved, tmp_path):
    from umx_core.cli.main import main

    mix = song(12000, 4)
    sf.write(str(tmp_path / "a.wav"), mix.T, RATE, subtype="FLOAT")
    assert main([str(tmp_path / "a.wav"), "--model", saved, "--outdir", str(tmp_path / "out")]) == 0
    expected = apply_model(model, mix, 0.25)
    for k, name in enumerate(["low", "high"]):
        written, _ = sf.read(str(tmp_path / "out" / "a" / f"{name}.wav"), dtype="float32")
        np.testing.assert_allclose(written.T, expected[k], atol=1e-5)
    assert main([str(tmp_path / "a.wav"), "--model", saved, "--niter", "2", "--outdir", str(tmp_path / "x")]) == 2


def test_catalog_job(model, saved, tmp_path):
    inputs = str(tmp_path / "catalog")
    os.makedirs(inputs)
    mixes = {f"t{k}": song(6000 + 3000 * k, 10 + k) for k in range(2)}
    for name, mix in mixes.items():
        sf.write(os.path.join(inputs, f"{name}.wav"), mix.T, RATE, subtype="FLOAT")
    output = str(tmp_path / "stems")
    env = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "",
           families.PLUGINS: PLUGIN}
    proc = subprocess.run([sys.executable, "-m", "pipelines.separate_catalog", "--input", os.path.join(inputs, "*.wav"),
                           "--output", output, "--model", saved, "--codec", "wav", "--run_id", "wave"],
                          env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    for name, mix in mixes.items():
        with open(os.path.join(output, name, "separation.json")) as f:
            record = json.load(f)
        assert sorted(record["stems"]) == ["high", "low"]
        expected = apply_model(model, mix, 0.25)
        for k, stem in enumerate(["low", "high"]):
            written, _ = sf.read(os.path.join(output, name, f"{stem}.wav"), dtype="float32")
            np.testing.assert_allclose(written.T, expected[k], atol=1e-5)
