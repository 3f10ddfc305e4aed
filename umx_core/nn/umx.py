"""UMX: the end-to-end Keras model, time-domain mixture in, time-domain stems out."""

import keras
import tensorflow as tf

from umx_core.nn.filtering import ExpectationMaximization
from umx_core.nn import PACKAGE
from umx_core.nn.model import JointSpectralFilter
from umx_core.nn.transforms import ComplexNorm, ISTFTLayer, STFTLayer
from umx_core.settings import N_FFT, N_HOP


@keras.saving.register_keras_serializable(package=PACKAGE)
class UMX(keras.Model):
    """STFT -> joint spectral filter -> EM -> ISTFT over a whole input, as open-unmix's Separator.

    Args:
        targets: target names.
        filters: optional `{target: Layer}` spectral filters; default BLSTM filters built
            from `filter_kwargs` (hidden_size, nb_layers, max_bin, ...).
        n_fft, n_hop: STFT size and hop.
        nb_channels: channels the filters take (1 for a mono model, which averages magnitudes).
        sample_rate: the rate the model was trained at (informational; no resampling here).
        niter, softmask, residual, wiener_win_len, eps: EM settings (see `ExpectationMaximization`).
        bridge: cross the targets' filters as X-UMX does (`umx_core.nn.bridge.bridged_filters`).

    Call args:
        audio: float32 `(batch, channels, samples)`, any length above `n_fft // 2`.
    Returns:
        float32 `(batch, sources, channels, samples)`, sources = targets (+1 residual).
    """

    def __init__(
        self,
        targets,
        filters=None,
        filter_kwargs=None,
        n_fft=N_FFT,
        n_hop=N_HOP,
        nb_channels=2,
        sample_rate=44100.0,
        niter=0,
        softmask=False,
        residual=False,
        wiener_win_len=300,
        eps=1e-10,
        bridge=False,
        name="umx",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        self.targets = list(targets)
        self.n_fft, self.n_hop = int(n_fft), int(n_hop)
        self.nb_channels = int(nb_channels)
        self.sample_rate = float(sample_rate)
        filter_kwargs = dict(filter_kwargs or {})
        if filters is None:
            filter_kwargs.setdefault("nb_bins", self.n_fft // 2 + 1)
            filter_kwargs.setdefault("nb_channels", self.nb_channels)
        self.filter_kwargs = filter_kwargs
        self.stft = STFTLayer(self.n_fft, self.n_hop, center=True, name="stft")
        self.istft = ISTFTLayer(self.n_fft, self.n_hop, center=True, name="istft")
        self.norm = ComplexNorm(mono=self.nb_channels == 1, name="magnitude")
        self.joint = JointSpectralFilter(self.targets, filters=filters, filter_kwargs=filter_kwargs, bridge=bridge)
        self.em = ExpectationMaximization(
            iterations=niter, softmask=softmask, residual=residual, eps=eps, wiener_win_len=wiener_win_len, name="em"
        )
        # every shape is known from the config: build now, so a model restored from a
        # .keras file has its variables before the weights are loaded
        self.build()

    @property
    def sources(self):
        """Output stem names: the targets, then `residual` when enabled."""
        return self.targets + (["residual"] if self.em.residual else [])

    def build(self, input_shape=None):
        """Build the filters and EM for audio input."""
        self.joint.build((None, None, self.n_fft // 2 + 1, self.nb_channels))
        self.built = True

    def call(self, audio, training=False):
        """Separate `(batch, channels, samples)` audio into `(batch, sources, channels, samples)`."""
        audio = tf.convert_to_tensor(audio, tf.float32)
        mix_stft = self.stft(audio)  # (batch, frames, bins, channels)
        estimates = self.joint(self.norm(mix_stft), training=training)  # (batch, targets, frames, bins, ch)
        stems = self.em(estimates, mix_stft)  # (batch, sources, frames, bins, channels)
        return self.istft(stems, length=tf.shape(audio)[-1])  # (batch, sources, channels, samples)

    def get_config(self):
        # every filter's own config, so converted or custom filters rebuild with their shapes
        filters = {name: keras.saving.serialize_keras_object(layer) for name, layer in self.joint.filters.items()}
        return {
            "name": self.name,
            "targets": self.targets,
            "filters": filters,
            "filter_kwargs": self.filter_kwargs,
            "n_fft": self.n_fft,
            "n_hop": self.n_hop,
            "nb_channels": self.nb_channels,
            "sample_rate": self.sample_rate,
            "niter": self.em.iterations,
            "softmask": self.em.softmask,
            "residual": self.em.residual,
            "wiener_win_len": self.em.wiener_win_len,
            "eps": self.em.eps,
            "bridge": self.joint.bridge,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if config.get("filters"):
            config["filters"] = {
                name: keras.saving.deserialize_keras_object(spec) for name, spec in config["filters"].items()
            }
        return cls(**config)

    def export(self, filepath, format="tf_saved_model", verbose=None, input_signature=None, **kwargs):
        """Write a SavedModel whose `serve` signature takes float32 `(batch, channels, samples)`
        of any batch size and length."""
        if input_signature is None:
            input_signature = [tf.TensorSpec((None, self.nb_channels, None), tf.float32, name="audio")]
        return super().export(filepath, format=format, verbose=verbose, input_signature=input_signature, **kwargs)
