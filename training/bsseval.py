"""BSS Eval v4 (SiSEC 2018's metrics, as `museval.evaluate` computes them) for several estimates
of the same references in one pass.

BSS Eval splits an estimate of source j into the true source, a spatial distortion (the part
explained by filtering source j with a 512-tap multichannel filter), interference (explained by
filtering the other sources) and artefacts (the rest). v4 fits the filters by least squares over
the whole track and scores one window at a time: SDR, ISR, SIR and SAR per source and window.

The least-squares system is the Gram matrix of every reference channel at every delay
(sources x channels x 512 square: 5120 for five stereo sources), the same for every estimate of
those references. museval solves it anew for each estimated source; scoring a model and two
baselines on five targets that is fifteen LU factorizations of one matrix, and they take most
of an evaluation. Here it is factored once per track, and each window's references are
transformed once for every projection (docs/benchmarks.md). The numbers are museval's to
rounding (tests/training/test_bsseval.py).
"""

import warnings

import numpy as np
import scipy.fft
import scipy.linalg

FILTERS_LEN = 512


def evaluate(references, estimates, window, hop=None, filters_len=FILTERS_LEN):
    """Framewise BSS Eval v4 of each estimate set against the same references.

    Args:
        references: `(sources, samples, channels)`.
        estimates: a sequence of `(sources, samples, channels)` arrays (one per method),
            padded with zeros or cut to the references' length, as museval does.
        window, hop: window and hop in samples (hop defaults to `window`).
    Returns:
        per estimate set, `(SDR, ISR, SIR, SAR)`, each `(sources, windows)`: NaN in a window
        where a reference or one of that set's estimates is silent, as museval has it.
    """
    hop = window if hop is None else hop
    refs = np.asarray(references, np.float64)
    nsrc, nsampl, nchan = refs.shape
    sets = [_fit_length(np.asarray(e, np.float64), nsampl) for e in estimates]
    for est in sets:
        if est.shape[0] != nsrc or est.shape[2] != nchan:
            raise ValueError(f"estimates of {est.shape[0]} sources x {est.shape[2]} channels for references of "
                             f"{nsrc} x {nchan}")
    nwin = int(np.floor((nsampl - window + hop) / hop)) if window < nsampl else 1
    L = filters_len

    # the references' spectra (zero-padded so that the correlations do not wrap) and their Gram matrix
    n_fft = scipy.fft.next_fast_len(nsampl + L - 1, real=True)
    spectra = scipy.fft.rfft(np.moveaxis(refs, 1, 2), n=n_fft, axis=-1)  # (src, ch, bins)
    flat = spectra.reshape(nsrc * nchan, -1)
    gram = _gram(flat, n_fft, L)
    blocks = [_factor(gram[_block(j, nchan, L), :][:, _block(j, nchan, L)]) for j in range(nsrc)]
    full = _factor(gram)

    # every estimate's filters: onto all references (C) and onto its own source's (Cj)
    filters = []
    for est in sets:
        est_spectra = scipy.fft.rfft(np.moveaxis(est, 1, 2), n=n_fft, axis=-1)  # (src, ch, bins)
        cross = _cross(flat, est_spectra, n_fft, L)  # (src, src*ch*L, ch)
        C = np.stack([_solve(full, gram, cross[k]) for k in range(nsrc)])  # (src, src*ch*L, ch)
        Cj = np.stack([_solve(blocks[k], gram[_block(k, nchan, L), :][:, _block(k, nchan, L)],
                              cross[k][_block(k, nchan, L)]) for k in range(nsrc)])  # (src, ch*L, ch)
        filters.append((C.reshape(nsrc, nsrc, nchan, L, nchan), Cj.reshape(nsrc, nchan, L, nchan)))

    out = [np.full((4, nsrc, nwin), np.nan) for _ in sets]
    size = scipy.fft.next_fast_len(min(window, nsampl) + L - 1)
    filter_spectra = [(scipy.fft.rfft(C, n=size, axis=3), scipy.fft.rfft(Cj, n=size, axis=2)) for C, Cj in filters]
    for t in range(nwin):
        start, stop = t * hop, min(t * hop + window, nsampl)
        ref = refs[:, start:stop]
        if _any_silent(ref):
            continue
        length = stop - start + L - 1
        ref_spectra = scipy.fft.rfft(np.moveaxis(ref, 1, 2), n=size, axis=-1)  # (src, ch, bins)
        for est, (C_f, Cj_f), scores in zip(sets, filter_spectra, out):
            window_est = est[:, start:stop]
            if _any_silent(window_est):
                continue
            # projections of estimate k onto all references and onto reference k, filtered in the
            # frequency domain: sum over sources j and their channels cj of R[j, cj] * C[k, j, cj, :, c]
            every = np.einsum("jaf,kjafc->kcf", ref_spectra, C_f)
            own = np.einsum("kaf,kafc->kcf", ref_spectra, Cj_f)
            every = scipy.fft.irfft(every, n=size, axis=-1)[..., :length]  # (src, ch, length)
            own = scipy.fft.irfft(own, n=size, axis=-1)[..., :length]
            for k in range(nsrc):
                s_true = np.zeros((nchan, length))
                s_true[:, : stop - start] = ref[k].T
                e_spat = own[k] - s_true
                e_interf = every[k] - own[k]
                e_artif = -every[k]
                e_artif[:, : stop - start] += window_est[k].T
                scores[:, k, t] = _criteria(s_true, e_spat, e_interf, e_artif)
    return [tuple(scores) for scores in out]


def _fit_length(est, nsampl):
    if est.shape[1] >= nsampl:
        return est[:, :nsampl]
    return np.pad(est, [(0, 0), (0, nsampl - est.shape[1]), (0, 0)])


def _any_silent(sources):
    """museval's test: a source whose channels sum to zero at every sample is silent."""
    return bool(np.any(np.all(np.sum(sources, axis=2) == 0, axis=1)))


def _block(j, nchan, L):
    return slice(j * nchan * L, (j + 1) * nchan * L)


def _lags(correlation, L):
    """`(..., L)` lags 0, -1, ..., -(L - 1) of a circular correlation `(..., n_fft)`."""
    return np.concatenate([correlation[..., :1], correlation[..., : -L: -1]], axis=-1)


def _gram(flat, n_fft, L):
    """The inner products of every reference channel at every delay 0..L-1 with every other:
    `G[(p, a), (q, b)] = sum_t x_p[t - a] x_q[t - b]`, `(P L, P L)` for `P` channels of all sources."""
    P = len(flat)
    gram = np.empty((P, L, P, L))
    for p in range(P):
        # r[q, k] = sum_t x_q[t + k] x_p[t]; block (q, p) is toeplitz: G[(q, a), (p, b)] = r[q, b - a]
        r = scipy.fft.irfft(flat[p:] * np.conj(flat[p]), n=n_fft, axis=-1)
        index = np.arange(L)
        lag = (index[None, :] - index[:, None]) % n_fft  # b - a, wrapped as a circular index
        for q in range(p, P):
            block = r[q - p][lag]
            gram[q, :, p, :] = block
            gram[p, :, q, :] = block.T
    return gram.reshape(P * L, P * L)


def _cross(flat, est_spectra, n_fft, L):
    """`(estimates, P L, channels)`: inner products of each estimate channel with every reference
    channel at every delay, `D[(p, a), c] = sum_t x_p[t - a] e_c[t]`."""
    out = []
    for spectrum in est_spectra:  # one estimated source at a time: (P, channels, n_fft) floats each
        d = _lags(scipy.fft.irfft(flat[:, None] * np.conj(spectrum)[None], n=n_fft, axis=-1), L)  # (P, c, L)
        out.append(np.moveaxis(d, 1, 2).reshape(-1, d.shape[1]))
    return np.stack(out)


def _factor(gram):
    """LU factors of the Gram matrix with museval's regularization, or None where it is singular."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", scipy.linalg.LinAlgWarning)
        try:
            regularized = gram.copy()
            regularized.flat[:: len(gram) + 1] += np.finfo(float).eps
            return scipy.linalg.lu_factor(regularized, overwrite_a=True, check_finite=False)
        except (np.linalg.LinAlgError, scipy.linalg.LinAlgWarning):
            return None


def _solve(factors, gram, rhs):
    """The least-squares filters; museval falls back to `lstsq` when the system is singular."""
    if factors is None:
        return np.linalg.lstsq(gram, rhs, rcond=None)[0]
    return scipy.linalg.lu_solve(factors, rhs, check_finite=False)


def _criteria(s_true, e_spat, e_interf, e_artif):
    """SDR, ISR, SIR, SAR in dB (v4: the distortion counts against SDR)."""
    def db(num, den):
        return np.inf if den == 0 else 10 * np.log10(num / den)

    energy = np.sum(s_true ** 2)
    return (db(energy, np.sum((e_spat + e_interf + e_artif) ** 2)), db(energy, np.sum(e_spat ** 2)),
            db(np.sum((s_true + e_spat) ** 2), np.sum(e_interf ** 2)),
            db(np.sum((s_true + e_spat + e_interf) ** 2), np.sum(e_artif ** 2)))
