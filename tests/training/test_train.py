"""Training: strategies, resume after a kill, schedules, gs:// output, exports.

Tiny models on tiny synthetic data (8 kHz, 2 s tracks). Runs that need their own TF runtime
(logical CPU devices, TF_CONFIG clusters, SIGKILL) are subprocesses of the real CLI.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from openunmix.utils import EarlyStopping as ReferenceEarlyStopping

from training import checkpoint
from training import config as configuration
from training import export
from training.synthesize import synthesize
from training.train import Trainer
from training.train import main as train_main
from umx_core import storage
from umx_core.errors import UMXError
from umx_core.pretrained import load_separator

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RATE = 8000
TINY = dict(targets=["vocals", "drums"], sample_rate=RATE, n_fft=256, n_hop=64, hidden_size=16, nb_layers=1,
            seq_duration=1.0, samples_per_track=4, batch_size=4, valid_seconds=1.0, audio_examples=1,
            audio_seconds=1.0)


def flags(**overrides):
    out = []
    for key, value in {**TINY, **overrides}.items():
        flag = "--" + key.replace("_", "-")
        out += [flag, *map(str, value)] if isinstance(value, list) else [flag, str(value)]
    return out


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("train-data"))
    synthesize(out, tracks=5, targets=["vocals", "drums", "bass"], duration=2.0, rate=RATE, seed=5)
    return out


def run_cli(args, env=None, check=True, **popen):
    """`python -m training.train ARGS` in a fresh interpreter; returns the CompletedProcess.

    `env` replaces the environment (default: this one with TensorFlow's info lines off)."""
    env = {**({**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"} if env is None else env), "PYTHONPATH": REPO,
           "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, "-m", "training.train", *args], env=env, capture_output=True, text=True,
                          timeout=600, **popen)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def weights(folder):
    return checkpoint.read(folder)[1]


def assert_same_arrays(a, b, rtol=0.0):
    assert sorted(a) == sorted(b)
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=rtol, atol=rtol * 1e-3, err_msg=key)


def trainer(data, output, **overrides):
    config = configuration.resolve(None, root=data, **{**TINY, **overrides})
    return Trainer(config, str(output))


def test_one_epoch_mirrored_over_two_logical_cpus_exports_a_working_separator(data, tmp_path):
    out = tmp_path / "run"
    proc = run_cli(["--root", data, "--output", str(out), "--cpu-replicas", "2", "--epochs", "1", *flags()])
    assert "2 replica(s)" in proc.stdout and "epoch 1:" in proc.stdout
    config = json.loads((out / "config.json").read_text())
    assert config["interferers"] == ["bass"] and config["code_version"]
    mixture = np.random.default_rng(0).standard_normal((1, 2, RATE)).astype(np.float32) * 0.1
    keras_sep, saved_sep = load_separator(str(out / "separator")), load_separator(str(out / "saved_model"))
    assert keras_sep.targets == saved_sep.targets == ["vocals", "drums"] and keras_sep.niter == 1
    a, b = np.asarray(keras_sep(mixture)), np.asarray(saved_sep(mixture))
    assert a.shape == (1, 2, 2, RATE) and np.isfinite(a).all() and np.abs(a).max() > 0
    np.testing.assert_allclose(a, b, atol=1e-6)
    # the export holds the best checkpoint's weights and its training configuration
    best = weights(str(out / "checkpoints" / "best"))
    exported = keras_sep.model.joint.get_weights()
    for k, w in enumerate(exported):
        np.testing.assert_array_equal(w, best[f"model_{k:04d}"])
    assert json.loads((out / "separator" / "separator.json").read_text())["training"]["hidden_size"] == 16
    assert list((out / "logs").iterdir()), "no TensorBoard events"


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_multi_worker_mirrored_two_workers_end_with_identical_weights(data, tmp_path):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    env = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    procs = []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        args = ["--root", data, "--output", str(tmp_path / "run"), "--workdir", str(tmp_path / f"worker{index}"),
                "--max-steps", "5", "--checkpoint-steps", "5", *flags()]
        procs.append(subprocess.Popen([sys.executable, "-m", "training.train", *args], text=True,
                                      env={**env, "TF_CONFIG": tf_config},
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    for p, text in zip(procs, outputs):
        assert p.returncode == 0, text
    assert "2 replica(s)" in outputs[0]
    chief, other = weights(str(tmp_path / "run" / "checkpoints" / "latest")), \
        weights(str(tmp_path / "worker1" / "checkpoints" / "latest"))
    assert_same_arrays(chief, other)
    state = json.loads((tmp_path / "run" / "checkpoints" / "latest" / "state.json").read_text())
    assert state["global_step"] == 5
    # training moved the weights away from the initial ones
    initial = trainer(data, tmp_path / "init").model.get_weights()
    assert any(not np.allclose(w, chief[f"model_{k:04d}"]) for k, w in enumerate(initial))


def test_kill_and_resume_continues_with_the_same_state(data, tmp_path):
    # long epochs (excerpts wrap around the tracks), so the run is mostly steps, not validation
    args = ["--root", data, *flags(checkpoint_steps=10, steps_per_epoch=60, audio_examples=0), "--max-steps", "200"]
    reference = tmp_path / "uninterrupted"
    run_cli(["--output", str(reference), *args])
    killed = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    # --auto-resume, as a restarted Vertex AI job runs: afresh the first time, resumed after the kill
    proc = subprocess.Popen([sys.executable, "-m", "training.train", "--output", str(killed), "--auto-resume", *args],
                            env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state_path = killed / "checkpoints" / "latest" / "state.json"
    deadline = time.time() + 300
    while not state_path.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "training ended before it could be killed"
    saved = checkpoint.read(str(killed / "checkpoints" / "latest"))[0]["global_step"]
    assert 0 < saved < 200
    resumed = run_cli(["--output", str(killed), "--auto-resume", *args])
    assert f"resumed from {killed / 'checkpoints' / 'latest'}: epoch" in resumed.stdout
    assert f"step {saved}" in resumed.stdout
    final = weights(str(killed / "checkpoints" / "latest"))
    expected = weights(str(reference / "checkpoints" / "latest"))
    assert any(k.startswith("optimizer_") for k in final)
    assert_same_arrays(final, expected, rtol=1e-5)
    a = json.loads((killed / "checkpoints" / "latest" / "state.json").read_text())
    b = json.loads((reference / "checkpoints" / "latest" / "state.json").read_text())
    for key in ("epoch", "step_in_epoch", "global_step", "plateau", "early_stopping", "lr"):
        assert a[key] == pytest.approx(b[key], rel=1e-5), key


def test_a_bare_resume_continues_the_saved_run_and_given_flags_override_it(data, tmp_path, capsys):
    out = str(tmp_path / "run")
    latest = os.path.join(out, "checkpoints", "latest")
    first = ["--root", data, *flags(epochs=3, steps_per_epoch=2, audio_examples=0, patience=7, speed_range=[0.9, 1.1])]
    assert train_main(["--output", out, *first, "--max-steps", "1"]) == 0
    saved = checkpoint.read(latest)[0]["config"]
    assert saved["speed_range"] == [0.9, 1.1]
    assert train_main(["--output", out, "--resume", "--max-steps", "2"]) == 0
    state = checkpoint.read(latest)[0]
    assert state["global_step"] == 2 and state["config"] == saved  # not the defaults laid over it
    # a flag the user gives overrides the saved run, and the loop uses it
    assert train_main(["--output", out, "--resume", "--epochs", "5", "--patience", "2", "--max-steps", "3"]) == 0
    state = checkpoint.read(latest)[0]
    assert state["config"] == {**saved, "epochs": 5, "patience": 2}
    assert state["early_stopping"]["patience"] == 2
    # a flag that would change the weights or the data stream is refused, named
    for wrong in (["--hidden-size", "32"], ["--targets", "vocals"], ["--batch-size", "8"], ["--speed-range"]):
        assert train_main(["--output", out, "--resume", *wrong]) == 2
        error = capsys.readouterr().err
        assert f"error: {wrong[0]} " in error and "--epochs" in error, error
    # a restarted job repeats its whole command: equal values pass, --auto-resume behaves the same
    assert train_main(["--output", out, "--auto-resume", *first, "--max-steps", "4"]) == 0
    state = checkpoint.read(latest)[0]
    assert state["global_step"] == 4 and state["config"] == saved
    assert train_main(["--output", out, "--auto-resume", "--n-fft", "512"]) == 2
    assert "error: --n-fft 512" in capsys.readouterr().err


def test_the_run_folder_holds_its_best_model_while_training_and_checkpoints_export(data, tmp_path, monkeypatch):
    out = tmp_path / "run"
    t = trainer(data, out, epochs=3, steps_per_epoch=1, audio_examples=0)
    t.max_steps = 2  # one validated epoch, then a step of the next: killed before the end-of-run export
    t.run()
    assert (out / "separator" / "separator.json").exists() and not (out / "saved_model").exists()
    best, latest = out / "checkpoints" / "best", out / "checkpoints" / "latest"
    during = load_separator(str(out))
    for k, w in enumerate(during.model.joint.get_weights()):
        np.testing.assert_array_equal(w, weights(str(best))[f"model_{k:04d}"])
    assert not [p.name for p in out.iterdir() if p.name.endswith((".tmp", ".old"))]
    # a checkpoint is training's format, not a model: the error names the run folder to pass
    for folder in (best, latest):
        with pytest.raises(UMXError, match=f"not a model; it is inside {out}, which holds one: pass {out}"):
            load_separator(str(folder))
    # ... and `training.export` turns any checkpoint into a model folder
    assert export.main([str(latest), "--out", str(tmp_path / "latest-model"), "--no-saved-model"]) == 0
    from_latest = load_separator(str(tmp_path / "latest-model"))
    assert from_latest.targets == ["vocals", "drums"] and from_latest.niter == 1
    for k, w in enumerate(from_latest.model.joint.get_weights()):
        np.testing.assert_array_equal(w, weights(str(latest))[f"model_{k:04d}"])
    export.export_checkpoint(str(best), str(tmp_path / "best-model"), saved_model=False)
    mixture = np.random.default_rng(1).standard_normal((1, 2, RATE)).astype(np.float32) * 0.1
    np.testing.assert_allclose(load_separator(str(tmp_path / "best-model"))(mixture), during(mixture), atol=1e-6)

    # a write killed half-way leaves the previous model in place, loadable
    from umx_core.separator import Separator

    def killed_midway(self, path, metadata=None):
        os.makedirs(path, exist_ok=True)
        with open(os.path.join(path, "model.keras"), "wb") as f:
            f.write(b"PK\3\4 half a zip")
        with open(os.path.join(path, "separator.json"), "w") as f:
            f.write("{}")
        np.testing.assert_allclose(load_separator(str(out))(mixture), during(mixture), atol=1e-6)  # at the kill
        raise KeyboardInterrupt

    monkeypatch.setattr(Separator, "save", killed_midway)
    with pytest.raises(KeyboardInterrupt):
        export.export_filters(t.model.filters, t.config, RATE, str(out), saved_model=False)
    np.testing.assert_allclose(load_separator(str(out))(mixture), during(mixture), atol=1e-6)


NATIVE_LOG = re.compile(r"^[IWEF]\d{4} |absl::InitializeLog|oneDNN", re.MULTILINE)


def test_the_command_prints_our_words_and_tensorflows_only_with_verbose(data, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # as a user's shell has it
    args = ["--root", data, *flags(targets=["vocals"], audio_examples=0), "--max-steps", "1"]
    quiet = run_cli(["--output", str(tmp_path / "quiet"), *args], env=env)
    assert "stopped after 1 steps" in quiet.stdout
    assert not NATIVE_LOG.search(quiet.stderr), quiet.stderr
    verbose = run_cli(["--output", str(tmp_path / "verbose"), *args, "--verbose"], env=env)
    assert NATIVE_LOG.search(verbose.stderr), verbose.stderr  # the check above can see them


def test_loss_falls_on_a_learnable_task(data, tmp_path):
    t = trainer(data, tmp_path / "run", targets=["vocals"], epochs=6, lr=0.01, gain_range=[], channel_swap=False,
                samples_per_track=8)
    history = t.run()
    first, last = history[0], history[-1]
    assert last["train_loss"] < 0.5 * first["train_loss"], [h["train_loss"] for h in history]
    assert last["valid_loss"] < first["valid_loss"]
    # the trainer streams the configured speed augmentation, and it reaches the data it reads
    sped = trainer(data, tmp_path / "sped", speed_range=[0.9, 1.1]).train_set
    assert sped.speed_range == (0.9, 1.1) and {c[-1] for c in sped.plan(0, 0)} != {1.0}


def test_lr_decay_and_early_stopping_follow_the_references(data, tmp_path, monkeypatch):
    scripted = [1.0, 0.8, 0.81, 0.82, 0.79, 0.80, 0.80, 0.80, 0.80, 0.80, 0.80, 0.80]
    t = trainer(data, tmp_path / "run", epochs=len(scripted), steps_per_epoch=1, lr=0.01, patience=4,
                lr_decay_patience=1, lr_decay_gamma=0.5, lr_decay_cooldown=1, audio_examples=0)
    calls = iter(scripted)
    monkeypatch.setattr(t, "validate", lambda: np.array([next(calls), 0.0]))
    history = t.run()
    # the same curve through torch's scheduler and openunmix's early stopping
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([param], lr=0.01)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=1, cooldown=1)
    stopper, lrs, epochs = ReferenceEarlyStopping(patience=4), [], 0
    for loss in scripted:
        lrs.append(optimizer.param_groups[0]["lr"])
        scheduler.step(loss)
        epochs += 1
        if stopper.step(torch.tensor(loss)):
            break
    assert len(history) == epochs < len(scripted)
    assert [h["lr"] for h in history] == pytest.approx(lrs)
    assert min(lrs) < 0.01  # the decay did happen
    assert os.path.exists(tmp_path / "run" / "separator" / "separator.json")  # stopping early still exports


def test_gcs_dataset_and_output_then_resume(data, tmp_path, gcs_emulator):
    root = f"gs://{gcs_emulator}/train-data"
    storage.upload_dir(data, root)
    output = f"gs://{gcs_emulator}/runs/tiny"
    first = trainer(root, output, epochs=2)
    first.max_steps = 3
    first.run()
    state = json.loads(storage.read_bytes(f"{output}/checkpoints/latest/state.json"))
    assert state["global_step"] == 3
    config = configuration.resolve(None, root=root, **{**TINY, "epochs": 2})
    resumed = Trainer(config, output, workdir=str(tmp_path / "work"), resume=True)
    assert resumed.state["global_step"] == 3
    resumed.run()
    for name in ("separator/separator.json", "separator/model.keras", "saved_model/saved_model.pb",
                 "checkpoints/best/state.json", "config.json"):
        assert storage.exists(f"{output}/{name}"), name
    separator = load_separator(f"{output}/separator")
    assert np.isfinite(np.asarray(separator(np.full((1, 2, RATE), 0.1, np.float32)))).all()
    state = json.loads(storage.read_bytes(f"{output}/checkpoints/latest/state.json"))
    assert state["epoch"] == 2 and state["global_step"] == 2 * resumed.steps_per_epoch


def test_damaged_checkpoints_are_refused(data, tmp_path):
    t = trainer(data, tmp_path / "run")
    t.max_steps = 1
    t.run()
    latest = tmp_path / "run" / "checkpoints" / "latest"
    with open(latest / "weights.npz", "r+b") as f:
        f.seek(100)
        f.write(b"\0" * 16)
    with pytest.raises(UMXError, match="weights.npz: does not match the digest"):
        checkpoint.read(str(latest))
    with pytest.raises(UMXError, match="no checkpoint"):
        checkpoint.read(str(tmp_path / "nothing"))
    other = trainer(data, tmp_path / "other", hidden_size=8)
    arrays = weights_of(t)
    with pytest.raises(UMXError, match="do not fit this model"):
        checkpoint.restore(arrays, other.model, other.optimizer, "src")


def weights_of(t):
    arrays = {f"model_{i:04d}": w for i, w in enumerate(t.model.get_weights())}
    arrays.update({f"optimizer_{i:04d}": v.numpy() for i, v in enumerate(t.optimizer.variables)})
    return arrays


def test_the_xla_compiled_step_gives_the_same_gradients_as_the_plain_one(data, tmp_path):
    # two LSTM layers, dropout off, so both programs compute the same function
    plain = trainer(data, tmp_path / "a", nb_layers=2, jit_compile=False)
    compiled = trainer(data, tmp_path / "b", nb_layers=2, jit_compile=True)
    for f in list(plain.model.filters.values()) + list(compiled.model.filters.values()):
        f.lstm.dropout = 0.0
    compiled.model.set_weights(plain.model.get_weights())
    mixture, stems = next(iter(plain.train_set.dataset(0).batch(4)))
    loss_a, grads_a = plain.gradients(mixture, stems)
    loss_b, grads_b = compiled.gradients(mixture, stems)
    np.testing.assert_allclose(loss_b.numpy(), loss_a.numpy(), rtol=1e-4)
    assert len(grads_a) == len(grads_b) > 0
    for a, b in zip(grads_a, grads_b):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-3, atol=1e-6)


def test_the_training_loss_is_open_unmixs_mse_of_magnitudes_computed_with_numpy(data, tmp_path):
    """The loss the step optimizes, against a formula written here in numpy: per target, the mean
    over frames, bins and channels of (estimate - |STFT(stem)|)^2, the STFT uncentred with a
    periodic Hann window (open-unmix's training transform), the estimate the model's output for the
    mixture's magnitude; the step sums the targets and averages the batch."""
    t = trainer(data, tmp_path / "a", nb_layers=1)
    mixture, stems = (x.numpy() for x in next(iter(t.train_set.dataset(0).batch(2))))
    n_fft, hop = t.config["n_fft"], t.config["n_hop"]
    window = np.hanning(n_fft + 1)[:-1]

    def magnitude(audio):  # (..., channels, samples) -> (..., frames, bins, channels)
        frames = 1 + (audio.shape[-1] - n_fft) // hop
        cut = np.stack([audio[..., f * hop: f * hop + n_fft] for f in range(frames)], axis=-2)
        return np.moveaxis(np.abs(np.fft.rfft(cut * window, axis=-1)), -3, -1)

    estimates = t.model(magnitude(mixture).astype(np.float32), training=False).numpy()
    expected = ((estimates - magnitude(stems)) ** 2).mean(axis=(2, 3, 4))  # (batch, targets)
    np.testing.assert_allclose(t.losses(mixture, stems).numpy(), expected, rtol=2e-4, atol=1e-7)
    assert expected.min() > 0
