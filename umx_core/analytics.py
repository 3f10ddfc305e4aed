"""What a track's stems say, measured while they are written: loudness, peaks, where each stem sounds.

`Meter` takes a signal block by block (any length, bounded memory: one float per 100 ms is kept)
and gives ITU-R BS.1770-4 / EBU R128 integrated loudness (K-weighting, 400 ms blocks every 100 ms,
the absolute gate at -70 LUFS and the relative gate 10 LU below the ungated level; an incomplete
last block is left out, as EBU Tech 3341 says), the sample peak, the true peak (BS.1770-4 Annex 2:
4x oversampling with the Recommendation's 48-tap interpolation filter) and the energy.

`describe(stems, mixture, ...)` compares each stem's 400 ms blocks with the mixture's: a block is
audible where the stem is above an absolute floor and not more than `audible_db` below the
mixture. It gives each stem's audible share, first and last audible second and share of the
mixture's energy, and for a vocals stem the vocal segments (audible stretches merged, the short
ones dropped) and whether the track is instrumental. Loudness that has no value (silence) is None.
"""

import concurrent.futures
import math

import numpy as np
from scipy import signal

BLOCK_STEPS, STEP_SECONDS = 4, 0.1  # a 400 ms gating block every 100 ms
ABSOLUTE_GATE, RELATIVE_GATE = -70.0, -10.0  # LUFS, LU
OFFSET = -0.691  # BS.1770: cancels the K-weighting's gain at 1 kHz
# BS.1770-4 Annex 2: the 4x interpolation filter, one row per phase (12 taps each)
TRUE_PEAK_PHASES = np.array([
    [0.0017089843750, 0.0109863281250, -0.0196533203125, 0.0332031250000, -0.0594482421875, 0.1373291015625,
     0.9721679687500, -0.1022949218750, 0.0476074218750, -0.0266113281250, 0.0148925781250, -0.0083007812500],
    [-0.0291748046875, 0.0292968750000, -0.0517578125000, 0.0891113281250, -0.1665039062500, 0.4650878906250,
     0.7797851562500, -0.2003173828125, 0.1015625000000, -0.0582275390625, 0.0330810546875, -0.0189208984375],
    [-0.0189208984375, 0.0330810546875, -0.0582275390625, 0.1015625000000, -0.2003173828125, 0.7797851562500,
     0.4650878906250, -0.1665039062500, 0.0891113281250, -0.0517578125000, 0.0292968750000, -0.0291748046875],
    [-0.0083007812500, 0.0148925781250, -0.0266113281250, 0.0476074218750, -0.1022949218750, 0.9721679687500,
     0.1373291015625, -0.0594482421875, 0.0332031250000, -0.0196533203125, 0.0109863281250, 0.0017089843750]])
TRUE_PEAK_GAIN = float(np.abs(TRUE_PEAK_PHASES).sum(axis=1).max())  # the most one output can exceed its inputs by
FEED_SPAN = 1 << 19  # samples a meter takes at once
TRUE_PEAK_SPAN = 2048  # outputs per span the true peak's search bounds at once
PHASES_BY_WINDOW = np.ascontiguousarray(TRUE_PEAK_PHASES[:, ::-1].T, np.float32)  # (12 samples, 4 phases)


def k_weighting(rate):
    """BS.1770's K-weighting (the shelf, then the high-pass) at `rate` Hz as second-order sections:
    the Recommendation's analog prototypes through the bilinear transform (its 48 kHz
    coefficients to 1e-14)."""
    k = math.tan(math.pi * 1681.974450955533 / rate)
    q, vh = 0.7071752369554196, 10 ** (3.999843853973347 / 20)
    vb = vh ** 0.4996667741545416
    a0 = 1 + k / q + k * k
    shelf = [(vh + vb * k / q + k * k) / a0, 2 * (k * k - vh) / a0, (vh - vb * k / q + k * k) / a0,
             1.0, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0]
    k = math.tan(math.pi * 38.13547087602444 / rate)
    q = 0.5003270373238773
    a0 = 1 + k / q + k * k
    high_pass = [1.0, -2.0, 1.0, 1.0, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0]
    return np.array([shelf, high_pass])


def lufs(energy):
    """Loudness of a mean-square energy (summed over channels); None for silence."""
    return OFFSET + 10 * math.log10(energy) if energy > 0 else None


def db(amplitude):
    """An amplitude in dBFS; None for silence."""
    return 20 * math.log10(amplitude) if amplitude > 0 else None


class Meter:
    """BS.1770 loudness, peaks and energy of one signal `(channels, samples)`, fed block by block."""

    def __init__(self, rate, channels):
        self.rate, self.channels = int(rate), int(channels)
        self.sos = k_weighting(self.rate)
        self.zi = np.zeros((self.sos.shape[0], self.channels, 2))
        self.taps = np.zeros((self.channels, TRUE_PEAK_PHASES.shape[1] - 1), np.float32)  # the last samples, for the FIR
        self.steps = []  # K-weighted energy of each whole 100 ms step, summed over channels
        self.partial, self.samples = 0.0, 0  # energy of the unfinished step, samples fed
        self.energy, self.sample_peak, self.true_peak = 0.0, 0.0, 0.0

    def _step_end(self, step):
        """The first sample after step `step` (steps are floor(k * rate / 10) apart, as pyloudnorm's)."""
        return (step + 1) * self.rate // 10

    def feed(self, block):
        """Add the next samples `(channels, n)` (float), a slice of `FEED_SPAN` at a time (so that the
        float64 filtering's copies of a long block never take much memory)."""
        block = np.asarray(block, np.float32)
        for first in range(0, block.shape[-1], FEED_SPAN):
            self._feed(block[:, first : first + FEED_SPAN])

    def _feed(self, block):
        n = block.shape[-1]
        if n == 0:
            return
        self.energy += float(np.einsum("ij,ij->", block, block, dtype=np.float64))
        self.sample_peak = max(self.sample_peak, float(np.max(np.abs(block))))
        weighted, self.zi = signal.sosfilt(self.sos, block.astype(np.float64), axis=-1, zi=self.zi)
        power = np.einsum("ij,ij->j", weighted, weighted)  # (n,) over channels: front channels weigh 1
        # the 100 ms steps this block ends (and the unfinished one's energy so far)
        ends = [end - self.samples for end in self._step_ends(self.samples + n)]
        cumulative = np.concatenate([[0.0], np.cumsum(power)])
        starts = [0, *ends[:-1]]
        for k, (start, end) in enumerate(zip(starts, ends)):
            self.steps.append(float(cumulative[end] - cumulative[start]) + (self.partial if k == 0 else 0.0))
        rest = float(cumulative[-1] - cumulative[ends[-1] if ends else 0])
        self.partial = rest if ends else self.partial + rest
        self.samples += n
        self._true_peak(block)

    def _step_ends(self, stop):
        """The ends of the steps not yet counted that lie within the first `stop` samples."""
        ends, step = [], len(self.steps)
        while self._step_end(step) <= stop:
            ends.append(self._step_end(step))
            step += 1
        return ends

    def _true_peak(self, block, span=TRUE_PEAK_SPAN):
        """Raise `true_peak` to the block's 4x-oversampled peak: 12-sample windows times the 4 phases.
        No output exceeds its window's largest sample times `TRUE_PEAK_GAIN`, so spans of `span`
        outputs are taken loudest first, and the first whose bound is under the peak so far ends
        the search: exact, with the filter run on a few spans of a track instead of all of it."""
        extended = np.concatenate([self.taps, block], axis=-1)
        taps = TRUE_PEAK_PHASES.shape[1]
        outputs = extended.shape[-1] - taps + 1
        if outputs > 0:
            spans = -(-outputs // span)
            magnitude = np.abs(extended)
            padded = np.zeros((self.channels, (spans + 1) * span), np.float32)
            padded[:, : magnitude.shape[-1]] = magnitude
            largest = padded.reshape(self.channels, spans + 1, span).max(axis=-1)
            # span k's windows read its own samples and the next span's first taps - 1
            bounds = np.maximum(largest[:, :-1], largest[:, 1:]) * TRUE_PEAK_GAIN  # (channels, spans)
            for flat in np.argsort(-bounds, axis=None):
                channel, k = divmod(int(flat), spans)
                if bounds[channel, k] < self.true_peak:
                    break
                part = extended[channel, k * span : min(k * span + span + taps - 1, extended.shape[-1])]
                windows = np.lib.stride_tricks.sliding_window_view(part, taps)  # x[n-11 .. n]
                self.true_peak = max(self.true_peak, float(np.max(np.abs(windows @ PHASES_BY_WINDOW))))
        self.taps = extended[:, -self.taps.shape[-1]:]

    def block_energies(self):
        """Mean-square energy of every whole 400 ms gating block (100 ms apart)."""
        steps = np.asarray(self.steps)
        if steps.size < BLOCK_STEPS:
            return np.zeros(0)
        sums = np.convolve(steps, np.ones(BLOCK_STEPS), mode="valid")
        return sums / (BLOCK_STEPS * STEP_SECONDS * self.rate)

    def integrated_loudness(self):
        """Gated integrated loudness in LUFS (None: silent, or under 400 ms)."""
        blocks = self.block_energies()
        blocks = blocks[blocks > 10 ** ((ABSOLUTE_GATE - OFFSET) / 10)]
        if not blocks.size:
            return None
        relative = np.mean(blocks) * 10 ** (RELATIVE_GATE / 10)
        kept = blocks[blocks > relative]
        return lufs(float(np.mean(kept))) if kept.size else None

    def summary(self):
        """`{loudness_lufs, sample_peak_dbfs, true_peak_dbtp, energy}` (None where silent)."""
        return {"loudness_lufs": _rounded(self.integrated_loudness()), "sample_peak_dbfs": _rounded(db(self.sample_peak)),
                "true_peak_dbtp": _rounded(db(max(self.true_peak, self.sample_peak))), "energy": self.energy}


def _rounded(value, digits=3):
    return None if value is None else round(value, digits)


def audible_blocks(meter, mixture, audible_db, floor_lufs):
    """Booleans per gating block: the stem is above `floor_lufs` and within `audible_db` of the mixture."""
    stem, mix = meter.block_energies(), mixture.block_energies()
    with np.errstate(divide="ignore"):
        stem_lufs = OFFSET + 10 * np.log10(stem)
        mix_lufs = OFFSET + 10 * np.log10(mix)
    return (stem_lufs >= floor_lufs) & (stem_lufs >= mix_lufs - audible_db)


def segments(audible, min_seconds, gap_seconds):
    """`[[start, end], ...]` seconds where `audible` blocks run, merged across gaps of at most
    `gap_seconds`, those shorter than `min_seconds` dropped."""
    spans = []
    for index in np.flatnonzero(audible):
        start, end = index * STEP_SECONDS, index * STEP_SECONDS + BLOCK_STEPS * STEP_SECONDS
        if spans and start - spans[-1][1] <= gap_seconds + 1e-9:
            spans[-1][1] = max(spans[-1][1], end)
        else:
            spans.append([start, end])
    return [[round(a, 2), round(b, 2)] for a, b in spans if b - a >= min_seconds - 1e-9]


def describe(stems, mixture, audible_db=12.0, floor_lufs=-60.0, vocal_min_seconds=2.0, vocal_gap_seconds=0.5,
             vocals="vocals"):
    """Each stem's analytics against the mixture, and the track's vocal segments.

    Args:
        stems: `{name: Meter}`; mixture: the mixture's `Meter`.
        audible_db, floor_lufs: a 400 ms block of a stem is audible when its loudness is at least
            `floor_lufs` and at most `audible_db` below the mixture's block.
        vocal_min_seconds, vocal_gap_seconds: vocal segments shorter than this are dropped, gaps of
            at most that are bridged.
        vocals: the stem whose segments are the vocal segments (none: no `vocal_segments`).
    Returns:
        `{"mixture": {...}, "stems": {name: {...}}, "vocal_segments": [[start, end], ...] or None,
        "instrumental": bool or None}` (None where the model has no vocals stem).
    """
    out = {"mixture": mixture.summary(), "stems": {}, "vocal_segments": None, "instrumental": None}
    blocks = max(len(mixture.block_energies()), 1)
    for name, meter in stems.items():
        audible = audible_blocks(meter, mixture, audible_db, floor_lufs)
        found = np.flatnonzero(audible)
        summary = meter.summary()
        summary.update(
            audible_share=round(float(audible.sum()) / blocks, 4),
            first_audible_seconds=round(found[0] * STEP_SECONDS, 2) if found.size else None,
            last_audible_seconds=round(found[-1] * STEP_SECONDS + BLOCK_STEPS * STEP_SECONDS, 2) if found.size else None,
            energy_share=round(meter.energy / mixture.energy, 4) if mixture.energy > 0 else None)
        del summary["energy"]
        out["stems"][name] = summary
        if name == vocals:
            out["vocal_segments"] = segments(audible, vocal_min_seconds, vocal_gap_seconds)
            out["instrumental"] = not out["vocal_segments"]
    del out["mixture"]["energy"]
    return out


class Metering:
    """The stream's analytics hook: every stem written and the mixture, metered block by block as
    `umx_core.stream` writes them (`on_block`), described once the track is done (`result`).

    The metering of a block runs on a thread of its own while the stream separates the next one
    (the filters release the interpreter's lock), one block at a time, so it takes a core the
    compiled program leaves idle rather than the stream's time, and at most one block waits.

    Args:
        rate, channels: the stems' sample rate and channels.
        names: the stems written.
        **options: `describe`'s keyword arguments.
    """

    def __init__(self, rate, channels, names, **options):
        self.stems = {name: Meter(rate, channels) for name in names}
        self.mixture, self.options = Meter(rate, channels), options
        self.pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="umx-metering")
        self.pending = None

    def on_block(self, stems, mixture):
        """Meter the next block: `{name: (channels, n)}` of every stem written, the mixture's `(channels, n)`
        (arrays the caller no longer changes). Waits for the block before it first."""
        self._wait()
        self.pending = self.pool.submit(self._meter, stems, mixture)

    def _meter(self, stems, mixture):
        for name, meter in self.stems.items():
            meter.feed(stems[name])
        self.mixture.feed(mixture)

    def _wait(self):
        if self.pending is not None:
            pending, self.pending = self.pending, None
            pending.result()  # a metering error is raised here, in the stream's thread

    def result(self):
        """`describe`'s analytics of the whole track."""
        try:
            self._wait()
        finally:
            self.close()
        return describe(self.stems, self.mixture, **self.options)

    def close(self):
        """Stop the metering thread (a block still being metered is finished first)."""
        self.pool.shutdown(wait=True)
