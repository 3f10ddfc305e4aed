"""Separator: the open-unmix Separator API, safe for long inputs.

A track is processed in chunks of `segment` STFT frames (a multiple of `wiener_win_len`,
so chunks and EM windows line up), each seen by the network with `context` extra frames
on both sides. Chunks of one or several tracks are batched along the batch axis, which
amortises the LSTM recurrence. Every chunk's stems are overlap-added into one buffer and
normalised once, so the STFT, EM and ISTFT are exactly those of the whole track; the only
approximation is the LSTM seeing `context` frames rather than the whole track. An input of
at most `segment` frames is one chunk and matches open-unmix exactly.
"""

import numpy as np

from umx_core import settings
from umx_core.engine import ChunkEngine, Piece
from umx_core.errors import UMXError
from umx_core.nn.umx import UMX
from umx_core.settings import N_FFT, N_HOP, SETTINGS
from umx_core.version import code_version

# the settings a saved separator's `separator.json` carries back to `load_separator` (the model's
# own shape, `MODEL_KEYS`, comes from its weights); run knobs such as batch_frames are never saved
MODEL_KEYS = ("targets", "sample_rate", "n_fft", "n_hop", "nb_channels")
SAVED_SETTINGS = ("niter", "softmask", "residual", "wiener_win_len", "filterbank", "segment", "context", "eps")


class Separator:
    """Separate mixtures into stems with a UMX model, in bounded memory.

    Args:
        target_models: `{target: Layer}` spectral filters (e.g. `BLSTMSpectralFilterLayer`),
            or a built `UMX` model.
        niter: EM iterations (0: no refinement).
        softmask: initial estimates by ratio mask instead of magnitude with mixture phase.
        residual: add a `residual` stem, mixture minus the targets.
        sample_rate: the rate the model was trained at (callers resample to it).
        n_fft, n_hop: STFT size and hop.
        nb_channels: channels the model takes (1: mono model; averages magnitudes).
        wiener_win_len: frames per independent EM window; None: the whole track at once
            (then the whole track is one chunk, and memory grows with its length).
        filterbank: "torch" or "tf"; both are the TF STFT that equals torch.stft.
        segment: centre frames per chunk, a multiple of wiener_win_len (default: wiener_win_len).
        context: extra frames the network sees on each side of a chunk.
        batch_frames: frames (context included) batched into one network call: a run knob
            (memory against speed), not saved with the model. None: from the device
            (`umx_core.engine.ChunkEngine`).
        jit_compile: compile the chunk computation with XLA. Chunks are zero-padded to
            `segment + 2 * context` frames (padding is masked, so exact). Ignored (graph mode)
            when `segment` is None, where every track length is a new shape.
        eps: EM regularisation (open-unmix: 1e-10).
        precision: "float32", or "bfloat16": the network computes in bfloat16, its estimates
            return to float32 before EM, and STFT, EM and ISTFT stay float32. A run knob like
            `batch_frames` (not saved with the model); it changes the stems.
        runtime: where the network runs: "xla" (TensorFlow, CPU or GPU) or "openvino" (the
            filters' ONNX graph on OpenVINO's CPU runtime; the `openvino` extra). A run knob.
    """

    def __init__(self, target_models, niter=0, softmask=False, residual=False, sample_rate=44100.0, n_fft=N_FFT,
                 n_hop=N_HOP, nb_channels=2, wiener_win_len=SETTINGS["wiener_win_len"].default, filterbank="torch",
                 segment=None, context=64, batch_frames=None, jit_compile=True, eps=1e-10,
                 precision=SETTINGS["precision"].default, runtime=SETTINGS["runtime"].default):
        try:
            self.filterbank = settings.check("filterbank", filterbank)
            wiener_win_len = settings.check("wiener_win_len", wiener_win_len)
            precision = settings.check("precision", precision)
        except settings.SettingError as exc:
            raise UMXError(f"{exc.field} {exc.problem}") from None
        em = dict(niter=niter, softmask=softmask, residual=residual, wiener_win_len=wiener_win_len, eps=eps)
        if isinstance(target_models, UMX):
            config = {**target_models.get_config(), **em}
            if config == target_models.get_config() and precision == "float32":
                model = target_models  # same settings: no second copy of the weights
            else:
                model = UMX.from_config(config)
                model.set_weights(target_models.get_weights())
        else:
            if not target_models:
                raise UMXError("a Separator needs at least one target model")
            model = UMX(list(target_models), filters=dict(target_models), n_fft=n_fft, n_hop=n_hop,
                        nb_channels=nb_channels, sample_rate=sample_rate, **em)
        if niter > 0 and len(model.sources) < 2:
            raise UMXError("EM needs at least two sources: separate two or more targets, or set residual=True")
        self.model = model
        self.wiener_win_len = wiener_win_len
        if segment is None:
            segment = wiener_win_len
        elif wiener_win_len and int(segment) % wiener_win_len:
            raise UMXError(f"segment ({segment}) must be a multiple of wiener_win_len ({wiener_win_len})")
        self.segment = None if segment is None else int(segment)
        self.engine = ChunkEngine(model, self.segment, context, batch_frames, jit_compile, precision, runtime)

    # --- settings -------------------------------------------------------------
    targets = property(lambda self: list(self.model.targets), doc="Target names, in output order.")
    sources = property(lambda self: self.model.sources, doc="Output stem names (targets, then residual).")
    sample_rate = property(lambda self: self.model.sample_rate, doc="The model's sample rate in Hz.")
    nb_channels = property(lambda self: self.model.nb_channels, doc="Channels the model takes.")
    n_fft = property(lambda self: self.model.n_fft, doc="STFT size.")
    n_hop = property(lambda self: self.model.n_hop, doc="STFT hop.")
    niter = property(lambda self: self.model.em.iterations, doc="EM iterations.")
    softmask = property(lambda self: self.model.em.softmask, doc="Ratio-mask initial estimates.")
    residual = property(lambda self: self.model.em.residual, doc="Whether a residual stem is added.")
    context = property(lambda self: self.engine.context, doc="Frames the network sees on each side of a chunk.")
    batch_frames = property(lambda self: self.engine.batch_frames, doc="Frames per network call (a run knob).")
    precision = property(lambda self: self.engine.precision, doc="The network's arithmetic (a run knob).")
    jit_compile = property(lambda self: self.engine.jit_compile, doc="Whether chunks run as XLA programs.")
    runtime = property(lambda self: self.engine.runtime, doc="Where the network runs (a run knob).")

    def config(self):
        """Every setting needed to rebuild this separator (JSON-serialisable); run knobs
        (`batch_frames`, `precision`, `jit_compile`) are not part of it."""
        keys = MODEL_KEYS + tuple(k for k in SAVED_SETTINGS if k != "eps")
        return {"format": "umx_core.separator/1", "code_version": code_version(),
                **{key: getattr(self, key) for key in keys}, "eps": self.model.em.eps}

    def run_knobs(self):
        """The run knobs of this separator, as `Separator` keywords (for another over the same model)."""
        return {"batch_frames": self.batch_frames, "jit_compile": self.jit_compile, "precision": self.precision,
                "runtime": self.runtime}

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
            pieces = [Piece(b, chunk, audio[b][:, geometry.source_index(*geometry.span(chunk), samples)])
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
        from umx_core import saved

        return saved.save(self, path, metadata)

    def export(self, path, metadata=None, format="tf_saved_model"):
        """Write the model, local or gs://: "tf_saved_model", the end-to-end UMX as a TensorFlow
        SavedModel (`umx_core.saved.export`), or "onnx", the spectral filters as one ONNX file
        (`umx_core.runtime.onnx_export.export`: STFT, EM and ISTFT stay with the caller)."""
        if format == "onnx":
            from umx_core.runtime.onnx_export import export

            return export(self, path, metadata)
        if format != "tf_saved_model":
            raise UMXError(f"format must be tf_saved_model or onnx, got {format!r}")
        from umx_core import saved

        return saved.export(self, path, metadata)
