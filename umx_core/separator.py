"""Separator: the open-unmix Separator API, safe for long inputs, for a model of any family.

A track is cut into chunks by its family's geometry (`umx_core.chunking`; UMX: `segment` STFT
frames, a multiple of `wiener_win_len` so chunks and EM windows line up, each seen by the network
with `context` extra frames on both sides). Chunks of one or several tracks are batched along the
batch axis (which amortises UMX's LSTM recurrence) and run by the chunk engine
(`umx_core.engine`). Every chunk's stems are overlap-added into one buffer and normalised once;
for UMX the STFT, EM and ISTFT are exactly those of the whole track.
"""

import numpy as np

from umx_core import families, saved, settings
from umx_core import runtime as runtimes
from umx_core.engine import ChunkEngine, Piece
from umx_core.errors import UMXError
from umx_core.settings import SETTINGS
from umx_core.version import code_version

FORMAT = "umx_core.separator/1"  # `separator.json`'s format


class Separator:
    """Separate mixtures into stems with a model of any family (`umx_core.families`), in bounded memory.

    Args:
        target_models: the model: `{target: Layer}` UMX spectral filters (e.g.
            `BLSTMSpectralFilterLayer`), a built `UMX` model, or another family's model.
        targets: the targets to separate (None: all the model's), applied in this one build.
        batch_frames: frames (context included) batched into one network call: a run knob
            (memory against speed), not saved with the model. None: from the device.
        jit_compile: compile the chunk computation with XLA (a UMX separator without a segment runs
            in graph mode, where every track length is a new shape).
        precision: "float32", or "bfloat16": the network computes in bfloat16 (UMX: its estimates
            return to float32 before EM; STFT, EM and ISTFT stay float32). A run knob; it changes the stems.
        runtime: where the network runs: "xla" (TensorFlow, CPU or GPU) or "openvino" (OpenVINO's CPU
            runtime; the `openvino` extra), among the family's runtimes. A run knob.
        **options: the family's settings. UMX's, as open-unmix's Separator: `niter` (EM iterations,
            0: none), `softmask`, `residual` (a stem for the mixture minus the targets),
            `wiener_win_len` (frames per EM window; None: the whole track, as one chunk), `eps`,
            `filterbank` ("torch" or "tf", both the TF STFT equal to torch.stft), `segment` (centre
            frames per chunk, a multiple of wiener_win_len; default wiener_win_len), `context`
            (frames the network sees on each side of a chunk), and for a dict of filters
            `sample_rate`, `n_fft`, `n_hop`, `nb_channels`.

    A UMX input of at most `segment` frames is one chunk and matches open-unmix exactly; longer
    ones differ only in the LSTM seeing `context` frames around each chunk rather than the track.
    The family's settings read as attributes (`separator.niter`, `separator.n_fft`, ...).
    """

    def __init__(self, target_models, targets=None, batch_frames=None, jit_compile=True,
                 precision=SETTINGS["precision"].default, runtime=SETTINGS["runtime"].default, **options):
        try:
            precision = settings.check("precision", precision)
            runtime = settings.check("runtime", runtime)
            batch_frames = settings.check("batch_frames", batch_frames)
        except settings.SettingError as exc:
            raise UMXError(f"{exc.field} {exc.problem}") from None
        family = families.family_of(target_models)
        if runtime not in family.runtimes:
            raise UMXError(f"runtime {runtime}: the {family.name} family runs on {', '.join(family.runtimes)}")
        self.family = family
        self._built = family.build(target_models, family.foreign(options), targets)
        self.model = self._built.model
        # fixed shapes: else every track length is a new shape; the family says where XLA pays
        jit_compile = bool(jit_compile) and self._built.fixed_shapes and family.compiles(precision)
        runner = runtimes.runner(family.network(self._built), runtime, precision, jit_compile)
        program = family.program(self._built, runner, batch_frames, jit_compile)
        self.engine = ChunkEngine(self._built.geometry, program)

    # --- settings -------------------------------------------------------------
    targets = property(lambda self: list(self._built.targets), doc="Target names, in output order.")
    sources = property(lambda self: list(self._built.sources), doc="Output stem names (targets, then residual).")
    sample_rate = property(lambda self: self._built.sample_rate, doc="The model's sample rate in Hz.")
    nb_channels = property(lambda self: self._built.nb_channels, doc="Channels the model takes.")
    batch_frames = property(lambda self: self.engine.program.batch_frames, doc="Frames per network call (a run knob).")
    precision = property(lambda self: self.engine.program.precision, doc="The network's arithmetic (a run knob).")
    jit_compile = property(lambda self: self.engine.program.jit_compile, doc="Whether chunks run as XLA programs.")
    runtime = property(lambda self: self.engine.program.runtime, doc="Where the network runs (a run knob).")

    def __getattr__(self, name):
        built = self.__dict__.get("_built")
        if built is not None and name in built.settings:
            return built.settings[name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def settings(self):
        """The family's settings of this separator, `{name: value}` (what `separator.json` keeps)."""
        return dict(self._built.settings)

    def config(self):
        """Every setting needed to rebuild this separator (JSON-serialisable): its family, targets,
        rate, channels and the family's settings; run knobs (`batch_frames`, `precision`,
        `jit_compile`, `runtime`) are not part of it."""
        return {"format": FORMAT, "family": self.family.name, "code_version": code_version(),
                "targets": self.targets, "sample_rate": self.sample_rate, "nb_channels": self.nb_channels,
                **self.settings()}

    # --- separation -----------------------------------------------------------
    def _prepare(self, audio):
        """Validate `(batch, channels, samples)` audio and match the model's channels."""
        if hasattr(audio, "numpy"):
            audio = audio.numpy()
        audio = np.asarray(audio)
        if audio.ndim != 3:
            raise UMXError(f"audio must have shape (batch, channels, samples), got {audio.shape}")
        if not np.issubdtype(audio.dtype, np.floating):
            raise UMXError(f"audio must be floating point samples, got dtype {audio.dtype}")
        audio = audio.astype(np.float32, copy=False)
        channels = audio.shape[1]
        if channels > 2 or channels < 1:
            raise UMXError(f"audio has {channels} channels; the model takes {self.nb_channels} (downmix first)")
        short = self.engine.geometry.too_short(audio.shape[2])
        if short:
            raise UMXError(f"audio has {short}")
        if not np.isfinite(audio).all():
            raise UMXError("audio contains NaN or infinite samples")
        if channels == 1 and self.nb_channels == 2:
            audio = np.repeat(audio, 2, axis=1)  # mono into a stereo model, as open-unmix's preprocess
        return audio

    def __call__(self, audio):
        """Separate a batch of mixtures.

        Args:
            audio: float `(batch, channels, samples)` numpy array or tensor at `sample_rate`.
        Returns:
            numpy float32 `(batch, sources, channels, samples)`.
        """
        audio = self._prepare(audio)
        batch, channels, samples = audio.shape
        geometry = self.engine.geometry
        layout = geometry.layout(samples)
        out = np.zeros((batch, len(self.sources), channels, layout.length), np.float32)
        jobs = [(b, chunk) for b in range(batch) for chunk in layout.chunks]
        per_call = self.engine.per_call(layout.width)
        for first in range(0, len(jobs), per_call):
            pieces = [Piece(b, chunk, geometry.gather(lambda index, b=b: audio[b][:, index], *geometry.span(chunk), samples))
                      for b, chunk in jobs[first : first + per_call]]
            for piece, stems in zip(pieces, self.engine.separate(pieces, layout.width)):
                at = geometry.place(piece.chunk)
                out[piece.key, :, :, at : at + stems.shape[-1]] += stems
        out = out[..., geometry.pad : geometry.pad + samples]
        geometry.normalise(out, layout, start=geometry.pad)
        return out

    def to_dict(self, estimates, aggregate_dict=None):
        """Name the stems of `(batch, sources, channels, samples)` estimates.

        Args:
            estimates: output of `__call__`.
            aggregate_dict: optional `{new name: [source names]}`; each new stem is the sum
                of its sources (e.g. `{"accompaniment": ["drums", "bass", "other"]}`).
        Returns:
            `{name: (batch, channels, samples) array}`.
        """
        estimates = np.asarray(estimates)
        if estimates.ndim != 4 or estimates.shape[1] != len(self.sources):
            raise UMXError(f"estimates must be (batch, {len(self.sources)}, channels, samples), got {estimates.shape}")
        named = {name: estimates[:, k] for k, name in enumerate(self.sources)}
        if aggregate_dict is None:
            return named
        settings.check_aggregate(aggregate_dict, self.sources)
        return {key: sum(named[s] for s in parts) for key, parts in aggregate_dict.items()}

    # --- persistence ----------------------------------------------------------
    def save(self, path, metadata=None):
        """Write `separator.json` and `model.keras` to a directory, local or gs:// (`umx_core.saved.save`)."""
        return saved.save(self, path, metadata)

    def export(self, path, metadata=None, format="tf_saved_model"):
        """Write the model, local or gs://: "tf_saved_model", the end-to-end model as a TensorFlow
        SavedModel (`umx_core.saved.export`), or one of the family's own formats (UMX: "onnx", the
        spectral filters as one ONNX file, `umx_core.runtime.onnx_export.export`: STFT, EM and ISTFT
        stay with the caller)."""
        formats = ["tf_saved_model", *self.family.exporters]
        if format not in formats:
            raise UMXError(f"format must be one of {', '.join(formats)} for a {self.family.name} model, "
                           f"got {format!r}")
        if format in self.family.exporters:
            return self.family.exporters[format](self, path, metadata)
        return saved.export(self, path, metadata)
