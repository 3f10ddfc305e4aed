"""Hybrid Transformer Demucs through every entry point, against demucs's own `apply_model` on the same
(random) weights: the `Separator` (split, overlap, shifts, a bag, targets, residual), checkpoints demucs
wrote (`.th`, safetensors, a bag's folder) through `load_separator`, save and load, a long file
streamed, `umx --model htdemucs_6s` and the catalog job with `--model htdemucs` (a checkpoint the test
wrote standing in for the download)."""

import dataclasses
import hashlib
import json
import os
import random
from fractions import Fraction

import numpy as np
import pytest
import soundfile as sf
import torch
from demucs.apply import BagOfModels, apply_model
from demucs.htdemucs import HTDemucs

from tests.umx_core.demucs_checkpoints import SOURCES, save_safetensors, save_th
from umx_core import registry
from umx_core.errors import UMXError
from umx_core.pretrained import load_separator
from umx_core.stream import separate_file

RATE = 44100
SIX = ["drums", "bass", "other", "vocals", "guitar", "piano"]
SMALL = {"segment": Fraction(1, 2), "nfft": 1024, "depth": 2, "channels": 8, "t_layers": 2, "t_heads": 2}


def reference_model(seed=0, sources=None, **changes):
    """A small demucs HTDemucs (half-second segments at 44.1 kHz) with its LayerScales made large
    (fresh ones are 1e-4, which would hide the transformer and DConv branches)."""
    torch.manual_seed(seed)
    model = HTDemucs(sources=list(sources or SOURCES), **{**SMALL, **changes})
    with torch.no_grad():
        for name, value in model.named_parameters():
            if name.endswith(".scale"):
                value.uniform_(0.2, 1.0)
        for value in model.state_dict().values():  # as a checkpoint keeps them: float16
            value.copy_(value.half().float())
    return model.eval()


def snr(reference, estimate):
    reference, estimate = np.asarray(reference, np.float64), np.asarray(estimate, np.float64)
    return 10 * np.log10(np.sum(reference ** 2) / np.sum((reference - estimate) ** 2))


def demucs_stems(model, mix, shifts=0, offsets=(), overlap=0.25):
    """demucs's `apply_model(split=True)` of `(channels, samples)`, its shifts' offsets given."""
    draws = iter(offsets)
    original, random.randint = random.randint, lambda lo, hi: next(draws)
    try:
        with torch.no_grad():
            return apply_model(model, torch.from_numpy(mix[None]), shifts=shifts, split=True, overlap=overlap)[0].numpy()
    finally:
        random.randint = original


def song(samples, seed=0):
    return (np.random.default_rng(seed).standard_normal((2, samples)) * 0.1).astype(np.float32)


@pytest.fixture(scope="module")
def four(tmp_path_factory):
    """(torch model, its .th path)."""
    model = reference_model(0)
    return model, save_th(model, tmp_path_factory.mktemp("four") / "955717e8-x.th")


@pytest.fixture(scope="module")
def six(tmp_path_factory):
    model = reference_model(1, sources=SIX)
    return model, save_th(model, tmp_path_factory.mktemp("six") / "six.th")


@pytest.mark.parametrize("samples", [15000, 50000])
def test_separator_equals_apply_model(four, samples):
    mix = song(samples, samples)
    separator = load_separator(four[1], shifts=0)
    assert separator.family.name == "htdemucs" and separator.sources == ["drums", "bass", "other", "vocals"]
    ours, theirs = separator(mix[None])[0], demucs_stems(four[0], mix)
    assert min(snr(theirs[k], ours[k]) for k in range(4)) > 80


def test_shifts_are_demucs_shifts_with_the_tracks_own_delays(four):
    mix = song(40000, 3)
    separator = load_separator(four[1], shifts=2, overlap=0.5)
    delays = separator.engine.geometry.delays(mix.shape[-1])
    theirs = demucs_stems(four[0], mix, shifts=2, offsets=[RATE // 2 - d for d in delays], overlap=0.5)
    ours = separator(mix[None])[0]
    assert min(snr(theirs[k], ours[k]) for k in range(4)) > 80
    np.testing.assert_array_equal(ours, load_separator(four[1], shifts=2, overlap=0.5)(mix[None])[0])  # a rerun


def test_a_bag_weights_each_source(tmp_path):
    models = [reference_model(5), reference_model(6)]
    weights = [[1.0, 0.0, 1.0, 0.5], [0.0, 1.0, 1.0, 1.0]]
    folder = tmp_path / "bag"
    folder.mkdir()
    for sig, model in zip(["aaaa", "bbbb"], models):
        save_safetensors(model, folder / f"{sig}.safetensors")
    (folder / "mybag.yaml").write_text(f"models: ['aaaa', 'bbbb']\nweights: {json.dumps(weights)}\n")
    mix = song(30000, 4)
    separator = load_separator(str(folder), shifts=0)
    theirs = demucs_stems(BagOfModels(models, weights), mix)
    ours = separator(mix[None])[0]
    assert min(snr(theirs[k], ours[k]) for k in range(4)) > 80
    assert len(separator.engine.program.runner.programs) == 2  # the bag's models run as their own groups


def test_targets_residual_and_five_stems_from_six(six):
    model, path = six
    mix = song(25000, 5)
    theirs = demucs_stems(model, mix)
    separator = load_separator(path, targets=["vocals"], residual=True, shifts=0)
    assert separator.sources == ["vocals", "residual"]
    ours = separator(mix[None])[0]
    assert snr(theirs[3], ours[0]) > 80
    assert snr(theirs[[0, 1, 2, 4, 5]].sum(0), ours[1]) > 80  # demucs's --two-stems: the other sources' sum
    five = {"vocals": ["vocals"], "bass": ["bass"], "drums": ["drums"], "guitar": ["guitar"], "other": ["other", "piano"]}
    stems = load_separator(path, shifts=0).to_dict(load_separator(path, shifts=0)(mix[None]), five)
    assert sorted(stems) == sorted(five) and snr(theirs[2] + theirs[5], stems["other"][0]) > 80
    with pytest.raises(UMXError, match="niter: the htdemucs family has no such setting"):
        load_separator(path, niter=2)
    with pytest.raises(UMXError, match="no target"):
        load_separator(path, targets=["violin"])


def test_save_load_and_a_streamed_file(four, tmp_path):
    saved = str(tmp_path / "saved")
    load_separator(four[1], overlap=0.5, shifts=1).save(saved)
    with open(os.path.join(saved, "separator.json")) as f:
        config = json.load(f)
    assert config["family"] == "htdemucs" and config["overlap"] == 0.5 and config["shifts"] == 1
    mix = song(RATE * 3, 6)
    path = str(tmp_path / "song.wav")
    sf.write(path, mix.T, RATE, subtype="FLOAT")
    separator = load_separator(saved)
    expected = load_separator(four[1], overlap=0.5, shifts=1)(mix[None])[0]
    result = separate_file(path, str(tmp_path / "out"), separator)
    for k, name in enumerate(separator.sources):
        written, _ = sf.read(result.stems[name], dtype="float32")
        np.testing.assert_allclose(written.T, expected[k], atol=2e-5)


@pytest.fixture
def published(tmp_path, monkeypatch):
    """`publish(name, model)`: the test's model as the published checkpoint of `name`, served from
    loopback under a name carrying its own digest (the registry's entry points there)."""
    from tests.umx_core.test_registry import Server

    served = tmp_path / "served"
    served.mkdir()
    server = Server(str(served))
    monkeypatch.setenv("UMX_CACHE", str(tmp_path / "cache"))

    def publish(name, model):
        path = served / "model.th"
        save_th(model, path)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:8]
        path.rename(served / f"{name}-{digest}.th")
        entry = registry.PUBLISHED_DEMUCS[name]
        monkeypatch.setitem(registry.PUBLISHED_DEMUCS, name, dataclasses.replace(
            entry, files=[(f"{server.url}{name}-{digest}.th", digest)]))

    yield publish
    server.close()


def test_umx_command_with_htdemucs_6s(six, published, tmp_path):
    from umx_core.cli.main import main

    published("htdemucs_6s", six[0])
    mix = song(30000, 7)
    sf.write(str(tmp_path / "song.wav"), mix.T, RATE, subtype="FLOAT")
    assert main([str(tmp_path / "song.wav"), "--model", "htdemucs_6s", "--shifts", "0",
                 "--outdir", str(tmp_path / "out")]) == 0
    theirs = demucs_stems(six[0], mix)
    for k, name in enumerate(SIX):
        written, _ = sf.read(str(tmp_path / "out" / "song" / f"{name}.wav"), dtype="float32")
        assert snr(theirs[k], written.T) > 80, name


def test_catalog_job_with_htdemucs(four, published, tmp_path):
    from pipelines.catalog import main

    published("htdemucs", four[0])
    inputs = tmp_path / "catalog"
    inputs.mkdir()
    mixes = {f"t{k}": song(20000 + 9000 * k, 10 + k) for k in range(2)}
    for name, mix in mixes.items():
        sf.write(str(inputs / f"{name}.wav"), mix.T, RATE, subtype="FLOAT")
    output = str(tmp_path / "stems")
    assert main(["--input", str(inputs / "*.wav"), "--output", output, "--model", "htdemucs", "--codec", "wav",
                 "--shifts", "0", "--run_id", "ht"]) == 0
    for name, mix in mixes.items():
        with open(os.path.join(output, name, "separation.json")) as f:
            record = json.load(f)
        assert sorted(record["stems"]) == sorted(SOURCES)
        theirs = demucs_stems(four[0], mix)
        for k, stem in enumerate(SOURCES):
            written, _ = sf.read(os.path.join(output, name, f"{stem}.wav"), dtype="float32")
            assert snr(theirs[k], written.T) > 80, (name, stem)


def test_a_checkpoint_other_than_htdemucs_is_named(tmp_path):
    path = tmp_path / "x.th"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(UMXError, match="x.th"):
        load_separator(str(path))


def test_bfloat16_runs_in_graph_mode_on_a_cpu(four):
    """XLA's CPU code has no bfloat16 products: the family runs bfloat16 in graph mode (oneDNN), float32 in XLA."""
    mix = song(20000, 8)
    exact = load_separator(four[1], shifts=0)
    assert exact.jit_compile is True
    fast = load_separator(four[1], shifts=0, precision="bfloat16")
    assert fast.jit_compile is False and fast.precision == "bfloat16"
    ours, reference = fast(mix[None])[0], exact(mix[None])[0]
    assert ours.dtype == np.float32 and 15 < min(snr(reference[k], ours[k]) for k in range(4)) < 80
