"""A tiny waveform model family, in the tests only: what a new family writes to plug in.

Its model takes fixed segments of samples and gives one learned filter of the mixture per
source; its geometry is demucs's split (`segmenting.SegmentGeometry`: overlap, triangle weights);
its one setting is `overlap`; it runs on the XLA runtime (`umx_core.runtime.runner`). Nothing outside this file names it: a process finds it through
`UMX_FAMILIES=tests.umx_core.wave_family` (the registry line a family outside the package uses).
"""

import keras
import numpy as np
import tensorflow as tf

from umx_core import segmenting
from umx_core.errors import UMXError
from umx_core.families import Built, Family


@keras.saving.register_keras_serializable(package="wave_family")
class WaveNet(keras.Model):
    """`(batch, channels, segment)` float32 in, `(batch, sources, channels, segment)` out: each source
    a 1-D convolution of each channel (9 taps, zero padded)."""

    def __init__(self, sources=("low", "high"), segment=2048, sample_rate=8000.0, nb_channels=2, **kwargs):
        super().__init__(**kwargs)
        self.source_names, self.segment = list(sources), int(segment)
        self.sample_rate, self.nb_channels = float(sample_rate), int(nb_channels)
        self.convs = [keras.layers.Conv1D(1, 9, padding="same", use_bias=False, name=f"conv_{s}") for s in sources]
        self.build((None, self.nb_channels, self.segment))

    def build(self, input_shape):
        for conv in self.convs:
            conv.build((None, self.segment, 1))
        self.built = True

    def call(self, audio):
        batch, channels = tf.shape(audio)[0], tf.shape(audio)[1]
        x = tf.reshape(audio, [-1, self.segment, 1])  # every channel its own sequence
        stems = tf.stack([conv(x)[..., 0] for conv in self.convs], axis=1)  # (batch * channels, sources, segment)
        stems = tf.reshape(stems, [batch, channels, len(self.convs), self.segment])
        return tf.transpose(stems, [0, 2, 1, 3])  # -> (batch, sources, channels, segment)

    def get_config(self):
        return {"sources": self.source_names, "segment": self.segment, "sample_rate": self.sample_rate,
                "nb_channels": self.nb_channels, "name": self.name}


class WaveNetwork:
    """The model as a runtime runs it: one group, the model itself."""

    def __init__(self, model):
        self.model, self.groups = model, [[model]]

    def apply(self, layers, audio):
        return layers[0](audio)

    def copy(self):
        raise UMXError("the wave family computes in float32 only")


class WaveProgram:
    """The model's runner on batches of segments; `per_call`: four segments per call by default."""

    fixed_shapes = True

    def __init__(self, runner, keep, segment, batch_frames, jit_compile):
        self.runner, self.keep, self.jit_compile = runner, keep, jit_compile
        self.precision, self.runtime = runner.precision, runner.runtime
        self.batch_frames = batch_frames or 4 * segment  # samples per call

    def per_call(self, width):
        return max(1, self.batch_frames // width)

    def __call__(self, audio, chunks, width):
        return self.runner(tf.constant(audio)).numpy()[:, self.keep]


class WaveFamily(Family):
    """The tests' waveform family."""

    name = "wave"
    saved_settings = ("overlap",)

    def owns(self, model):
        return isinstance(model, WaveNet)

    def build(self, model, options, targets=None):
        overlap = float(options.pop("overlap", 0.25))
        if options or not 0 <= overlap < 1:
            raise UMXError(f"the wave family takes overlap in [0, 1) only, got {options or overlap}")
        targets = list(targets or model.source_names)
        missing = [t for t in targets if t not in model.source_names]
        if missing:
            raise UMXError(f"the model has no target(s) {missing}")
        return Built(model, targets, targets, model.sample_rate, model.nb_channels,
                     segmenting.SegmentGeometry(model.segment, overlap), {"overlap": overlap})

    def network(self, built):
        return WaveNetwork(built.model)

    def program(self, built, runner, batch_frames=None, jit_compile=True):
        keep = np.array([built.model.source_names.index(t) for t in built.targets])
        return WaveProgram(runner, keep, built.model.segment, batch_frames, jit_compile)


FAMILY = WaveFamily()
