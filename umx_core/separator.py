"""Separator: the open-unmix Separator API, safe for long inputs.

A track is processed in chunks of `segment` STFT frames (a multiple of `wiener_win_len`,
so chunks and EM windows line up), each seen by the network with `context` extra frames
on both sides. Chunks of one or several tracks are batched along the batch axis, which
amortises the LSTM recurrence. Every chunk's stems are overlap-added into one buffer and
normalised once, so the STFT, EM and ISTFT are exactly those of the whole track; the only
approximation is the LSTM seeing `context` frames rather than the whole track. An input of
at most `segment` frames is one chunk and matches open-unmix exactly.
"""

import json

import numpy as np
import tensorflow as tf

from umx_core import chunking
from umx_core.errors import UMXError
from umx_core.model import apply_filter
from umx_core.settings import FIELDS, PRECISIONS
from umx_core.transforms import frame_count, overlap_add, stft_frames
from umx_core.umx import UMX
from umx_core.version import code_version



def _compute_in(layers, precision):
    """Give `layers` and every layer inside them Keras's mixed policy for `precision`."""
    import keras

    policy = keras.DTypePolicy(f"mixed_{precision}")
    stack = list(layers)
    while stack:
        layer = stack.pop()
        layer.dtype_policy = policy
        stack.extend(getattr(layer, "_layers", []))


def _float32_filter(layer, mix, lengths, offsets, width):
    """A target's estimate of the centre frames, float32 whatever the layer computes in."""
    return tf.cast(apply_filter(layer, mix, lengths, centre=(offsets, width)), tf.float32)


def _structure(layer):
    """What a filter's program depends on besides its weights' values: its class, settings,
    compute dtype and the paths (below the layer's own name), shapes and dtypes of its weights."""
    config = {k: v for k, v in layer.get_config().items() if k != "name"}

    def below(path):  # the path below the layer's own name (which comes after its parents')
        parts = path.split("/")
        return "/".join(parts[parts.index(layer.name) + 1:] if layer.name in parts else parts)

    weights = tuple((below(v.path), tuple(v.shape), str(v.dtype)) for v in layer.weights)
    return (type(layer).__qualname__, json.dumps(config, sort_keys=True, default=str), layer.compute_dtype, weights)


def _filter_programs(layers, jit):
    """`(program, weights)` per filter layer: `program(weights, mix, lengths, offsets, width)` is the
    layer's estimate of the centre frames with those weights (a list of tensors).

    Filters alike but for their weights' values (every target of a UMX model) share one traced and
    compiled program that takes the weights as inputs: the first file of a `umx` run then traces
    one filter instead of one per target (5 traces were 0.9 s of a 10 s file's run), and the
    persistent XLA cache holds one program instead of one per target.
    """
    import keras

    keys = [_structure(layer) for layer in layers]
    programs = {}
    for key, layer in zip(keys, layers):
        if key not in programs:

            def run(values, mix, lengths, offsets, width, template=layer):
                with keras.StatelessScope(state_mapping=list(zip(template.weights, values))):
                    return _float32_filter(template, mix, lengths, offsets, width)

            programs[key] = tf.function(run, jit_compile=jit, autograph=False)
    return [(programs[key], tuple(layer.weights)) for key, layer in zip(keys, layers)]


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
            (memory against speed), not saved with the model. None: from the device, half a
            GPU's memory (`chunking.batch_frames_for`), or `chunking.CPU_BATCH_FRAMES` without one.
        jit_compile: compile the chunk computation with XLA (2-3x faster on CPU). Chunks are
            zero-padded to `segment + 2 * context` frames (padding is masked, so exact), and above
            `chunking.EXACT_ROWS` chunks per call batches to a power-of-two number of chunks, so a
            few shapes are compiled once per separator.
            Ignored (graph mode) when `segment` is None, where every track length is a new shape.
        eps: EM regularisation (open-unmix: 1e-10).
        precision: "float32", or "bfloat16": the network computes in bfloat16 (Keras's
            mixed_bfloat16 policy: weights stay float32 and are cast as they are used); its
            estimates return to float32 before EM, and STFT, EM and ISTFT stay float32. A run knob
            like `batch_frames` (not saved with the model); it changes the stems.
    """

    def __init__(
        self,
        target_models,
        niter=0,
        softmask=False,
        residual=False,
        sample_rate=44100.0,
        n_fft=4096,
        n_hop=1024,
        nb_channels=2,
        wiener_win_len=FIELDS["wiener_win_len"].default,
        filterbank="torch",
        segment=None,
        context=64,
        batch_frames=FIELDS["batch_frames"].default,
        jit_compile=True,
        eps=1e-10,
        precision=FIELDS["precision"].default,
    ):
        if filterbank not in ("torch", "tf"):
            raise UMXError(f"filterbank must be 'torch' or 'tf' (the same TF STFT), got {filterbank!r}")
        if wiener_win_len is not None and int(wiener_win_len) <= 0:
            raise UMXError(f"wiener_win_len must be a positive number of frames or None, got {wiener_win_len}")
        if precision not in PRECISIONS:
            raise UMXError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
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
            model = UMX(
                list(target_models),
                filters=dict(target_models),
                n_fft=n_fft,
                n_hop=n_hop,
                nb_channels=nb_channels,
                sample_rate=sample_rate,
                **em,
            )
        if niter > 0 and len(model.sources) < 2:
            raise UMXError("EM needs at least two sources: separate two or more targets, or set residual=True")
        self.model = model
        self.precision = precision
        if precision != "float32":
            _compute_in(self.model.joint.filter_layers, precision)
        self.filterbank = filterbank
        self.wiener_win_len = None if wiener_win_len is None else int(wiener_win_len)
        if segment is None:
            segment = self.wiener_win_len
        elif self.wiener_win_len and int(segment) % self.wiener_win_len:
            raise UMXError(f"segment ({segment}) must be a multiple of wiener_win_len ({self.wiener_win_len})")
        self.segment = None if segment is None else int(segment)
        self.context = int(context)
        if batch_frames is None:
            from umx_core.devices import accelerator_memory

            memory = accelerator_memory()
            batch_frames = chunking.CPU_BATCH_FRAMES if memory is None else chunking.batch_frames_for(
                memory, len(self.model.targets), self.n_fft // 2 + 1, self.nb_channels)
        self.batch_frames = int(batch_frames)
        self.jit_compile = bool(jit_compile) and self.segment is not None
        self._chunk_fns = {}  # one traced graph per channel count (EM needs it static)
        jit = self.jit_compile
        self._stages = {
            "stft": tf.function(self._stft_magnitude, jit_compile=jit, autograph=False),
            "filters": _filter_programs(self.model.joint.filter_layers, jit),
            "em": tf.function(self._em_overlap_add, jit_compile=jit, autograph=False),
        }

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

    def config(self):
        """Every setting needed to rebuild this separator (JSON-serialisable); run knobs
        (`batch_frames`, `jit_compile`) are not part of it."""
        keys = ("targets", "niter", "softmask", "residual", "sample_rate", "n_fft", "n_hop", "nb_channels",
                "wiener_win_len", "filterbank", "segment", "context")
        return {"format": "umx_core.separator/1", "code_version": code_version(),
                **{key: getattr(self, key) for key in keys}, "eps": self.model.em.eps}

    # --- separation -----------------------------------------------------------
    def _stft_magnitude(self, audio):
        """Mixture STFT, channels-first for EM, and the channels-last magnitude for the network.

        Returns:
            complex64 `(n, ch, frames, bins)` and float32 `(n, frames, bins, ch or 1)`.
        """
        mix = stft_frames(audio, self.n_fft, self.n_hop)
        # transpose the real magnitude, not the complex STFT
        return mix, self.model.norm(tf.transpose(tf.abs(mix), [0, 2, 3, 1]))

    def _width(self, centres):
        """Centre frames every chunk of a batch is cut to: `segment`, or the largest centre."""
        return tf.reduce_max(centres) if self.segment is None else self.segment

    def _em_overlap_add(self, estimates, mix, offsets, centres):
        """EM on the centre frames of every chunk, then the windowed inverse FFT, overlap-added.

        Args:
            estimates: float32 `(n, targets, width, bins, ch)` target magnitudes of the centre frames.
            mix: complex64 `(n, ch, frames, bins)`.
            offsets, centres: `(n,)` first centre frame and centre frames per chunk.
        Returns:
            float32 `(n, sources, ch, n_fft + n_hop * (width - 1))`.
        """
        estimates = tf.transpose(estimates, [0, 1, 4, 2, 3])  # -> (n, targets, ch, width, bins)
        width = self._width(centres)
        steps = tf.range(width)
        index = tf.minimum(offsets[:, None] + steps[None, :], tf.shape(mix)[2] - 1)  # (n, width)
        valid = tf.cast(steps[None, :] < centres[:, None], tf.float32)  # frames past a centre are zeroed
        mix = tf.gather(mix, index, axis=2, batch_dims=1) * tf.cast(valid, mix.dtype)[:, None, :, None]
        estimates = estimates * valid[:, None, None, :, None]

        # one chunk at a time: EM's intermediates (covariances, inverses, complex estimates) are the
        # largest per-frame memory of a call; looping keeps them to one chunk whatever the batch (no
        # measurable cost for a umxhq-size model, 2-5% for the small demo models: docs/benchmarks.md)
        def one_chunk(pair):
            stems = self.model.em.channels_first(pair[0][None], pair[1][None])[0]  # (sources, ch, width, bins)
            return overlap_add(stems, self.n_fft, self.n_hop)

        return tf.map_fn(one_chunk, (estimates, mix), fn_output_signature=tf.float32, parallel_iterations=1)

    def _separate_batch(self, audio, lengths, offsets, centres):
        """Stems of the centre frames of a batch of chunks, overlap-added but not normalised.

        The stages are compiled separately (with `jit_compile`), one per target filter, so
        TensorFlow runs two targets' filters at once on two cores.

        Args:
            audio: `(chunks, channels, samples)` slices of the reflect-padded track, zero-padded
                at the end to a common length.
            lengths: `(chunks,)` valid frames per chunk (context included).
            offsets: `(chunks,)` first centre frame within each chunk.
            centres: `(chunks,)` centre frames per chunk (<= segment).
        Returns:
            float32 `(chunks, sources, channels, n_fft + n_hop * (width - 1))`, width the
            largest centre (`segment` when segmenting).
        """
        mix, magnitude = self._stages["stft"](audio)
        width = self._width(centres)
        estimates = tf.stack([program([tf.convert_to_tensor(w) for w in weights], magnitude, lengths, offsets, width)
                              for program, weights in self._stages["filters"]], axis=1)
        if not self.jit_compile:
            return self._stages["em"](estimates, mix, offsets, centres)
        # two EM programs on the two halves of the batch: each runs its chunks one at a time, and
        # TensorFlow runs the two side by side (an XLA program's FFTs use one core; niter 1 on 30 s,
        # umxhq size: 0.18 s against 0.26 s in one program, docs/benchmarks.md)
        em = self._stages["em"]
        rows = tf.shape(estimates)[0]
        half = (rows + 1) // 2

        def halves():
            first = em(estimates[:half], mix[:half], offsets[:half], centres[:half])
            return tf.concat([first, em(estimates[half:], mix[half:], offsets[half:], centres[half:])], axis=0)

        return tf.cond(rows > 1, halves, lambda: em(estimates, mix, offsets, centres))

    def _prepare(self, audio):
        """Validate `(batch, channels, samples)` audio and match the model's channels."""
        if isinstance(audio, tf.Tensor):
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
        if audio.shape[2] <= self.n_fft // 2:
            raise UMXError(f"audio has {audio.shape[2]} samples; more than {self.n_fft // 2} (n_fft/2) are needed")
        if not np.isfinite(audio).all():
            raise UMXError("audio contains NaN or infinite samples")
        if channels == 1 and self.nb_channels == 2:
            audio = np.repeat(audio, 2, axis=1)  # mono into a stereo model, as open-unmix's preprocess
        return audio

    def plan(self, nb_frames):
        """`(chunks, width)`: the `chunking.Chunk`s of a track of `nb_frames` STFT frames and the
        frames each is padded to."""
        return (chunking.plan(nb_frames, self.segment, self.context),
                chunking.width(nb_frames, self.segment, self.context))

    def __call__(self, audio):
        """Separate a batch of mixtures.

        Args:
            audio: float `(batch, channels, samples)` numpy array or tensor at `sample_rate`.
        Returns:
            numpy float32 `(batch, sources, channels, samples)`.
        """
        audio = self._prepare(audio)
        batch, channels, samples = audio.shape
        n_fft, hop, pad = self.n_fft, self.n_hop, self.n_fft // 2
        nb_frames = frame_count(samples, n_fft, hop)
        out = np.zeros((batch, len(self.sources), channels, n_fft + hop * (nb_frames - 1)), np.float32)
        chunks, width = self.plan(nb_frames)
        jobs = [(b, *chunk) for b in range(batch) for chunk in chunks]
        per_call = chunking.chunks_per_call(width, self.batch_frames)

        def read(b, lo, hi):
            return audio[b][:, chunking.reflect_index(lo, hi, pad, samples)]

        def add(b, position, stems):
            out[b, :, :, position : position + stems.shape[-1]] += stems

        for first in range(0, len(jobs), per_call):
            self.separate_chunks(read, channels, jobs[first : first + per_call], width, add)
        out = out[..., pad : pad + samples]
        # inside the reflect padding every sample is covered by a window: the envelope is > 0
        chunking.normalise(out, nb_frames, n_fft, hop, start=pad)
        return out

    def separate_chunks(self, read, channels, group, width, add):
        """Separate one batch of chunks and hand each chunk's stems to `add` (the streaming path's entry).

        Chunks are zero-padded to `width` frames and, with many chunks per call, the batch to a
        power of two with empty chunks (length 0, `chunking.rows_for`): the network masks padded
        frames and EM zeroes them, so the padding changes no output sample.

        Args:
            read: `read(b, lo, hi)` -> `(channels, hi - lo)` samples `[lo, hi)` of track `b`
                reflect-padded by `n_fft // 2` on both sides.
            channels: channels of the audio `read` returns.
            group: chunks `(track, first centre frame, centre frames, first frame, frames)`.
            width: frames every chunk is padded to.
            add: `add(b, position, stems)` receives `(sources, channels, samples)` to overlap-add
                at sample `position` of track `b`'s padded signal.
        """
        n_fft, hop = self.n_fft, self.n_hop
        rows = len(group)
        if self.jit_compile:
            rows = chunking.rows_for(rows, chunking.chunks_per_call(width, self.batch_frames))
        samples = n_fft + hop * (width - 1)
        chunk_audio = np.zeros((rows, channels, samples), np.float32)
        lengths, offsets, centres = (np.zeros(rows, np.int32) for _ in range(3))
        for i, (b, start, centre, first, count) in enumerate(group):
            span = n_fft + hop * (count - 1)
            chunk_audio[i, :, :span] = read(b, first * hop, first * hop + span)
            lengths[i], offsets[i], centres[i] = count, start - first, centre
        if channels not in self._chunk_fns:
            index = tf.TensorSpec((None,), tf.int32)
            signature = [tf.TensorSpec((None, channels, None), tf.float32), index, index, index]
            self._chunk_fns[channels] = tf.function(self._separate_batch, input_signature=signature, autograph=False)
        stems = self._chunk_fns[channels](
            tf.constant(chunk_audio), tf.constant(lengths), tf.constant(offsets), tf.constant(centres)
        ).numpy()
        for i, (b, start, centre, _, _) in enumerate(group):
            add(b, start * hop, stems[i, :, :, : n_fft + hop * (centre - 1)])

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
        unknown = sorted({s for parts in aggregate_dict.values() for s in parts} - set(named))
        if unknown:
            raise UMXError(f"aggregate names unknown sources {unknown}; this separator has {self.sources}")
        return {key: sum(named[s] for s in parts) for key, parts in aggregate_dict.items()}

    # --- persistence ----------------------------------------------------------
    def save(self, path, metadata=None):
        """Write `separator.json` and `model.keras` to a directory, local or gs:// (`umx_core.saved.save`)."""
        from umx_core import saved

        return saved.save(self, path, metadata)

    def export(self, path, metadata=None):
        """Write the end-to-end UMX as a TensorFlow SavedModel, local or gs:// (`umx_core.saved.export`)."""
        from umx_core import saved

        return saved.export(self, path, metadata)
