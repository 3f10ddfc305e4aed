"""demucs HTDemucs state dicts onto `umx_core.nn.htdemucs.HTDemucs`, by structure.

Every torch parameter has one Keras weight, found by walking the model's layers (not by Keras
names). Keras shapes are torch's reversed: Conv2d `(out, in, kF, kT)` -> Conv2D `(kT, kF, in, out)`
on `(batch, frames, bins, channels)`; Conv1d `(out, in, k)` -> `(k, 1, in, out)`; ConvTranspose
`(in, out, ...)` -> `(..., out, in)`; Linear `(out, in)` -> `(in, out)`, as is a 1x1 Conv1d. The
embedding tables keep their layout and take the scale demucs multiplies them by at run time.
"""

import numpy as np

from umx_core.errors import UMXError

# demucs's transformer ScaledEmbedding multiplies its stored table by this boost at run time
POSITION_BOOST = 3.0


def _entry(name, variable, torch_shape, transpose=True, scale=None):
    return {"name": name, "variable": variable, "torch_shape": tuple(int(d) for d in torch_shape),
            "transpose": transpose, "scale": scale}


def _vector(name, variable):
    return _entry(name, variable, variable.shape)


def _layer(prefix, layer, two_d=False):
    """A Conv2D, Conv2DTranspose or Dense as the torch module `prefix` (2-D, 1-D or Linear)."""
    shape = tuple(layer.kernel.shape)
    if len(shape) == 4 and not two_d:
        shape = shape[:1] + shape[2:]  # a torch Conv1d has no bins axis
    return [_entry(f"{prefix}.weight", layer.kernel, shape[::-1]), _vector(f"{prefix}.bias", layer.bias)]


def _conv1x1(prefix, layer):
    """A Dense layer as a torch 1x1 Conv1d (`(out, in, 1)`)."""
    return [_entry(f"{prefix}.weight", layer.kernel, tuple(layer.kernel.shape)[::-1] + (1,)),
            _vector(f"{prefix}.bias", layer.bias)]


def _norm(prefix, norm):
    if norm is None:
        return []
    return [_vector(f"{prefix}.weight", norm.gamma), _vector(f"{prefix}.bias", norm.beta)]


def _scale(name, layer_scale):
    return [] if layer_scale is None else [_vector(name, layer_scale.scale)]


def _dconv(prefix, dconv):
    if dconv is None:
        return []
    out = []
    for d, (dilated, norm_in, project, norm_out, scale) in enumerate(dconv.residuals):
        out += _layer(f"{prefix}.layers.{d}.0", dilated) + _norm(f"{prefix}.layers.{d}.1", norm_in)
        out += _layer(f"{prefix}.layers.{d}.3", project) + _norm(f"{prefix}.layers.{d}.4", norm_out)
        out += _scale(f"{prefix}.layers.{d}.6.scale", scale)
    return out


def _encoder(prefix, layer):
    out = _layer(f"{prefix}.conv", layer.conv, layer.freq) + _norm(f"{prefix}.norm1", layer.norm1)
    if layer.rewrite is not None:
        out += _layer(f"{prefix}.rewrite", layer.rewrite, layer.freq) + _norm(f"{prefix}.norm2", layer.norm2)
    return out + _dconv(f"{prefix}.dconv", layer.dconv)


def _decoder(prefix, layer):
    out = _layer(f"{prefix}.conv_tr", layer.conv_tr, layer.freq) + _norm(f"{prefix}.norm2", layer.norm2)
    if layer.rewrite is not None:
        out += _layer(f"{prefix}.rewrite", layer.rewrite, layer.freq) + _norm(f"{prefix}.norm1", layer.norm1)
    return out + _dconv(f"{prefix}.dconv", layer.dconv)


def _transformer_layer(prefix, layer):
    attention = f"{prefix}.{'cross_attn' if layer.cross else 'self_attn'}"
    attn = layer.attention
    out = [_entry(f"{attention}.in_proj_weight", attn.in_kernel, tuple(attn.in_kernel.shape)[::-1]),
           _vector(f"{attention}.in_proj_bias", attn.in_bias),
           _entry(f"{attention}.out_proj.weight", attn.out_kernel, tuple(attn.out_kernel.shape)[::-1]),
           _vector(f"{attention}.out_proj.bias", attn.out_bias)]
    out += _layer(f"{prefix}.linear1", layer.linear1) + _layer(f"{prefix}.linear2", layer.linear2)
    for index, norm in enumerate(layer.norms):
        out += _norm(f"{prefix}.norm{index + 1}", norm)
    out += _norm(f"{prefix}.norm_out", layer.norm_out)
    return out + _scale(f"{prefix}.gamma_1.scale", layer.gamma_1) + _scale(f"{prefix}.gamma_2.scale", layer.gamma_2)


def _transformer(prefix, encoder):
    out = _norm(f"{prefix}.norm_in", encoder.norm_in) + _norm(f"{prefix}.norm_in_t", encoder.norm_in_t)
    for index, (layer, layer_t) in enumerate(zip(encoder.layers, encoder.layers_t)):
        out += _transformer_layer(f"{prefix}.layers.{index}", layer)
        out += _transformer_layer(f"{prefix}.layers_t.{index}", layer_t)
    if encoder.position_table is not None:
        table = encoder.position_table
        out.append(_entry(f"{prefix}.position_embeddings.embedding.weight", table, table.shape, transpose=False,
                          scale=POSITION_BOOST))
    return out


def htdemucs_entries(model):
    """Every torch name of `model`'s demucs counterpart with the Keras weight it maps to.

    Args:
        model: an `umx_core.nn.htdemucs.HTDemucs`.
    Returns:
        list of dicts: `name` (torch state name), `variable` (Keras), `torch_shape`, `transpose`
        (reverse the axes) and `scale` (None, or the factor demucs applies at run time).
    """
    out = []
    for branch, layers in (("encoder", model.encoder), ("tencoder", model.tencoder)):
        for index, layer in enumerate(layers):
            out += _encoder(f"{branch}.{index}", layer)
    for branch, layers in (("decoder", model.decoder), ("tdecoder", model.tdecoder)):
        for index, layer in enumerate(layers):
            out += _decoder(f"{branch}.{index}", layer)
    if model.freq_emb is not None:
        table = model.freq_emb.table
        out.append(_entry("freq_emb.embedding.weight", table, table.shape, transpose=False,
                          scale=float(model.config["emb_scale"])))
    if model.bottom is not None:
        names = ("channel_upsampler", "channel_downsampler", "channel_upsampler_t", "channel_downsampler_t")
        for name, layer in zip(names, model.bottom):
            out += _conv1x1(name, layer)
    if model.crosstransformer is not None:
        out += _transformer("crosstransformer", model.crosstransformer)
    return out


def assign_htdemucs_weights(model, state):
    """Set every weight of `model` from a demucs HTDemucs state dict.

    Args:
        model: an `umx_core.nn.htdemucs.HTDemucs` built with the checkpoint's arguments.
        state: `{torch name: array}` as `model.state_dict()` / `demucs.states.get_state` name them;
            float16 arrays are upcast to float32.
    Raises:
        UMXError: names missing from `state`, names `model` has no place for, or arrays of the wrong
            shape, each named with the shapes; or a Keras weight no name reaches.
    """
    entries = htdemucs_entries(model)
    names = {entry["name"] for entry in entries}
    missing = sorted(names - set(state))
    unexpected = sorted(set(state) - names)
    wrong = [f"{e['name']} {tuple(np.shape(state[e['name']]))} (expected {e['torch_shape']})" for e in entries
             if e["name"] in state and tuple(np.shape(state[e["name"]])) != e["torch_shape"]]
    problems = [f"{label}: {', '.join(items)}" for label, items in
                (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if items]
    if problems:
        raise UMXError("the HTDemucs state does not fit the model's arguments; " + "; ".join(problems))
    reached = {id(entry["variable"]) for entry in entries}
    unreached = [w.path for w in model.weights if id(w) not in reached]
    if unreached or len(reached) != len(entries):
        raise UMXError(f"HTDemucs weights no state name reaches: {unreached or 'a weight reached twice'}")
    for entry in entries:
        value = np.asarray(state[entry["name"]], dtype=np.float32)
        if entry["transpose"]:
            value = np.transpose(value)
        if entry["scale"] is not None:
            value = value * np.float32(entry["scale"])
        entry["variable"].assign(value.reshape(tuple(entry["variable"].shape)))
