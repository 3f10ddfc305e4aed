"""The chunk engine: a UMX model's compiled computation, named chunks of audio in, their stems out.

A track is cut into `chunking.Chunk`s by the engine's `geometry` (`layout`); a caller reads each
chunk's samples (`geometry.span`) and hands a batch of `Piece(key, chunk, audio)` to `separate`,
which returns each piece's stems to overlap-add at `geometry.place(chunk)` of the padded track. The `Separator` (in memory) and
`umx_core.stream` (file to file) both drive it; `key` is theirs, to say which track a piece is of.

Inside: the STFT, one compiled program per kind of filter (targets alike but for their weights'
values share one), EM with the inverse FFT and overlap-add in two programs over the two halves of
a batch, optional mixed precision for the network. Chunks are zero-padded to the same width and,
with many chunks per call, the batch to a power of two (`chunking.rows_for`): the network masks
padded frames and EM zeroes them, so the padding changes no output sample.
"""

import collections
import json

import numpy as np
import tensorflow as tf

from umx_core import chunking, settings
from umx_core.nn.model import apply_filter, bridged_filters
from umx_core.nn.transforms import overlap_add, stft_frames

Piece = collections.namedtuple("Piece", "key chunk audio")
Piece.__doc__ = """A chunk to separate: the caller's `key` (which track), its `chunking.Chunk`, and float32
`(channels, samples)` audio: samples `geometry.span(chunk)` of the padded track."""


def _compute_in(layers, precision):
    """Give `layers` and every layer inside them Keras's mixed policy for `precision`."""
    import keras

    policy = keras.DTypePolicy(f"mixed_{precision}")
    stack = list(layers)
    while stack:
        layer = stack.pop()
        layer.dtype_policy = policy
        stack.extend(getattr(layer, "_layers", []))


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
    layer's float32 estimate of the centre frames with those weights (a list of tensors).

    Filters alike but for their weights' values (every target of a UMX model) share one traced and
    compiled program that takes the weights as inputs: a run traces and compiles one filter instead
    of one per target, and the persistent XLA cache holds one program instead of one per target.
    """
    import keras

    keys = [_structure(layer) for layer in layers]
    programs = {}
    for key, layer in zip(keys, layers):
        if key not in programs:

            def run(values, mix, lengths, offsets, width, template=layer):
                with keras.StatelessScope(state_mapping=list(zip(template.weights, values))):
                    estimate = apply_filter(template, mix, lengths, centre=(offsets, width))
                    return tf.cast(estimate, tf.float32)[:, None]  # (n, 1 target, width, bins, ch)

            programs[key] = tf.function(run, jit_compile=jit, autograph=False)
    return [(programs[key], tuple(layer.weights)) for key, layer in zip(keys, layers)]


def _bridged_program(layers, jit):
    """`[(program, weights)]`: one program for every target of a bridged (X-UMX) joint filter, which
    computes them together: `(n, targets, width, bins, ch)`."""
    import keras

    weights = tuple(w for layer in layers for w in layer.weights)

    def run(values, mix, lengths, offsets, width):
        with keras.StatelessScope(state_mapping=list(zip(weights, values))):
            estimates = bridged_filters(layers, mix, lengths, centre=(offsets, width))
            return tf.cast(tf.stack(estimates, axis=1), tf.float32)

    return [(tf.function(run, jit_compile=jit, autograph=False), weights)]


class ChunkEngine:
    """Separate batches of chunks with a UMX model's filters and EM.

    Args:
        model: a built `umx_core.nn.umx.UMX` (its STFT settings, filters, magnitude and EM).
        segment: centre frames per chunk (None: a whole track is one chunk, never compiled).
        context: frames the network sees on each side of a chunk.
        batch_frames: frames (context included) per network call; None: from the device, as many
            as half a GPU's memory holds (`chunking.batch_frames_for`), else `settings.CPU_BATCH_FRAMES`.
        jit_compile: compile the computation with XLA (ignored without `segment`: every track
            length would be a new shape).
        precision: "float32", or "bfloat16": the filters compute in bfloat16 (Keras's mixed
            policy: weights stay float32), their estimates return to float32 before EM.
    """

    def __init__(self, model, segment, context, batch_frames=None, jit_compile=True, precision="float32",
                 runtime="xla"):
        self.model, self.segment, self.context = model, segment, int(context)
        self.n_fft, self.n_hop = model.n_fft, model.n_hop
        self.geometry = chunking.StftGeometry(self.n_fft, self.n_hop, segment, context)
        self.jit_compile = bool(jit_compile) and segment is not None
        self.precision = settings.check("precision", precision)
        self.runtime = settings.check("runtime", runtime)
        if batch_frames is None:
            from umx_core.devices import accelerator_memory

            memory = accelerator_memory()
            batch_frames = settings.CPU_BATCH_FRAMES if memory is None else chunking.batch_frames_for(
                memory, len(model.targets), self.n_fft // 2 + 1, model.nb_channels)
        self.batch_frames = int(batch_frames)
        jit = self.jit_compile
        self._stft = tf.function(self._stft_magnitude, jit_compile=jit, autograph=False)
        self._em = tf.function(self._em_overlap_add, jit_compile=jit, autograph=False)
        self._calls = {}  # one traced graph per channel count (EM needs it static)
        self.filter_programs, self._openvino = [], None
        if self.runtime == "openvino":  # the filters leave TensorFlow; STFT and EM stay
            from umx_core.runtime.openvino import OpenVINOFilters

            self._openvino = OpenVINOFilters(model.joint.filter_layers, list(model.joint.filters), self.n_fft // 2 + 1,
                                             model.nb_channels, self.precision, model.joint.bridge)
            self.precision = self._openvino.precision  # what runs: float32 on a CPU without bfloat16
            self._em_stage_call = tf.function(self._em_stage, autograph=False)
        else:
            if self.precision != "float32":
                _compute_in(model.joint.filter_layers, self.precision)
            make = _bridged_program if model.joint.bridge else _filter_programs
            self.filter_programs = make(model.joint.filter_layers, jit)

    def per_call(self, width):
        """Chunks of `width` frames that go into one network call."""
        return chunking.chunks_per_call(width, self.batch_frames)

    def separate(self, pieces, width):
        """The stems of a batch of pieces (at most `per_call(width)`), in their order.

        Args:
            pieces: `Piece`s whose audio all has the same channels.
            width: frames every chunk is padded to (`geometry.layout`).
        Returns:
            float32 `(sources, channels, n_fft + n_hop * (chunk.centre - 1))` per piece, to
            overlap-add at sample `chunk.start * n_hop` of the padded track.
        """
        n_fft, hop = self.n_fft, self.n_hop
        channels = pieces[0].audio.shape[0]
        rows = chunking.rows_for(len(pieces), self.per_call(width)) if self.jit_compile else len(pieces)
        audio = np.zeros((rows, channels, n_fft + hop * (width - 1)), np.float32)
        lengths, offsets, centres = (np.zeros(rows, np.int32) for _ in range(3))
        for i, (_, chunk, samples) in enumerate(pieces):
            audio[i, :, : samples.shape[-1]] = samples
            lengths[i], offsets[i], centres[i] = chunk.count, chunk.start - chunk.first, chunk.centre
        if self._openvino is not None:
            mix, magnitude = self._stft(tf.constant(audio))
            frames = self.segment or int(centres.max())
            estimates = self._openvino(magnitude.numpy(), lengths, offsets, frames)
            estimates = self.model.joint.outputs_of(tf.constant(estimates))
            stems = self._em_stage_call(estimates, mix, tf.constant(offsets), tf.constant(centres))
            stems = stems.numpy()
        else:
            if channels not in self._calls:
                index = tf.TensorSpec((None,), tf.int32)
                signature = [tf.TensorSpec((None, channels, None), tf.float32), index, index, index]
                self._calls[channels] = tf.function(self._separate_batch, input_signature=signature, autograph=False)
            stems = self._calls[channels](tf.constant(audio), tf.constant(lengths), tf.constant(offsets),
                                          tf.constant(centres)).numpy()
        return [stems[i, :, :, : n_fft + hop * (piece.chunk.centre - 1)] for i, piece in enumerate(pieces)]

    # --- the compiled stages --------------------------------------------------
    def _stft_magnitude(self, audio):
        """complex64 `(n, ch, frames, bins)` mixture STFT and its float32 channels-last magnitude
        `(n, frames, bins, ch or 1)` for the network."""
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
        # largest per-frame memory of a call; looping keeps them to one chunk whatever the batch
        def one_chunk(pair):
            stems = self.model.em.channels_first(pair[0][None], pair[1][None])[0]  # (sources, ch, width, bins)
            return overlap_add(stems, self.n_fft, self.n_hop)

        return tf.map_fn(one_chunk, (estimates, mix), fn_output_signature=tf.float32, parallel_iterations=1)

    def _separate_batch(self, audio, lengths, offsets, centres):
        """Stems of the centre frames of a batch of chunks, overlap-added but not normalised.

        Args:
            audio: `(chunks, channels, samples)` chunk audio, zero-padded at the end to one length.
            lengths: `(chunks,)` valid frames per chunk (context included).
            offsets: `(chunks,)` first centre frame within each chunk.
            centres: `(chunks,)` centre frames per chunk (<= segment).
        Returns:
            float32 `(chunks, sources, channels, n_fft + n_hop * (width - 1))`.
        """
        mix, magnitude = self._stft(audio)
        width = self._width(centres)
        estimates = tf.concat([program([tf.convert_to_tensor(w) for w in weights], magnitude, lengths, offsets, width)
                               for program, weights in self.filter_programs], axis=1)
        estimates = self.model.joint.outputs_of(estimates)  # a bridged model computes every filter
        return self._em_stage(estimates, mix, offsets, centres)

    def _em_stage(self, estimates, mix, offsets, centres):
        """EM, inverse FFT and overlap-add of a batch's estimates `(n, targets, width, bins, ch)`."""
        if not self.jit_compile:
            return self._em(estimates, mix, offsets, centres)
        # two EM programs on the two halves of the batch, which TensorFlow runs side by side (an XLA
        # program's FFTs use one core; docs/benchmarks.md, "EM in two halves")
        rows = tf.shape(estimates)[0]
        half = (rows + 1) // 2

        def halves():
            first = self._em(estimates[:half], mix[:half], offsets[:half], centres[:half])
            return tf.concat([first, self._em(estimates[half:], mix[half:], offsets[half:], centres[half:])], axis=0)

        return tf.cond(rows > 1, halves, lambda: self._em(estimates, mix, offsets, centres))
