"""HTDemucs in Keras against demucs 4.1.0 with the same random weights: each block, then the
whole model (SNR in dB per source), compiled, saved, in mixed bfloat16, and the arguments it refuses."""

from fractions import Fraction

import keras
import numpy as np
import pytest
import tensorflow as tf

from umx_core.errors import UMXError
from umx_core.nn.htdemucs import HTDemucs, standardise
from umx_core.nn.htdemucs_config import htdemucs_config, training_length
from umx_core.nn.htdemucs_ops import GroupNorm, gelu
from umx_core.nn.htdemucs_spec import complex_as_channels, inverse_spectrogram, spectrogram
from umx_core.nn.htdemucs_weights import assign_htdemucs_weights
from umx_core.runtime.xla import compute_in

torch = pytest.importorskip("torch")
demucs_htdemucs = pytest.importorskip("demucs.htdemucs")

FOUR = ["drums", "bass", "other", "vocals"]
SIX = FOUR + ["guitar", "piano"]
# tiny versions of the released geometry: the same layer kinds, GroupNorm from layer 2, a bottleneck
SMALL = dict(audio_channels=2, channels=8, nfft=512, depth=3, samplerate=8000, segment=Fraction(1, 2),
             bottom_channels=16, t_layers=3, t_heads=2, dconv_mode=3, norm_starts=2)
SMALL_6S = dict(audio_channels=1, channels=8, nfft=256, depth=2, samplerate=8000, segment=Fraction(3, 10),
                bottom_channels=0, t_layers=2, t_heads=2, dconv_mode=3)
# encoder 1's conv (16 to 256 channels) is one oneDNN's AMX sums wrongly in bfloat16; 16 channels a head: q scaled
BFLOAT16 = dict(SMALL, channels=16, growth=16, depth=2, bottom_channels=128, t_heads=8, t_layers=2)
RELEASED = dict(segment=Fraction(39, 5), channels=48, growth=2, nfft=4096, cac=True, depth=4, rewrite=True,
                kernel_size=8, stride=4, time_stride=2, context=1, context_enc=0, norm_starts=4, norm_groups=4,
                dconv_mode=3, dconv_depth=2, dconv_comp=8, freq_emb=0.2, emb_scale=10, emb_smooth=True,
                multi_freqs=[], bottom_channels=512, t_layers=5, t_heads=8, t_hidden_scale=4.0, t_emb="sin",
                samplerate=44100, audio_channels=2)


def snr(ref, ours):
    """Signal-to-error ratio in dB, float64 (complex arrays as their real and imaginary parts)."""
    ref, ours = (np.stack([np.real(a), np.imag(a)]).astype(np.float64) for a in (ref, ours))
    assert ref.shape == ours.shape, (ref.shape, ours.shape)
    return 10 * np.log10(np.sum(ref**2) / np.sum((ref - ours) ** 2))


def source_snrs(ref, ours):
    return [snr(ref[:, s], ours[:, s]) for s in range(ref.shape[1])]


def torch_model(sources, seed, **kwargs):
    """demucs's HTDemucs, eval mode, random weights; LayerScales, norms and embeddings of order 0.1-1
    so that no branch is too small to see (demucs starts the LayerScales at 1e-4 and 1e-3)."""
    torch.manual_seed(seed)
    model = demucs_htdemucs.HTDemucs(sources=sources, **kwargs).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("scale") or ".norm" in name:
                param.uniform_(0.3, 1.0)
            elif "position_embeddings" in name:
                param.normal_(0.0, 0.3)
    return model


def keras_twin(model, sources, **kwargs):
    ours = HTDemucs(sources, **kwargs)
    assign_htdemucs_weights(ours, {k: v.numpy() for k, v in model.state_dict().items()})
    return ours


def run_torch(module, *args, **kwargs):
    with torch.no_grad():
        out = module(*[torch.from_numpy(a) if isinstance(a, np.ndarray) else a for a in args], **kwargs)
    return out


def audio(shape, seed):
    return (0.3 * np.random.default_rng(seed).standard_normal(shape)).astype(np.float32)


@pytest.fixture(scope="module")
def small():
    ref = torch_model(FOUR, 0, **SMALL)
    return ref, keras_twin(ref, FOUR, **SMALL)


@pytest.fixture(scope="module")
def small_6s():
    ref = torch_model(SIX, 1, **SMALL_6S)
    return ref, keras_twin(ref, SIX, **SMALL_6S)


# channels-last views of demucs's channels-first tensors
def freq_last(x):
    return np.ascontiguousarray(np.transpose(x, (0, 3, 2, 1)))  # (B, C, F, T) <-> (B, T, F, C)


def time_last(x):
    return np.ascontiguousarray(np.transpose(x, (0, 2, 1))[:, :, None])  # (B, C, L) -> (B, L, 1, C)


def test_spectrogram_and_its_inverse_match_demucs(small):
    ref, _ = small
    mix = audio((2, 2, 3001), 0)
    spec = run_torch(ref._spec, mix)  # (B, C, F, T)
    ours = spectrogram(tf.constant(mix), 512)  # (B, C, T, F)
    assert snr(spec.numpy(), np.swapaxes(ours.numpy(), -1, -2)) > 100
    assert snr(run_torch(ref._magnitude, spec).numpy(), freq_last(complex_as_channels(ours).numpy())) > 100
    # any spectrum, with imaginary parts in the DC bin that both inverse FFTs must ignore; the constant
    # window normalisation is right only where demucs keeps samples
    rng = np.random.default_rng(1)
    z = (rng.standard_normal((2, 3, 2, 256, 24)) + 1j * rng.standard_normal((2, 3, 2, 256, 24))).astype(np.complex64)
    want = run_torch(ref._ispec, z, 3001).numpy()
    frames_first = tf.constant(np.swapaxes(z, -1, -2))
    compiled = tf.function(lambda s: inverse_spectrogram(s, 512, 3001), jit_compile=True)
    for ours in (inverse_spectrogram(frames_first, 512, 3001), compiled(frames_first)):
        assert snr(want, ours.numpy()) > 100


def test_reflect_padding_of_short_signals_matches_demucs(small):
    ref, _ = small
    short = audio((1, 2, 150), 2)  # shorter than the 192-sample reflect pad: demucs adds zeros first
    ours = spectrogram(tf.constant(short), 512).numpy()
    assert snr(run_torch(ref._spec, short).numpy(), np.swapaxes(ours, -1, -2)) > 100


def test_encoder_and_decoder_layers_match_demucs(small):
    ref, ours = small
    rng = np.random.default_rng(3)
    for index in (0, 2):  # layer 2 has GroupNorms
        x = rng.standard_normal((2, ref.encoder[index].conv.in_channels, 256 // 4**index, 7)).astype(np.float32)
        want = run_torch(ref.encoder[index], x).numpy()
        assert snr(want, freq_last(ours.encoder[index](freq_last(x)).numpy())) > 90
        # 1001 samples, not a multiple of the stride
        xt = rng.standard_normal((2, ref.tencoder[index].conv.in_channels, 1001)).astype(np.float32)
        want = run_torch(ref.tencoder[index], xt).numpy()
        assert snr(want, ours.tencoder[index](time_last(xt)).numpy()[:, :, 0].transpose(0, 2, 1)) > 90
    for index in (0, 2):  # the innermost (GroupNorm) and the outermost (no GELU)
        layer = ref.decoder[index]
        x, skip = (rng.standard_normal((2, layer.chin, 4**index * 4, 7)).astype(np.float32) for _ in range(2))
        want, _ = run_torch(layer, x, skip, None)
        assert snr(want.numpy(), freq_last(ours.decoder[index](freq_last(x), freq_last(skip)).numpy())) > 90
        xt, skip_t = (rng.standard_normal((2, layer.chin, 251)).astype(np.float32) for _ in range(2))
        want, _ = run_torch(ref.tdecoder[index], xt, skip_t, 1001)
        got = ours.tdecoder[index](time_last(xt), time_last(skip_t), length=1001).numpy()
        assert snr(want.numpy(), got[:, :, 0].transpose(0, 2, 1)) > 90


def test_frequency_decoders_rewrite_with_a_3x3_kernel(small):
    _, ours = small
    assert [tuple(d.rewrite.kernel.shape[:2]) for d in ours.decoder] == [(3, 3)] * 3
    assert [tuple(d.rewrite.kernel.shape[:2]) for d in ours.tdecoder] == [(3, 1)] * 3


def test_dconv_runs_on_frames_per_bin_as_demucs(small):
    ref, ours = small
    x = np.random.default_rng(4).standard_normal((2, 9, 64, 8)).astype(np.float32)  # (B, T, F, C)
    rows = x.transpose(0, 2, 3, 1).reshape(2 * 64, 8, 9)  # demucs's (B * F, C, T)
    want = run_torch(ref.encoder[0].dconv, rows).numpy().reshape(2, 64, 8, 9).transpose(0, 3, 1, 2)
    assert snr(want, ours.encoder[0].dconv(x).numpy()) > 90


def test_cross_transformer_matches_demucs(small):
    ref, ours = small
    rng = np.random.default_rng(5)
    x, xt = rng.standard_normal((2, 16, 4, 9)).astype(np.float32), rng.standard_normal((2, 16, 30)).astype(np.float32)
    want, want_t = run_torch(ref.crosstransformer, x, xt)
    got, got_t = ours.crosstransformer(freq_last(x), np.ascontiguousarray(xt.transpose(0, 2, 1)))
    assert snr(want.numpy(), freq_last(got.numpy())) > 90
    assert snr(want_t.numpy(), got_t.numpy().transpose(0, 2, 1)) > 90


def test_norms_gelu_and_std_are_torchs():
    x = (1e-3 * np.random.default_rng(6).standard_normal((2, 5, 3, 8))).astype(np.float32)  # eps matters here
    group = torch.nn.GroupNorm(4, 8)
    layer = torch.nn.LayerNorm(8)
    want = run_torch(group, freq_last(x)).numpy()
    assert snr(want, freq_last(GroupNorm(8, 4, axes=(1, 2))(x).numpy())) > 100
    assert snr(run_torch(layer, x).numpy(), GroupNorm(8)(x).numpy()) > 100
    # a DConv GroupNorm of the released size, per bin over 768 channels by 336 frames, mean three times
    # the spread: one float32 sum over all its elements gives 88 dB here; summing per axis 119 dB
    wide = (1 + 0.3 * np.random.default_rng(7).standard_normal((1, 336, 2, 768))).astype(np.float32)
    rows = torch.from_numpy(np.ascontiguousarray(wide.transpose(0, 2, 3, 1).reshape(2, 768, 336))).double()
    exact = torch.nn.GroupNorm(1, 768).double()(rows).detach().numpy().reshape(1, 2, 768, 336).transpose(0, 3, 1, 2)
    assert snr(exact, GroupNorm(768, axes=(1,))(wide).numpy()) > 105
    grid = np.linspace(-4, 4, 801, dtype=np.float32)
    exact = torch.nn.functional.gelu(torch.from_numpy(grid)).numpy()  # the tanh form is up to 5e-4 away
    np.testing.assert_allclose(gelu(grid).numpy(), exact, atol=1e-6)
    y = audio((2, 2, 7), 7)
    _, _, std = standardise(tf.constant(y), [1, 2])
    np.testing.assert_allclose(std.numpy(), torch.from_numpy(y).std(dim=(1, 2), keepdim=True).numpy(), rtol=1e-6)


def test_small_model_matches_demucs(small):
    ref, ours = small
    mix = audio((2, 2, 4000), 8)
    assert min(source_snrs(run_torch(ref, mix).numpy(), ours(mix).numpy())) >= 80


def test_six_sources_mono_without_bottleneck_and_a_short_input(small_6s):
    ref, ours = small_6s
    assert ours.training_length == 2400
    for length in (2400, 1777):  # a shorter input is zero-padded to the training length and cut back
        mix = audio((2, 1, length), length)
        out = ours(mix).numpy()
        assert out.shape == (2, 6, 1, length)
        assert min(source_snrs(run_torch(ref, mix).numpy(), out)) >= 80
    with pytest.raises(UMXError, match="longer than the model's training length 2400"):
        ours(audio((1, 1, 2401), 9))


@pytest.mark.parametrize("variant", [
    dict(rewrite=False, dconv_mode=1, t_emb="scaled", t_max_positions=256, context_enc=1, norm_starts=0),
    dict(dconv_mode=2, t_emb="cape", t_norm_first=False, dconv_depth=-2, use_train_segment=False),
    dict(t_group_norm=1, t_norm_in=False, t_norm_in_group=1, t_cross_first=True, t_gelu=False, t_layer_scale=False),
    dict(t_norm_out=False, t_weight_pos_embed=0.5, t_max_period=1000.0, context=2, emb_scale=3, freq_emb=0.5),
    dict(channels_time=12, t_layers=0, norm_groups=2, norm_starts=1, freq_emb=0),
], ids=["scaled-emb", "cape-postnorm", "group-norms", "embedding-weights", "no-transformer"])
def test_other_demucs_arguments_match(variant):
    kwargs = {**SMALL, "depth": 2, "bottom_channels": 16, "t_layers": 2, **variant}
    ref = torch_model(FOUR[:2], 10, **kwargs)
    mix = audio((1, 2, 3333 if not kwargs.get("use_train_segment", True) else 4000), 11)
    assert min(source_snrs(run_torch(ref, mix).numpy(), keras_twin(ref, FOUR[:2], **kwargs)(mix).numpy())) >= 80


def test_compiled_call_equals_eager(small_6s):
    _, ours = small_6s
    mix = audio((1, 1, 2400), 12)
    compiled = tf.function(lambda m: ours(m), jit_compile=True)
    np.testing.assert_allclose(compiled(tf.constant(mix)).numpy(), ours(mix).numpy(), atol=1e-5, rtol=1e-5)


def test_keras_file_round_trip(small, tmp_path):
    _, ours = small
    path = str(tmp_path / "htdemucs.keras")
    ours.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.training_length == 4000 and loaded.get_config()["segment"] == "1/2"
    mix = audio((1, 2, 4000), 13)
    np.testing.assert_array_equal(loaded(mix).numpy(), ours(mix).numpy())


def test_released_geometry_has_demucs_parameters_and_takes_its_float16_state():
    for sources, bottom, count in ((FOUR, 512, 41_984_456), (SIX, 0, 27_414_996)):
        ref = demucs_htdemucs.HTDemucs(sources=sources, **{**RELEASED, "bottom_channels": bottom})
        ours = HTDemucs(sources, **{**RELEASED, "bottom_channels": bottom})
        assert ours.count_params() == sum(p.numel() for p in ref.parameters()) == count
        assert ours.training_length == 343_980
    state = {k: v.numpy().astype(np.float16) for k, v in ref.state_dict().items()}
    assign_htdemucs_weights(ours, state)
    np.testing.assert_array_equal(ours.freq_emb.table.numpy(),
                                  state["freq_emb.embedding.weight"].astype(np.float32) * np.float32(10))


def test_training_length_as_demucs_computes_it():
    assert training_length(htdemucs_config(FOUR, {"segment": Fraction(39, 5)})) == 343_980
    assert training_length(htdemucs_config(FOUR, {"segment": 7.8})) == int(7.8 * 44100)
    assert training_length(htdemucs_config(FOUR, {"segment": "39/5", "samplerate": 8000})) == 62_400


@pytest.mark.parametrize("kwargs, named", [
    ({"cac": False}, "cac=False"),
    ({"multi_freqs": [0.5]}, "multi_freqs"),
    ({"t_sparse_self_attn": True}, "t_sparse_self_attn=True"),
    ({"t_emb": "learnt"}, "t_emb='learnt'"),
    ({"t_sin_random_shift": 2}, "t_sin_random_shift=2"),
    ({"depth": 5}, "depth=5"),
    ({"t_heads": 7}, "t_heads=7"),
    ({"hybrid": True}, "hybrid"),
])
def test_unsupported_arguments_are_named(kwargs, named):
    with pytest.raises(UMXError, match=named.replace("[", r"\[")):
        HTDemucs(FOUR, **kwargs)


def test_a_state_that_does_not_fit_is_named(small):
    ref, ours = small  # the state is checked whole before any weight changes
    state = {k: v.numpy() for k, v in ref.state_dict().items()}
    del state["encoder.0.conv.bias"]
    state["encoder.9.conv.weight"] = np.zeros(3, np.float32)
    state["decoder.0.rewrite.weight"] = np.zeros((64, 32, 3, 1), np.float32)
    with pytest.raises(UMXError) as caught:
        assign_htdemucs_weights(ours, state)
    message = str(caught.value)
    assert "missing: encoder.0.conv.bias" in message and "unexpected: encoder.9.conv.weight" in message
    assert "decoder.0.rewrite.weight (64, 32, 3, 1) (expected (64, 32, 3, 3))" in message


def test_mixed_bfloat16_policy_stays_close_to_float32():
    ref = torch_model(FOUR, 3, **BFLOAT16)
    ours, mix = keras_twin(ref, FOUR, **BFLOAT16), audio((2, 2, 4000), 14)
    want, copy = ours(mix).numpy(), HTDemucs.from_config(ours.get_config())
    copy.set_weights(ours.get_weights())
    compute_in([copy], "bfloat16")
    got = tf.function(lambda m: copy(m), jit_compile=False)(tf.constant(mix)).numpy()  # graph mode: oneDNN's bf16
    errors = [np.linalg.norm(got[:, s] - want[:, s]) / np.linalg.norm(want[:, s]) for s in range(4)]
    # 8 bits kept: ~0.3 % a layer (inputs, weights, output each rounded by ~0.16 % rms), 1.2 % over 17 in series
    # as a random walk (0.5-0.7 % measured; 16-23 % with the 16-channel conv in bfloat16); above 1e-4: it did compute
    assert got.dtype == np.float32 and 1e-4 < max(errors) < 1.2e-2, errors
    np.testing.assert_array_equal(ours(mix).numpy(), want)  # the float32 model is untouched
    assert min(source_snrs(run_torch(ref, mix).numpy(), want)) >= 80
