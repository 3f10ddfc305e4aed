"""Separator.save / load_separator round trips, local and on gs:// (emulator)."""

import json

import numpy as np
import pytest

import umx_core
from tests.conftest import random_openunmix_targets, state_dicts
from umx_core import storage
from umx_core.pretrained import separator_from_openunmix
from umx_core.errors import UMXError


@pytest.fixture(scope="module")
def separator():
    return separator_from_openunmix(state_dicts(random_openunmix_targets()), niter=1, residual=True,
                                    wiener_win_len=100, context=16)


def check_same(loaded, separator):
    audio = np.random.default_rng(2).standard_normal((1, 2, 5 * 44100)).astype(np.float32)
    assert loaded.config()["targets"] == separator.config()["targets"]
    for key in ("niter", "residual", "wiener_win_len", "segment", "context", "sample_rate", "n_fft"):
        assert loaded.config()[key] == separator.config()[key]
    np.testing.assert_array_equal(loaded(audio), separator(audio))


def test_local_round_trip(separator, tmp_path):
    separator.save(str(tmp_path / "sep"))
    config = json.loads((tmp_path / "sep" / "separator.json").read_text())
    assert config["code_version"].startswith(umx_core.__version__)
    check_same(umx_core.load_separator(str(tmp_path / "sep")), separator)


def test_gcs_round_trip(separator, gcs_emulator):
    path = f"gs://{gcs_emulator}/models/sep"
    separator.save(path)
    assert storage.exists(path + "/separator.json")
    check_same(umx_core.load_separator(path), separator)


def test_overrides_apply(separator, tmp_path):
    separator.save(str(tmp_path / "sep"))
    loaded = umx_core.load_separator(str(tmp_path / "sep"), niter=0, residual=False)
    assert loaded.niter == 0 and loaded.sources == ["vocals", "drums", "bass"]


def test_missing_and_corrupt_models_name_the_path(tmp_path, separator):
    message = "nowhere.: not a shipped model.*not a published model.*no such file or directory"
    with pytest.raises(UMXError, match=message):
        umx_core.load_separator(str(tmp_path / "nowhere"))
    separator.save(str(tmp_path / "sep"))
    (tmp_path / "sep" / "model.keras").write_bytes(b"garbage")
    with pytest.raises(UMXError, match="model.keras"):
        umx_core.load_separator(str(tmp_path / "sep"))
