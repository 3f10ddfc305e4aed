"""X-UMX training (`--bridge --combination-loss --time-loss-weight 10`): the loss the step minimises
against the same loss written here in numpy, and the bridged model the run exports."""

import itertools

import numpy as np
import pytest

from tests.training.test_losses import numpy_wsdr
from tests.training.test_train import RATE, data, trainer  # noqa: F401 (data: the tracks' fixture)
from training import export
from training.losses import objective
from umx_core.pretrained import load_separator

TARGETS = ["vocals", "drums", "bass"]  # three, so that the combinations hold pairs


def numpy_stft(audio, n_fft, hop):
    """Uncentred STFT with a periodic Hann window: `(..., samples)` -> complex `(..., frames, bins)`."""
    frames = 1 + (audio.shape[-1] - n_fft) // hop
    cut = np.stack([audio[..., f * hop: f * hop + n_fft] for f in range(frames)], axis=-2)
    return np.fft.rfft(cut * np.hanning(n_fft + 1)[:-1], axis=-1)


def numpy_istft(spec, n_fft, hop):
    """The inverse of `numpy_stft`: windowed inverse FFTs overlap-added, over the sum of squared windows."""
    window = np.hanning(n_fft + 1)[:-1]
    frames = spec.shape[-2]
    out, envelope = np.zeros(spec.shape[:-2] + (n_fft + hop * (frames - 1),)), np.zeros(n_fft + hop * (frames - 1))
    for f, frame in enumerate(np.moveaxis(np.fft.irfft(spec, n=n_fft, axis=-1) * window, -2, 0)):
        out[..., f * hop: f * hop + n_fft] += frame
        envelope[f * hop: f * hop + n_fft] += window ** 2
    return out / np.maximum(envelope, 1e-10)


def numpy_x_umx_loss(model, mixture, stems, n_fft, hop, weight):
    """`(combination MSE, weight x time-domain loss)` of `(batch, channels, samples)` mixtures and
    `(batch, targets, channels, samples)` stems, as X-UMX defines them, in float64 numpy."""
    mixture, stems = mixture.astype(np.float64), stems.astype(np.float64)
    spec = numpy_stft(mixture, n_fft, hop)  # (batch, channels, frames, bins)
    estimates = model(np.moveaxis(np.abs(spec), 1, -1).astype(np.float32), training=False).numpy()
    references = np.moveaxis(np.abs(numpy_stft(stems, n_fft, hop)), 2, -1)  # (batch, targets, frames, bins, ch)
    count = estimates.shape[1]
    sets = [list(s) for size in range(1, count) for s in itertools.combinations(range(count), size)]
    mse = np.mean([np.mean((estimates[:, s].sum(1) - references[:, s].sum(1)) ** 2) for s in sets])
    # each estimate with the mixture's phase, back to audio (batch, targets, channels, samples), less the
    # first and last n_fft samples (fewer windows cover them)
    phase = np.exp(1j * np.angle(spec))[:, None]  # (batch, 1, channels, frames, bins)
    audio = numpy_istft(np.moveaxis(estimates, -1, 2) * phase, n_fft, hop)[..., n_fft:-n_fft]
    span = slice(n_fft, n_fft + audio.shape[-1])
    wsdr = np.mean([numpy_wsdr(audio[:, s].sum(1), stems[:, s, :, span].sum(1), mixture[..., span]) for s in sets])
    return mse, weight * (1.0 + wsdr)


def test_x_umx_options_train_a_bridged_model_on_the_multi_domain_combination_loss(data, tmp_path):  # noqa: F811
    """The step minimises the combination MSE plus 10 times 1 + the mean weighted SDR of the target sets,
    and the run exports a bridged separator that loads and separates."""
    t = trainer(data, tmp_path / "x", targets=TARGETS, bridge=True, combination_loss=True, time_loss_weight=10.0,
                epochs=1)
    mixture, stems = next(iter(t.train_set.dataset(0).batch(2)))
    _, loss = objective(t.model, mixture, stems, t.config, training=False)
    _, spectral = objective(t.model, mixture, stems, {**t.config, "time_loss_weight": 0.0}, training=False)
    mse, time_term = numpy_x_umx_loss(t.model, mixture.numpy(), stems.numpy(), t.config["n_fft"], t.config["n_hop"],
                                      10.0)
    # each term on its own (a small one cannot hide in the sum), float32 against float64: 2e-7 and 2e-6 apart
    # when measured, held to 2e-5
    assert float(spectral) == pytest.approx(mse, rel=2e-5) and mse > 0
    assert float(loss) - float(spectral) == pytest.approx(time_term, rel=2e-5) and 0 < time_term < 20
    history = t.run()
    assert np.isfinite(history[-1]["train_loss"])
    separator = load_separator(str(tmp_path / "x" / "separator"))
    assert separator.model.joint.bridge and separator.targets == TARGETS
    audio = np.random.default_rng(3).standard_normal((1, 2, RATE)).astype(np.float32) * 0.1
    assert np.isfinite(separator(audio)).all()
    # a checkpoint exported by training.export is bridged too: the same stems as the run's model
    export.export_checkpoint(str(tmp_path / "x" / "checkpoints" / "best"), str(tmp_path / "exported"),
                             saved_model=False)
    exported = load_separator(str(tmp_path / "exported"))
    assert exported.model.joint.bridge
    np.testing.assert_allclose(exported(audio), separator(audio), atol=1e-6)
