"""Hybrid Transformer Demucs's convolutional layers: the encoder and decoder layers of both
branches, their DConv residual branch, and the frequency embedding.

Both branches run channels-last on 4-D tensors `(batch, frames, bins, channels)`: the frequency
branch's axis 1 is STFT frames and axis 2 bins; the time branch's axis 1 is samples (or their
strided steps) and axis 2 has size 1. A layer's `freq` flag says which axis its strided convolution
runs on (bins for the frequency branch, axis 1 for the time branch); the DConv branch always runs on
axis 1, row by row, as demucs's does on its `(batch * bins, channels, frames)` reshape.
"""

from umx_core.nn.htdemucs_ops import Float32Layer, GroupNorm, LayerScale, apply_optional, gelu, glu, heavy
from umx_core.nn.htdemucs_spec import dims, pad_axis


def kernel_along(freq, size):
    """A 2-D kernel (or stride) shape spanning `size` on bins (`freq`) or on axis 1 (time)."""
    return (1, size) if freq else (size, 1)


def conv(channels_in, channels_out, kernel, strides=1, dilation=1, padding="valid"):
    """A built Conv2D with a float32 output (`umx_core.nn.htdemucs_ops.heavy`)."""
    return heavy("conv", channels_in, channels_out, kernel, strides=strides, dilation_rate=dilation, padding=padding)


class DConv(Float32Layer):
    """demucs's DConv residual branch: `depth` residual layers of dilated convolutions on axis 1.

    Each layer: conv (kernel 3, dilation 2**d) to `channels / compress`, GroupNorm(1) per row, GELU,
    1x1 conv to `2 * channels`, GroupNorm(1) per row, GLU, LayerScale; added to its input. A negative
    `depth` means `|depth|` layers without dilation, as in demucs.

    Call args:
        x: float32 `(batch, steps, rows, channels)`.
    Returns:
        float32, same shape.
    """

    def __init__(self, channels, compress=8, depth=2, **kwargs):
        super().__init__(**kwargs)
        hidden = int(channels / compress)
        self.residuals = []
        for d in range(abs(depth)):
            dilation = 2**d if depth > 0 else 1
            self.residuals.append([
                conv(channels, hidden, (3, 1), dilation=(dilation, 1), padding="same"),
                GroupNorm(hidden, axes=(1,)),
                conv(hidden, 2 * channels, 1),
                GroupNorm(2 * channels, axes=(1,)),
                LayerScale(channels),
            ])
        self.built = True  # every weight exists now: nothing waits for a first call

    def call(self, x):
        """Add every residual layer's output in turn."""
        for dilated, norm_in, project, norm_out, scale in self.residuals:
            x = x + scale(glu(norm_out(project(gelu(norm_in(dilated(x)))))))
        return x


def _norm_or_none(enabled, channels, groups):
    # demucs's HEncLayer/HDecLayer GroupNorm spans the whole (channels / groups, bins, frames) block
    return GroupNorm(channels, groups, axes=(1, 2)) if enabled else None


class HEncLayer(Float32Layer):
    """demucs's encoder layer: strided conv, (GroupNorm), GELU, (DConv), (rewrite conv, GroupNorm, GLU).

    Args:
        channels_in, channels_out: channels before and after.
        freq: the strided conv runs on bins (frequency branch) rather than axis 1 (time branch).
        kernel_size, stride: the strided conv's (padded by `kernel_size // 4` on each side; the time
            branch first zero-pads axis 1 on the right to a multiple of `stride`).
        norm, norm_groups: GroupNorm after the conv and the rewrite.
        context: the rewrite conv's kernel is `1 + 2 * context` (square on the frequency branch).
        dconv: insert the DConv branch; `dconv_compress` and `dconv_depth` configure it.
        rewrite: add the rewrite conv and GLU.

    Call args:
        x: float32 `(batch, steps, bins, channels_in)` (bins 1 on the time branch).
    Returns:
        float32 `(batch, steps', bins', channels_out)`: bins divided by `stride` (frequency branch) or
        steps by `stride`, rounded up (time branch).
    """

    def __init__(self, channels_in, channels_out, freq, kernel_size=8, stride=4, norm=False, norm_groups=4,
                 context=0, dconv=True, dconv_compress=8, dconv_depth=2, rewrite=True, **kwargs):
        super().__init__(**kwargs)
        self.freq, self.stride, self.pad = freq, stride, kernel_size // 4
        self.conv = conv(channels_in, channels_out, kernel_along(freq, kernel_size), kernel_along(freq, stride))
        self.norm1 = _norm_or_none(norm, channels_out, norm_groups)
        self.dconv = DConv(channels_out, dconv_compress, dconv_depth) if dconv else None
        side = 1 + 2 * context
        self.rewrite = conv(channels_out, 2 * channels_out, (side, side) if freq else (side, 1), padding="same") \
            if rewrite else None
        self.norm2 = _norm_or_none(norm and rewrite, 2 * channels_out, norm_groups)
        self.built = True  # every weight exists now: nothing waits for a first call

    def call(self, x):
        """Encode `x` (see the class docstring)."""
        if self.freq:
            x = pad_axis(x, 2, self.pad, self.pad)
        else:
            steps = dims(x)[1]
            x = pad_axis(x, 1, self.pad, self.pad + (-steps) % self.stride)
        y = gelu(apply_optional(self.norm1, self.conv(x)))
        y = apply_optional(self.dconv, y)
        if self.rewrite is None:
            return y
        return glu(apply_optional(self.norm2, self.rewrite(y)))


class HDecLayer(Float32Layer):
    """demucs's decoder layer: add the skip, (rewrite conv, GroupNorm, GLU), (DConv), transposed
    conv, (GroupNorm), crop, GELU unless it is the last layer.

    Args:
        channels_in, channels_out: channels before and after.
        freq: the transposed conv runs on bins (frequency branch) rather than axis 1.
        last: the outermost decoder, with no GELU at the end.
        kernel_size, stride: the transposed conv's; `kernel_size // 4` is cropped from each side of
            the bins, or from the start of axis 1 (which is then cut to `length`).
        norm, norm_groups, context, dconv, dconv_compress, dconv_depth, rewrite: as `HEncLayer`;
            the frequency branch's rewrite kernel is square (3x3 for context 1), as demucs's.

    Call args:
        x, skip: float32 `(batch, steps, bins, channels_in)`.
        length: steps to keep on the time branch (int or scalar tensor); ignored on the frequency branch.
    Returns:
        float32 `(batch, steps', bins', channels_out)`, bins times `stride` (frequency branch) or
        `length` steps (time branch).
    """

    def __init__(self, channels_in, channels_out, freq, last=False, kernel_size=8, stride=4, norm=False,
                 norm_groups=4, context=1, dconv=True, dconv_compress=8, dconv_depth=2, rewrite=True, **kwargs):
        super().__init__(**kwargs)
        self.freq, self.last, self.pad = freq, last, kernel_size // 4
        side = 1 + 2 * context
        self.rewrite = conv(channels_in, 2 * channels_in, (side, side) if freq else (side, 1), padding="same") \
            if rewrite else None
        self.norm1 = _norm_or_none(norm and rewrite, 2 * channels_in, norm_groups)
        self.dconv = DConv(channels_in, dconv_compress, dconv_depth) if dconv else None
        self.conv_tr = heavy("conv_transpose", channels_in, channels_out, kernel_along(freq, kernel_size),
                             strides=kernel_along(freq, stride))
        self.norm2 = _norm_or_none(norm, channels_out, norm_groups)
        self.built = True  # every weight exists now: nothing waits for a first call

    def call(self, x, skip, length=None):
        """Decode `x` with its skip connection (see the class docstring)."""
        y = x + skip
        if self.rewrite is not None:
            y = glu(apply_optional(self.norm1, self.rewrite(y)))
        y = apply_optional(self.dconv, y)
        # demucs normalises the whole transposed-conv output, before the crop
        z = apply_optional(self.norm2, self.conv_tr(y))
        if self.freq:
            z = z[:, :, self.pad : dims(z)[2] - self.pad] if self.pad else z
        else:
            z = z[:, self.pad : self.pad + length]
        return z if self.last else gelu(z)


class FrequencyEmbedding(Float32Layer):
    """demucs's frequency embedding after the first frequency encoder: a learnt vector per bin,
    times `weight`, added to every frame. The stored table is demucs's `ScaledEmbedding.weight`
    (its parameter times its `scale`).

    Call args:
        x: float32 `(batch, frames, bins, channels)`.
    Returns:
        float32, same shape.
    """

    def __init__(self, bins, channels, weight=0.2, **kwargs):
        super().__init__(**kwargs)
        self.scale = float(weight)
        self.table = self.add_weight(shape=(int(bins), int(channels)), initializer="zeros", name="table")
        self.built = True  # every weight exists now: nothing waits for a first call

    def call(self, x):
        """Add the weighted embedding of every bin."""
        return x + self.scale * self.table
