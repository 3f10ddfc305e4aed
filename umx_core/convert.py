"""open-unmix state dicts -> umx_core weights.

open-unmix flattens a spectrogram channel-major (`c * bins + b`) for fc1 and fc3;
`BLSTMSpectralFilterLayer` flattens bin-major (`b * channels + c`), so those weights
are permuted here. LSTM weights are transposed into `LSTMStack`'s fused layout.
"""

import re

import numpy as np

from umx_core.errors import UMXError

# keys of the released files that carry no model weights
_IGNORED = re.compile(r"^(stft\.window|transform\.0\.window|sample_rate)$|num_batches_tracked$")


def _numpy(state_dict):
    out = {}
    for key, value in state_dict.items():
        if _IGNORED.search(key):
            continue
        if hasattr(value, "detach"):
            value = value.detach().cpu().numpy()
        out[key] = np.asarray(value, np.float32)
    return out


def load_state_dict(source):
    """A state dict from a mapping, or from a `.pth` path (read without PyTorch: `umx_core.pth`)."""
    if not isinstance(source, (str, bytes)) and hasattr(source, "keys"):
        return source
    from umx_core import pth

    return pth.load(source)


def infer_filter_kwargs(state_dict):
    """`BLSTMSpectralFilterLayer` arguments from the shapes of an OpenUnmix state dict."""
    sd = _numpy(state_dict)
    try:
        hidden_size, fc1_in = sd["fc1.weight"].shape
        max_bin = sd["input_mean"].shape[0]
        nb_channels = fc1_in // max_bin
        nb_bins = sd["fc3.weight"].shape[0] // nb_channels
    except KeyError as exc:
        raise UMXError(f"not an open-unmix OpenUnmix state dict: missing {exc}") from exc
    nb_layers = len([k for k in sd if re.fullmatch(r"lstm\.weight_ih_l\d+", k)])
    unidirectional = "lstm.weight_ih_l0_reverse" not in sd
    return dict(
        nb_bins=int(nb_bins),
        nb_channels=int(nb_channels),
        hidden_size=int(hidden_size),
        nb_layers=int(nb_layers),
        unidirectional=bool(unidirectional),
        max_bin=int(max_bin),
    )


def _channel_major_to_bin_major(nb_channels, nb_bins):
    """Index map: position `b * C + c` in our layout takes torch's `c * bins + b`."""
    return np.arange(nb_channels * nb_bins).reshape(nb_channels, nb_bins).T.reshape(-1)


def assign_openunmix_weights(layer, state_dict):
    """Copy an OpenUnmix state dict into a built `BLSTMSpectralFilterLayer`."""
    sd = _numpy(state_dict)
    kw = infer_filter_kwargs(sd)
    mine = {k: getattr(layer, k) for k in kw}
    if mine != kw:
        raise UMXError(f"state dict shapes {kw} do not match the layer {mine}")
    if not layer.built:
        layer.build((None, None, layer.nb_bins, layer.nb_channels))
    C, max_bin, bins = kw["nb_channels"], kw["max_bin"], kw["nb_bins"]
    fc1_rows = _channel_major_to_bin_major(C, max_bin)
    fc3_rows = _channel_major_to_bin_major(C, bins)
    layer.fc1.kernel.assign(sd["fc1.weight"].T[fc1_rows])
    layer.fc2.kernel.assign(sd["fc2.weight"].T)
    layer.fc3.kernel.assign(sd["fc3.weight"][fc3_rows].T)
    for name, rows in (("bn1", None), ("bn2", None), ("bn3", fc3_rows)):
        bn = getattr(layer, name)
        for ours, theirs in (("gamma", "weight"), ("beta", "bias"), ("moving_mean", "running_mean"),
                             ("moving_variance", "running_var")):
            value = sd[f"{name}.{theirs}"]
            getattr(bn, ours).assign(value if rows is None else value[rows])
    for name in ("input_mean", "input_scale", "output_scale", "output_mean"):
        getattr(layer, name).assign(sd[name])
    suffixes = [""] if kw["unidirectional"] else ["", "_reverse"]
    for k in range(kw["nb_layers"]):
        w_ih = [sd[f"lstm.weight_ih_l{k}{s}"] for s in suffixes]
        w_hh = [sd[f"lstm.weight_hh_l{k}{s}"] for s in suffixes]
        bias = [sd[f"lstm.bias_ih_l{k}{s}"] + sd[f"lstm.bias_hh_l{k}{s}"] for s in suffixes]
        layer.lstm.kernels[k].assign(np.concatenate([w.T for w in w_ih], axis=1))
        layer.lstm.recurrent_kernels[k].assign(np.stack([w.T for w in w_hh]))
        layer.lstm.biases[k].assign(np.concatenate(bias))
    return layer


def filter_from_openunmix(state_dict, name=None):
    """A `BLSTMSpectralFilterLayer` with the weights of an OpenUnmix state dict (or .pth path)."""
    from umx_core.nn.spectral_filter import BLSTMSpectralFilterLayer

    sd = _numpy(load_state_dict(state_dict))
    layer = BLSTMSpectralFilterLayer(name=name, **infer_filter_kwargs(sd))
    layer.build((None, None, layer.nb_bins, layer.nb_channels))
    return assign_openunmix_weights(layer, sd)


def filters_from_openunmix(state_dicts):
    """`{target: BLSTMSpectralFilterLayer}` from open-unmix weights, `{target: state dict or .pth path}`;
    the targets must agree on their channels."""
    filters = {target: filter_from_openunmix(sd, name=target) for target, sd in state_dicts.items()}
    channels = {layer.nb_channels for layer in filters.values()}
    if len(channels) != 1:
        raise UMXError(f"targets disagree on the number of channels: {channels}")
    return filters
