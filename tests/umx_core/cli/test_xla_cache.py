"""`umx`'s persistent XLA cache (umx_core/cli/xla_cache.py): a second run compiles nothing new, and
nothing compiled under other settings, on another CPU or by another TensorFlow is loaded."""

import glob
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import random_filters
from umx_core import Separator
from umx_core.cli import xla_cache

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
NATIVE = re.compile(r"^[IWEF]\d{4} |cpu_aot_loader|XlaSerializedCacheEntry|SIGILL", re.M)  # TensorFlow's own lines


def test_the_flags_hold_inside_the_block_only(monkeypatch, tmp_path):
    """Set for the TensorFlow started inside, then as they were: a process started later (the
    catalog job from a test or a script that ran `umx` in-process) inherits no cache."""
    monkeypatch.delenv("TF_XLA_FLAGS", raising=False)
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    monkeypatch.setenv("UMX_XLA_CACHE", str(tmp_path / "xla"))
    with xla_cache.enabled() as path:
        assert path == str(tmp_path / "xla" / xla_cache.machine_key()) and os.path.isdir(path)
        assert os.environ["TF_XLA_FLAGS"] == f"{xla_cache.FLAG}={path}"
        assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "3"  # XLA's false warning on each loaded program
    assert "TF_XLA_FLAGS" not in os.environ and os.environ["TF_CPP_MIN_LOG_LEVEL"] == "2"
    with xla_cache.enabled(verbose=True) as path:  # TensorFlow's lines asked for: no cache
        assert path is None and "TF_XLA_FLAGS" not in os.environ and os.environ["TF_CPP_MIN_LOG_LEVEL"] == "2"
    monkeypatch.setenv("TF_XLA_FLAGS", f"--tf_xla_auto_jit=2 {xla_cache.FLAG}={tmp_path / 'own'}")
    with xla_cache.enabled() as path:  # a folder the user named is kept, not repeated
        assert path == str(tmp_path / "own") and os.environ["TF_XLA_FLAGS"].count(xla_cache.FLAG) == 1
    monkeypatch.setenv("TF_XLA_FLAGS", "--tf_xla_auto_jit=2")
    monkeypatch.setenv("UMX_XLA_CACHE", "off")
    with xla_cache.enabled() as path:
        assert path is None and os.environ["TF_XLA_FLAGS"] == "--tf_xla_auto_jit=2"


def test_the_folder_is_the_cpus_the_tensorflows_and_the_xla_flags(monkeypatch):
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    monkeypatch.setenv("TF_XLA_FLAGS", "--tf_xla_auto_jit=2")
    here = xla_cache.machine_key()
    assert re.fullmatch(r"tf[^/\\]+-[0-9a-f]{16}", here)
    monkeypatch.setenv("TF_XLA_FLAGS", f"--tf_xla_auto_jit=2 {xla_cache.FLAG}=/elsewhere")
    assert xla_cache.machine_key() == here  # where the cache is changes no program
    cpu, build = xla_cache.host_cpu(), xla_cache.tensorflow_build()
    monkeypatch.setattr(xla_cache, "host_cpu", lambda: cpu.replace("avx512f", "").replace("avx2", "") + " other")
    other_cpu = xla_cache.machine_key()
    monkeypatch.setattr(xla_cache, "host_cpu", lambda: cpu)
    monkeypatch.setattr(xla_cache, "tensorflow_build", lambda: (build[0], build[1] + " reinstalled"))
    other_build = xla_cache.machine_key()
    monkeypatch.setattr(xla_cache, "tensorflow_build", lambda: build)
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_enable_fast_math=true")
    fast_math = xla_cache.machine_key()
    monkeypatch.setenv("XLA_FLAGS", "")
    monkeypatch.setenv("TF_XLA_FLAGS", "")
    other_tf_flags = xla_cache.machine_key()
    assert len({here, other_cpu, other_build, fast_math, other_tf_flags}) == 5


@pytest.fixture(scope="module")
def song_and_model(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("xla")
    model = str(tmp / "model")
    Separator(random_filters(("vocals", "drums")), niter=1, sample_rate=8000, n_fft=256, n_hop=64,
              wiener_win_len=20, context=4).save(model)
    song = str(tmp / "song.wav")
    sf.write(song, (np.random.default_rng(0).standard_normal((16000, 2)) * 0.1).astype(np.float32), 8000)
    return song, model


def umx(song, model, out, cache, **env):
    """`umx` in a fresh process, as a user's shell with `TF_CPP_MIN_LOG_LEVEL=2` starts it; returns its stderr."""
    env = {**os.environ, "PYTHONPATH": REPO, "UMX_XLA_CACHE": cache, "TF_CPP_MIN_LOG_LEVEL": "2", **env}
    env.pop("TF_XLA_FLAGS", None)
    proc = subprocess.run([sys.executable, "-m", "umx_core", song, "--model", model, "--outdir", out],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


def test_a_second_run_reuses_every_compiled_program(song_and_model, tmp_path):
    song, model = song_and_model
    cache = str(tmp_path / "xla")
    runs = []
    for k in range(2):
        err = umx(song, model, str(tmp_path / f"out{k}"), cache)
        assert not NATIVE.search(err), err  # loading logs XLA's machine-feature lines: never shown
        stems = sf.read(tmp_path / f"out{k}/song/vocals.wav")[0]
        runs.append((sorted(glob.glob(os.path.join(cache, "*", "*"))), stems))
    (first, stems), (second, again) = runs
    assert first and all(name.endswith(".pb") for name in first)  # the first run filled the cache
    assert second == first  # the second compiled nothing new: every program came from the cache
    np.testing.assert_array_equal(stems, again)


def test_a_program_compiled_under_other_xla_flags_is_not_loaded(song_and_model, tmp_path):
    """TensorFlow's key is the HLO alone: without a folder of their own, the second run loaded the
    first one's fast-math programs as its own."""
    song, model = song_and_model
    cache = str(tmp_path / "xla")
    umx(song, model, str(tmp_path / "fast"), cache, XLA_FLAGS="--xla_cpu_enable_fast_math=true")
    umx(song, model, str(tmp_path / "plain"), cache, XLA_FLAGS="")
    folders = sorted(os.listdir(cache))
    assert len(folders) == 2, folders
    counts = [len(glob.glob(os.path.join(cache, name, "*.pb"))) for name in folders]
    assert counts[0] == counts[1] > 0  # each compiled and kept its own programs
