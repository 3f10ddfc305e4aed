"""The persistent XLA cache (umx_core/xla_cache.py): a second run compiles nothing new."""

import glob
import os
import subprocess
import sys

import numpy as np
import soundfile as sf

from tests.conftest import random_filters
from umx_core import Separator
from umx_core.cli import xla_cache

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def test_enable_sets_the_flag_once_and_can_be_turned_off(monkeypatch, tmp_path):
    monkeypatch.delenv("TF_XLA_FLAGS", raising=False)
    monkeypatch.setenv("UMX_XLA_CACHE", str(tmp_path / "xla"))
    assert xla_cache.enable() == str(tmp_path / "xla") and os.path.isdir(tmp_path / "xla")
    assert os.environ["TF_XLA_FLAGS"] == f"{xla_cache.FLAG}={tmp_path / 'xla'}"
    assert xla_cache.enable() == str(tmp_path / "xla")  # a flag already given is kept, not repeated
    assert os.environ["TF_XLA_FLAGS"].count(xla_cache.FLAG) == 1
    monkeypatch.setenv("TF_XLA_FLAGS", "--tf_xla_auto_jit=2")
    monkeypatch.setenv("UMX_XLA_CACHE", "off")
    assert xla_cache.enable() is None and os.environ["TF_XLA_FLAGS"] == "--tf_xla_auto_jit=2"


def test_a_second_run_reuses_every_compiled_program(tmp_path):
    model = str(tmp_path / "model")
    Separator(random_filters(("vocals", "drums")), niter=1, sample_rate=8000, n_fft=256, n_hop=64,
              wiener_win_len=20, context=4).save(model)
    song = str(tmp_path / "song.wav")
    sf.write(song, (np.random.default_rng(0).standard_normal((16000, 2)) * 0.1).astype(np.float32), 8000)
    env = {**os.environ, "PYTHONPATH": REPO, "UMX_XLA_CACHE": str(tmp_path / "xla")}
    env.pop("TF_XLA_FLAGS", None)
    runs = []
    for k in range(2):
        out = str(tmp_path / f"out{k}")
        proc = subprocess.run([sys.executable, "-m", "umx_core", song, "--model", model, "--outdir", out],
                              env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        runs.append((sorted(glob.glob(str(tmp_path / "xla" / "*"))), sf.read(f"{out}/song/vocals.wav")[0]))
    (first, stems), (second, again) = runs
    assert first and all(name.endswith(".pb") for name in first)  # the first run filled the cache
    assert second == first  # the second compiled nothing new: every program came from the cache
    np.testing.assert_array_equal(stems, again)
