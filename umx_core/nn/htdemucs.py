"""HTDemucs: Hybrid Transformer Demucs (demucs 4) as a Keras model, inference only.

Two U-Nets side by side, one on the complex spectrogram (real and imaginary parts as channels), one
on the waveform, meet in a cross-domain transformer at the bottom; the output is the sum of the
inverse STFT of the first and the waveform of the second, per source. Built from the keyword
arguments a demucs checkpoint records (`umx_core.nn.htdemucs_config`); weights from its state with
`umx_core.nn.htdemucs_weights.assign_htdemucs_weights`.
"""

import keras
import tensorflow as tf

from umx_core.errors import UMXError
from umx_core.nn import PACKAGE
from umx_core.nn.htdemucs_config import htdemucs_config, layer_plan, segment_text, training_length
from umx_core.nn.htdemucs_layers import FrequencyEmbedding, HDecLayer, HEncLayer
from umx_core.nn.htdemucs_ops import moments
from umx_core.nn.htdemucs_spec import (channels_as_complex, complex_as_channels, dims, inverse_spectrogram,
                                       pad_axis, spectrogram)
from umx_core.nn.htdemucs_transformer import CrossTransformerEncoder, dense


def standardise(x, axes):
    """demucs's input normalisation: `(x - mean) / (1e-5 + std)` with torch's unbiased std.

    Args:
        x: float32 tensor.
        axes: the axes that share one mean and std (all but the batch axis, in demucs).
    Returns:
        `(normalised x, mean, std)`, mean and std with `x`'s rank (size 1 on `axes`).
    """
    mean, variance = moments(x, axes)
    count = tf.cast(tf.reduce_prod(tf.gather(tf.shape(x), axes)), x.dtype)
    std = tf.sqrt(variance * count / (count - 1))
    return (x - mean) / (1e-5 + std), mean, std


@keras.saving.register_keras_serializable(package=PACKAGE)
class HTDemucs(keras.Model):
    """demucs's HTDemucs in eval mode.

    Args:
        sources: the source names, the order of the output's source axis.
        name: the Keras model name.
        **kwargs: demucs's HTDemucs arguments (`umx_core.nn.htdemucs_config.DEFAULTS` lists them with
            demucs's defaults). Training-only ones (dropout, weight decay, rescale, lr) are accepted
            and ignored; one this port does not implement raises UMXError naming it.

    Call args:
        mix: float32 `(batch, audio_channels, samples)`. With `use_train_segment` (demucs's default)
            `samples` is at most the training length `int(segment * samplerate)`; a shorter input is
            zero-padded to it and the output cut back, as demucs does.
    Returns:
        float32 `(batch, sources, audio_channels, samples)`, under any dtype policy: with Keras's
        mixed_bfloat16 the wide convolutions and matmuls compute in bfloat16, the STFTs, norms and
        residual sums in float32 (`umx_core.nn.htdemucs_ops`).
    """

    def __init__(self, sources, name="htdemucs", **kwargs):
        super().__init__(name=name)
        self.sources = list(sources)
        self.config = htdemucs_config(self.sources, kwargs)
        config = self.config
        self.nfft, self.use_train_segment = config["nfft"], config["use_train_segment"]
        self.training_length = training_length(config)
        plan, bottom = layer_plan(self.sources, config)
        shared = {"kernel_size": config["kernel_size"], "stride": config["stride"],
                  "norm_groups": config["norm_groups"], "rewrite": config["rewrite"],
                  "dconv_compress": config["dconv_comp"], "dconv_depth": config["dconv_depth"]}
        self.encoder, self.tencoder, self.decoder, self.tdecoder = [], [], [], []
        for index, layer in enumerate(plan):
            encoder = {**shared, "norm": layer["norm"], "context": config["context_enc"],
                       "dconv": bool(config["dconv_mode"] & 1)}
            decoder = {**shared, "norm": layer["norm"], "context": config["context"],
                       "dconv": bool(config["dconv_mode"] & 2), "last": index == 0}
            self.encoder.append(HEncLayer(layer["freq_in"], layer["freq_out"], True, **encoder))
            self.tencoder.append(HEncLayer(layer["time_in"], layer["time_out"], False, **encoder))
            # demucs lists the decoders innermost first
            self.decoder.insert(0, HDecLayer(layer["freq_out"], layer["freq_dec_out"], True, **decoder))
            self.tdecoder.insert(0, HDecLayer(layer["time_out"], layer["time_dec_out"], False, **decoder))
        self.freq_emb = FrequencyEmbedding(plan[0]["bins_out"], plan[0]["freq_out"], config["freq_emb"]) \
            if config["freq_emb"] else None
        width = config["bottom_channels"] or bottom
        # demucs's 1x1 Conv1d around the transformer, as Dense layers on the channels
        self.bottom = [dense(bottom, width), dense(width, bottom), dense(bottom, width), dense(width, bottom)] \
            if config["bottom_channels"] else None
        self.crosstransformer = CrossTransformerEncoder(
            width, config["t_heads"], int(width * config["t_hidden_scale"]), config["t_layers"],
            emb=config["t_emb"], cross_first=config["t_cross_first"], max_positions=config["t_max_positions"],
            norm_in=config["t_norm_in"], norm_in_group=config["t_norm_in_group"],
            weight_pos_embed=config["t_weight_pos_embed"], max_period=config["t_max_period"],
            cape_mean_normalize=config["t_cape_mean_normalize"],
            layer_kwargs={"norm_first": config["t_norm_first"], "norm_out": config["t_norm_out"],
                          "group_norm": config["t_group_norm"], "layer_scale": config["t_layer_scale"],
                          "use_gelu": config["t_gelu"]},
        ) if config["t_layers"] > 0 else None
        self.built = True  # every layer made its weights above: a restored model can load them

    @property
    def input_dtype(self):
        """float32 under any policy: the STFT and the standardisation need the audio unrounded."""
        return "float32"

    def _fit_length(self, mix):
        """`mix` zero-padded on the right to the training length (demucs's `use_train_segment`)."""
        length = dims(mix)[-1]
        if isinstance(length, int) and length > self.training_length:
            raise UMXError(f"HTDemucs input of {length} samples is longer than the model's training length "
                           f"{self.training_length}; cut it into segments first")
        mix = pad_axis(mix, -1, 0, tf.maximum(self.training_length - length, 0))
        return tf.ensure_shape(mix, [*mix.shape[:-1], self.training_length])

    def _bottleneck(self, x, xt):
        """The transformer between the branches, with the optional channel change around it (which
        demucs skips, though it has the weights, when there is no transformer)."""
        if self.crosstransformer is None:
            return x, xt
        if self.bottom is not None:
            x, xt = self.bottom[0](x), self.bottom[2](xt)
        x, xt = self.crosstransformer(x, xt)
        if self.bottom is not None:
            x, xt = self.bottom[1](x), self.bottom[3](xt)
        return x, xt

    def call(self, mix):
        """Separate `(batch, audio_channels, samples)` into `(batch, sources, audio_channels, samples)`."""
        mix = tf.cast(mix, tf.float32)  # float32 in and out, whatever the layers compute in
        channels = self.config["audio_channels"]
        if len(mix.shape) != 3 or mix.shape[1] not in (None, channels):
            raise UMXError(f"HTDemucs takes audio of shape (batch, {channels}, samples), not {tuple(mix.shape)}")
        length = dims(mix)[-1]
        if self.use_train_segment:
            mix = self._fit_length(mix)
        x, xt, stats = self.prepare(mix)
        x, xt = self.network(x, xt)
        return self.finish(x, xt, stats)[..., :length]

    def prepare(self, mix):
        """The two branches' standardised inputs of a training-length `mix` `(batch, channels, samples)`:
        `(x, xt, stats)`, `x` `(batch, frames, bins, 2 * channels)` (the spectrogram, complex as
        channels), `xt` `(batch, samples, 1, channels)`, `stats` their means and stds."""
        x, mean, std = standardise(complex_as_channels(spectrogram(mix, self.nfft)), [1, 2, 3])
        # the time branch channels-last, with a bins axis of 1 so that both branches share the layers
        xt, mean_t, std_t = standardise(tf.transpose(mix, [0, 2, 1])[:, :, None, :], [1, 2, 3])
        return x, xt, (mean, std, mean_t, std_t, dims(mix)[-1])

    def network(self, x, xt):
        """The encoders, the transformer and the decoders: real-valued convolutions and attention only
        (what a runtime other than TensorFlow may run). Returns `x` `(batch, frames, bins, sources *
        2 * channels)` and `xt` `(batch, samples, 1, sources * channels)`, still standardised."""
        skips, skips_t, lengths_t = [], [], []
        for index, (encode, encode_t) in enumerate(zip(self.encoder, self.tencoder)):
            lengths_t.append(dims(xt)[1])
            xt = encode_t(xt)
            skips_t.append(xt)
            x = encode(x)
            if index == 0 and self.freq_emb is not None:
                x = self.freq_emb(x)
            skips.append(x)
        x, xt = self._bottleneck(x, xt[:, :, 0])
        xt = xt[:, :, None]
        for decode, decode_t in zip(self.decoder, self.tdecoder):
            x = decode(x, skips.pop())
            xt = decode_t(xt, skips_t.pop(), length=lengths_t.pop())
        return x, xt

    def finish(self, x, xt, stats):
        """The stems `(batch, sources, channels, samples)` of the network's outputs: each branch
        un-standardised, the spectrogram's inverse STFT plus the waveform."""
        mean, std, mean_t, std_t, padded_length = stats
        nb_sources = len(self.sources)
        spec = channels_as_complex(x * std + mean, nb_sources)  # (batch, sources, channels, frames, bins)
        waves = inverse_spectrogram(spec, self.nfft, padded_length)  # (batch, sources, channels, samples)
        batch, samples, _, width = dims(xt)
        xt = tf.reshape(xt * std_t + mean_t, [batch, samples, nb_sources, width // nb_sources])
        return waves + tf.transpose(xt, [0, 2, 3, 1])  # samples last, as the public layout

    def get_config(self):
        """demucs's arguments (`segment` as text when a Fraction), the sources and the name."""
        return {"name": self.name, "sources": self.sources,
                **{key: segment_text(value) if key == "segment" else value for key, value in self.config.items()}}

    @classmethod
    def from_config(cls, config):
        """The model `get_config` describes."""
        return cls(**config)
