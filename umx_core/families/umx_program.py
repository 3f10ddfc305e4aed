"""UMX's network (its spectral filters, what a runtime runs) and batch program: chunk audio in, stems out.

The program: the STFT, the filters on their runtime (`umx_core.runtime`), EM with the inverse FFT
and overlap-add in two programs over the two halves of a batch. Chunks are
zero-padded to the same width and, with many chunks per call, the batch to a power of two
(`chunking.rows_for`): the network masks padded frames and EM zeroes them, so the padding
changes no output sample.
"""

import numpy as np
import tensorflow as tf

from umx_core import chunking, settings
from umx_core.nn.bridge import bridged_filters
from umx_core.nn.spectral_filter import apply_filter
from umx_core.nn.transforms import overlap_add, stft_frames
from umx_core.nn.umx import UMX


class FilterNetwork:
    """UMX's network, what a runtime runs (`umx_core.runtime.runner`): the targets' spectral filters,
    `(magnitude, lengths, offsets, width)` in, float32 `(n, targets, width, bins, ch)` estimates of
    the centre frames out. Each target's filter is a group of its own; a bridged model's are one."""

    def __init__(self, model):
        self.model, self.bridge = model, model.joint.bridge
        layers = list(model.joint.filter_layers)
        self.groups = [layers] if self.bridge else [[layer] for layer in layers]
        self.outputs = len(layers)
        # OpenVINO computes the split form wrong in a bridged model, the (slower) bidirectional one right
        self.padded_form = "bidirectional" if self.bridge else "split"

    def apply(self, layers, mix, lengths, offsets, width):
        """The estimates of one group of filters: `(n, len(layers), width, bins, ch)`."""
        if self.bridge:
            return tf.stack(bridged_filters(layers, mix, lengths, centre=(offsets, width)), axis=1)
        return apply_filter(layers[0], mix, lengths, centre=(offsets, width))[:, None]

    def copy(self):
        """The same network over a copy of the model (for another precision)."""
        copy = UMX.from_config(self.model.get_config())
        copy.set_weights(self.model.get_weights())
        return FilterNetwork(copy)

    def onnx(self, form):
        """The filters' ONNX graph with the LSTMs written as `form` (`onnx_export.filters_to_onnx`)."""
        from umx_core.runtime.onnx_export import filters_to_onnx

        joint = self.model.joint
        return filters_to_onnx(joint.filter_layers, list(joint.filters), self.model.n_fft // 2 + 1,
                               self.model.nb_channels, form, self.bridge)


class UMXProgram:
    """A UMX model's batch program: chunk audio in, stems out (see `umx_core.families.Family`).

    Args:
        model: a built `UMX` (its STFT settings, magnitude, joint filter's outputs and EM).
        geometry: its `chunking.StftGeometry` (`segment` None: a whole track is one chunk, never compiled).
        runner: its `FilterNetwork` on a runtime (`umx_core.runtime.runner`).
        batch_frames: frames (context included) per network call; None: from the device, as many
            as half a GPU's memory holds (`chunking.batch_frames_for`), else `settings.CPU_BATCH_FRAMES`.
        jit_compile: compile STFT and EM with XLA (only with a segment: every track length would be a new shape).
    """

    def __init__(self, model, geometry, runner, batch_frames=None, jit_compile=True):
        self.model, self.runner = model, runner
        self.segment, self.n_fft, self.n_hop = geometry.segment, model.n_fft, model.n_hop
        self.jit_compile = self.fixed_shapes = bool(jit_compile) and self.segment is not None
        self.precision, self.runtime = runner.precision, runner.runtime  # what runs
        if batch_frames is None:
            from umx_core.devices import accelerator_memory

            memory = accelerator_memory()
            batch_frames = settings.CPU_BATCH_FRAMES if memory is None else chunking.batch_frames_for(
                memory, len(model.targets), self.n_fft // 2 + 1, model.nb_channels)
        self.batch_frames = int(batch_frames)
        jit = self.jit_compile
        self._em = tf.function(self._em_overlap_add, jit_compile=jit, autograph=False)
        self._stft = tf.function(self._stft_magnitude, jit_compile=jit, autograph=False)
        self._em_stage_call = tf.function(self._em_stage, autograph=False)
        self._calls = {}  # one traced graph per channel count (EM needs it static)

    def per_call(self, width):
        """Chunks of `width` frames that go into one network call."""
        return chunking.chunks_per_call(width, self.batch_frames)

    def __call__(self, audio, chunks, width):
        """float32 `(rows, sources, channels, n_fft + n_hop * (width - 1))` stems of `(rows, channels,
        samples)` chunk audio whose first rows are `chunks` (the rest: padding)."""
        rows, channels = audio.shape[:2]
        lengths, offsets, centres = (np.zeros(rows, np.int32) for _ in range(3))
        for i, chunk in enumerate(chunks):
            lengths[i], offsets[i], centres[i] = chunk.count, chunk.start - chunk.first, chunk.centre
        if not self.runner.in_graph:  # the network between two TensorFlow programs, on numpy arrays
            mix, magnitude = self._stft(tf.constant(audio))
            frames = self.segment or int(centres.max())
            estimates = self.runner(magnitude.numpy(), lengths, offsets, frames)
            estimates = self.model.joint.outputs_of(tf.constant(estimates))
            return self._em_stage_call(estimates, mix, tf.constant(offsets), tf.constant(centres)).numpy()
        if channels not in self._calls:
            index = tf.TensorSpec((None,), tf.int32)
            signature = [tf.TensorSpec((None, channels, None), tf.float32), index, index, index]
            self._calls[channels] = tf.function(self._separate_batch, input_signature=signature, autograph=False)
        return self._calls[channels](tf.constant(audio), tf.constant(lengths), tf.constant(offsets),
                                     tf.constant(centres)).numpy()

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
        estimates = self.model.joint.outputs_of(self.runner(magnitude, lengths, offsets, width))  # a bridged model computes every filter
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
