"""Hybrid Transformer Demucs settings: demucs's constructor arguments, checked, and the layer plan
they imply (the channels and frequency bins of every encoder and decoder layer).

A demucs 4 checkpoint records the keyword arguments of `demucs.htdemucs.HTDemucs(...)`; `DEFAULTS`
holds that constructor's defaults, so a checkpoint's `kwargs` complete to the same model here.
"""

from fractions import Fraction

from umx_core.errors import UMXError

# demucs 4.1.0 HTDemucs.__init__'s arguments and defaults, `sources` aside
DEFAULTS = {
    "audio_channels": 2, "channels": 48, "channels_time": None, "growth": 2,
    "nfft": 4096, "wiener_iters": 0, "end_iters": 0, "wiener_residual": False, "cac": True,
    "depth": 4, "rewrite": True,
    "multi_freqs": None, "multi_freqs_depth": 3, "freq_emb": 0.2, "emb_scale": 10, "emb_smooth": True,
    "kernel_size": 8, "time_stride": 2, "stride": 4, "context": 1, "context_enc": 0,
    "norm_starts": 4, "norm_groups": 4,
    "dconv_mode": 1, "dconv_depth": 2, "dconv_comp": 8, "dconv_init": 1e-3,
    "bottom_channels": 0,
    "t_layers": 5, "t_emb": "sin", "t_hidden_scale": 4.0, "t_heads": 8, "t_dropout": 0.0,
    "t_max_positions": 10000, "t_norm_in": True, "t_norm_in_group": False, "t_group_norm": False,
    "t_norm_first": True, "t_norm_out": True, "t_max_period": 10000.0, "t_weight_decay": 0.0, "t_lr": None,
    "t_layer_scale": True, "t_gelu": True, "t_weight_pos_embed": 1.0, "t_sin_random_shift": 0,
    "t_cape_mean_normalize": True, "t_cape_augment": True, "t_cape_glob_loc_scale": [5000.0, 1.0, 1.4],
    "t_sparse_self_attn": False, "t_sparse_cross_attn": False, "t_mask_type": "diag", "t_mask_random_seed": 42,
    "t_sparse_attn_window": 500, "t_global_window": 100, "t_sparsity": 0.95, "t_auto_sparsity": False,
    "t_cross_first": False, "rescale": 0.1, "samplerate": 44100, "segment": 10, "use_train_segment": True,
}


def segment_value(segment):
    """The segment in seconds as demucs multiplies it: a Fraction (or its text, "39/5") stays exact,
    an int or float stays as it is, so `int(segment * samplerate)` is demucs's training length."""
    if isinstance(segment, str):
        try:
            return Fraction(segment)
        except ValueError:
            raise UMXError(f"segment {segment!r} is not a number of seconds") from None
    if isinstance(segment, (int, float, Fraction)) and not isinstance(segment, bool):
        return segment
    raise UMXError(f"segment {segment!r} is not a number of seconds")


def segment_text(segment):
    """`segment` for a JSON config: a Fraction as its text ("39/5"), a number as itself."""
    return str(segment) if isinstance(segment, Fraction) else segment


def _unsupported(name, value, why):
    return UMXError(f"HTDemucs argument {name}={value!r} is not supported by this port: {why}")


def htdemucs_config(sources, kwargs):
    """demucs's arguments completed with its defaults and checked for what this port implements.

    Args:
        sources: the source names (the model's output stems, in order).
        kwargs: `{argument: value}` as a demucs checkpoint records them (any subset of `DEFAULTS`).
    Returns:
        `{argument: value}` with every key of `DEFAULTS`, `segment` parsed by `segment_value`.
    Raises:
        UMXError: an unknown argument, or a value this port does not implement, named with its value.
    """
    unknown = sorted(set(kwargs) - set(DEFAULTS))
    if unknown:
        raise UMXError(f"unknown HTDemucs argument(s): {', '.join(unknown)}")
    if not sources or len(set(sources)) != len(sources):
        raise UMXError(f"HTDemucs sources {list(sources)!r}: need one or more distinct names")
    config = {**DEFAULTS, **kwargs}
    config["segment"] = segment_value(config["segment"])
    checks = (
        ("cac", not config["cac"], "only complex-as-channels output (cac=True) is implemented, not Wiener masks"),
        ("multi_freqs", bool(config["multi_freqs"]), "frequency-band splitting (MultiWrap) is not implemented"),
        ("t_sparse_self_attn", config["t_sparse_self_attn"], "sparse attention needs xformers' kernels"),
        ("t_sparse_cross_attn", config["t_sparse_cross_attn"], "sparse attention needs xformers' kernels"),
        ("t_emb", config["t_emb"] not in ("sin", "scaled", "cape"), "the embedding is one of sin, scaled, cape"),
        ("t_sin_random_shift", config["t_sin_random_shift"] != 0,
         "demucs shifts the embedding at random even at inference; only 0 is deterministic"),
        ("dconv_mode", config["dconv_mode"] not in (0, 1, 2, 3), "dconv_mode is 0, 1, 2 or 3"),
        ("nfft", config["nfft"] % 4 != 0, "the hop is nfft / 4, so nfft must be a multiple of 4"),
    )
    for name, bad, why in checks:
        if bad:
            raise _unsupported(name, config[name], why)
    layer_plan(sources, config)  # raises for geometries the port cannot build
    return config


def layer_plan(sources, config):
    """The channels and bins of every layer, as demucs's constructor computes them.

    Args:
        sources: the source names.
        config: a complete config (`htdemucs_config`).
    Returns:
        `(layers, bottom)`: `layers` is one dict per encoder index (0 = outermost) with `freq_in`,
        `freq_out`, `time_in`, `time_out` (encoder channels), `freq_dec_out`, `time_dec_out` (the
        channels the matching decoders give back), `bins_in`, `bins_out` and `norm`; `bottom` is the
        channel width the encoders end with (the transformer's, before `bottom_channels`).
    Raises:
        UMXError: a depth at which demucs would merge the branches, or bins the decoders cannot restore.
    """
    audio, nb_sources = config["audio_channels"], len(sources)
    kernel, stride, growth = config["kernel_size"], config["stride"], config["growth"]
    pad = kernel // 4
    chin_t, chin_f = audio, 2 * audio
    chout_t, chout_f = config["channels_time"] or config["channels"], config["channels"]
    freqs, layers = config["nfft"] // 2, []
    for index in range(config["depth"]):
        if freqs <= kernel:
            # demucs's last frequency layer collapses the bins and the branches merge (HEncLayer empty)
            raise _unsupported("depth", config["depth"], f"with nfft={config['nfft']}, layer {index} would merge "
                               "the time and frequency branches, which the released models never do")
        bins_out = (freqs + 2 * pad - kernel) // stride + 1
        if (bins_out - 1) * stride + kernel - 2 * pad != freqs:
            raise _unsupported("nfft", config["nfft"], f"the decoders cannot restore {freqs} bins at layer {index} "
                               f"with kernel_size={kernel}, stride={stride}")
        outer = index == 0
        layers.append({
            "freq_in": chin_f, "freq_out": chout_f, "time_in": chin_t, "time_out": chout_t,
            "freq_dec_out": 2 * audio * nb_sources if outer else chin_f,
            "time_dec_out": audio * nb_sources if outer else chin_t,
            "bins_in": freqs, "bins_out": bins_out, "norm": index >= config["norm_starts"],
        })
        chin_t, chin_f = chout_t, chout_f
        chout_t, chout_f = int(growth * chout_t), int(growth * chout_f)
        freqs = bins_out
    bottom = layers[-1]["freq_out"]
    width = config["bottom_channels"] or bottom
    if config["t_layers"] > 0:
        # demucs sizes the transformer as channels * growth ** (depth - 1), whatever the layers give
        why = "the transformer needs both branches at the width channels * growth ** (depth - 1)"
        if layers[-1]["time_out"] != bottom:
            raise _unsupported("channels_time", config["channels_time"], why)
        if config["channels"] * growth ** (config["depth"] - 1) != bottom:
            raise _unsupported("growth", growth, why)
        if width % config["t_heads"] or width % 4:
            raise _unsupported("t_heads", config["t_heads"], f"the transformer width {width} must be a multiple "
                               "of the heads and of 4 (the 2-D sine embedding)")
    return layers, bottom


def training_length(config):
    """demucs's training length in samples, `int(segment * samplerate)` with demucs's number types."""
    return int(config["segment"] * config["samplerate"])

