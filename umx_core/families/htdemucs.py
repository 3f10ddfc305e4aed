"""Hybrid Transformer Demucs (demucs 4): a `HTDemucs` model or a `ModelBag` of them, separated as
demucs's `apply_model` does (segments with overlap and triangle weights, time shifts), the shifts'
delays drawn from a generator seeded by the track so a rerun gives the same stems.

Settings: `overlap` and `shifts` (demucs's), `residual` (a stem of the model's sources that were not
asked for, summed: demucs's `--two-stems`). The segment is the model's training segment: HTDemucs
pads any shorter input to it, so a shorter one would cost as much and change the stems.
"""

import numpy as np
import tensorflow as tf

from umx_core import devices, settings
from umx_core.errors import UMXError
from umx_core.families import Built, Family
from umx_core.nn.bag import ModelBag
from umx_core.nn.htdemucs import HTDemucs
from umx_core.segmenting import SegmentGeometry

DEFAULTS = {"overlap": 0.25, "shifts": 1, "residual": False}
MAX_SHIFT_SECONDS = 0.5  # demucs's largest time shift
SHIFT_SEED = 2022  # with each track's length, seeds its shifts' delays (a fixed number: reruns agree)
RESIDUAL = "residual"


class WaveNetwork:
    """What a runtime runs: each model of the bag (or the one model) a group of its own, so models of
    one shape share one compiled program; `(rows, channels, samples)` in, `(rows, models * sources,
    channels, samples)` out."""

    def __init__(self, model):
        self.model = model
        self.groups = [[m] for m in (model.used if isinstance(model, ModelBag) else [model])]

    def apply(self, layers, audio):
        """One model's `(rows, sources, channels, samples)` stems."""
        return layers[0](audio)

    def copy(self):
        """The same network over a copy of the model (for another precision)."""
        import keras

        copy = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(self.model))
        copy.set_weights(self.model.get_weights())
        return WaveNetwork(copy)


class HTDemucsProgram:
    """The batch program: chunk audio `(rows, channels, segment)` in, the chosen stems out (the bag's
    weighted mean, the targets, and the residual)."""

    fixed_shapes = True

    def __init__(self, built, runner, batch_frames, jit_compile):
        model = built.model
        self.runner, self.jit_compile = runner, jit_compile
        self.precision, self.runtime = runner.precision, runner.runtime
        self.segment = built.geometry.segment
        self.batch_frames = batch_frames or self.segment  # samples per call: one segment on a CPU
        scale = model.scale if isinstance(model, ModelBag) else np.ones((1, len(model.sources)), np.float32)
        # (stems, models * sources): each stem written is a weighted sum of the runner's outputs
        chosen = [[k] for k in (model.sources.index(t) for t in built.targets)]
        if RESIDUAL in built.sources:
            chosen.append([k for k, s in enumerate(model.sources) if s not in built.targets])
        mixing = np.zeros((len(chosen), scale.size), np.float32)
        for row, sources in enumerate(chosen):
            for k in sources:
                mixing[row, k :: len(model.sources)] = scale[:, k]
        self.mixing = tf.constant(mixing)

    def per_call(self, width):
        """Chunks per call."""
        return max(1, self.batch_frames // width)

    def __call__(self, audio, chunks, width):
        """`(rows, sources, channels, segment)` numpy stems of `(rows, channels, segment)` audio."""
        out = self.runner(tf.constant(audio))  # (rows, models * sources, channels, samples)
        return tf.einsum("sm,rmcn->rscn", self.mixing, out).numpy()


class HTDemucsFamily(Family):
    """HTDemucs and bags of them (`htdemucs`, `htdemucs_ft`, `htdemucs_6s`)."""

    name = "htdemucs"
    runtimes = ("xla",)
    saved_settings = tuple(DEFAULTS)

    def owns(self, model):
        """A `HTDemucs`, or a `ModelBag` of them."""
        return isinstance(model, HTDemucs) or (isinstance(model, ModelBag) and isinstance(model.models[0], HTDemucs))

    def build(self, model, options, targets=None):
        """A `Built` with `options` (`overlap`, `shifts`, `residual`); the model is never copied."""
        options = dict(options)
        unknown = sorted(set(options) - set(DEFAULTS))
        if unknown:
            raise UMXError(f"unknown HTDemucs setting(s) {unknown} (it takes {', '.join(DEFAULTS)})")
        values = {key: options.get(key, default) for key, default in DEFAULTS.items()}
        try:
            for key in values:
                values[key] = settings.check(key, values[key])
        except settings.SettingError as exc:
            raise UMXError(f"{exc.field} {exc.problem}") from None
        own = list(model.sources)
        targets = list(targets or own)
        missing = [t for t in targets if t not in own]
        if missing:
            raise UMXError(f"the model has no target(s) {missing}; it has {own}")
        sources = targets + ([RESIDUAL] if values["residual"] else [])
        if values["residual"] and (RESIDUAL in own or len(targets) == len(own)):
            raise UMXError(f"residual: the targets {targets} leave none of the model's sources {own} to sum")
        rate = float(model.config["samplerate"])
        geometry = SegmentGeometry(model.training_length, values["overlap"], shifts=values["shifts"],
                                   max_shift=int(MAX_SHIFT_SECONDS * rate), seed=SHIFT_SEED)
        return Built(model, targets, sources, rate, int(model.config["audio_channels"]), geometry, values)

    def compiles(self, precision):
        """XLA, except bfloat16 on a CPU: TensorFlow's graph mode runs its products on the CPU's
        bfloat16 units (oneDNN), XLA's CPU code does not."""
        return precision == "float32" or devices.has_gpu()

    def network(self, built):
        """`built`'s models (`WaveNetwork`)."""
        return WaveNetwork(built.model)

    def program(self, built, runner, batch_frames=None, jit_compile=True):
        """The `HTDemucsProgram` of `built` around its models' `runner`."""
        return HTDemucsProgram(built, runner, batch_frames, jit_compile)


FAMILY = HTDemucsFamily()
