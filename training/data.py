"""FixedSourcesTrackFolderDataset: streaming tf.data excerpts from `root/{train,valid}/<sample>/<target>.<ext>`.

Examples are `(mixture, targets)`: float32 `(channels, samples)` and `(targets, channels,
samples)`, the mixture being the sum of the (augmented) targets and interferers (the other
stems of the sample, as open-unmix's `interferer_files`, so a single-target model still learns
from the full mixture). Training excerpts are read
by seeking into each file, so nothing is decoded whole and nothing is preprocessed; the
random choices of example `i` in epoch `e` come from a generator seeded with
`(seed, e, i)`, so the stream is the same however many parallel readers produce it.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from umx_core import audio, storage
from umx_core.errors import UMXError
from umx_core.settings import N_FFT, N_HOP


@dataclasses.dataclass(frozen=True)
class DatasetTrack:
    """One sample folder: a file per source (targets and interferers), all of `samples` samples at `sample_rate`."""

    name: str
    paths: dict
    samples: int
    sample_rate: int
    channels: int


def _sample_problems(folder, targets):
    """(DatasetTrack or None, [problems]) for one sample folder."""
    files = audio.stem_files(folder)
    missing = [t for t in targets if t not in files]
    if missing:
        return None, [f"missing {', '.join(missing)}"]
    infos, problems = {}, []
    for target in targets:
        try:
            infos[target] = audio.info(files[target])
        except UMXError as exc:
            problems.append(f"{target}: unreadable ({exc})")
    if problems:
        return None, problems
    shapes = {(i.sample_rate, i.samples, i.channels) for i in infos.values()}
    if len(shapes) > 1:
        detail = ", ".join(f"{t} {i.samples} samples at {i.sample_rate} Hz x{i.channels}" for t, i in infos.items())
        return None, [f"stems differ: {detail}"]
    first = infos[targets[0]]
    paths = {t: files[t] for t in targets}
    return DatasetTrack(folder.rstrip("/").split("/")[-1], paths, first.samples, first.sample_rate, first.channels), []


def index_split(root, split, targets, min_seconds=0.0, sample_rate=None):
    """Every sample of `root/split`, validated; one UMXError naming every offending sample.

    Args:
        min_seconds: samples shorter than this are reported too (training excerpts need it).
        sample_rate: the rate every sample must have (None: any, but the same for all).
    """
    base = storage.join(root, split)
    names = storage.list_dirs(base)
    if not names:
        raise UMXError(f"{base}: no sample folders")
    tracks, problems = [], []
    for name in names:
        track, issues = _sample_problems(storage.join(base, name), list(targets))
        if track is not None:
            if track.samples < min_seconds * track.sample_rate:
                issues.append(f"{track.samples / track.sample_rate:.2f} s, shorter than an excerpt ({min_seconds} s)")
            if sample_rate is not None and track.sample_rate != sample_rate:
                issues.append(f"sample rate {track.sample_rate} Hz, the dataset's is {sample_rate} Hz")
        problems.extend(f"  {name}: {issue}" for issue in issues)
        if track is not None and not issues:
            tracks.append(track)
    rates = {t.sample_rate for t in tracks}
    if len(rates) > 1 and not problems:
        problems.append(f"  samples have different sample rates: {sorted(rates)}")
    if problems:
        raise UMXError(f"dataset {base} is malformed ({len(problems)} problem(s)):\n" + "\n".join(problems))
    return tracks


class FixedSourcesTrackFolderDataset:
    """Random excerpts (train) or whole tracks (valid) of a fixed set of target stems.

    Args:
        root: dataset root, local or gs://.
        split: "train" (random, augmented excerpts) or "valid" (whole tracks, unaugmented).
        targets: target names; every sample has one file per target.
        interferers: other stems summed into the mixture (augmented like the targets) but not
            estimated; None: every stem of the first sample that is not a target (a file named
            `mixture` is never a stem); `()`: none.
        seq_duration: excerpt length in seconds (train).
        samples_per_track: excerpts per track per epoch (train).
        random_track_mix: the share of training examples (0 to 1; True is 1, False 0) whose
            sources each come from an independently drawn sample and start; the rest are one
            sample's stems at one start, as the songs are mixed (the coherent case separation
            is for: the same key, chords and beat in every stem).
        gain_range: `(low, high)` uniform per-target gain, or None for no gain augmentation.
        channel_swap: swap the two channels of a target with probability 0.5.
        speed_range: `(low, high)`: play each source's excerpt at a speed drawn log-uniformly
            from this range (resampled, so pitch, formants and tempo move together: 1.25 is four
            semitones up and 25% faster), one speed per source when its stems come from independent
            tracks, one for the whole example otherwise; None: no speed augmentation.
        seed: the seed of every random choice.
        sample_rate: required sample rate (None: whatever the files share).
        valid_chunk: validation in consecutive chunks of this many seconds (the remainder of a
            track is dropped unless the track is shorter than one chunk); None: whole tracks.
    """

    def __init__(self, root, split="train", targets=("vocals", "drums", "bass", "other"), seq_duration=6.0,
                 samples_per_track=64, random_track_mix=False, gain_range=(0.25, 1.25), channel_swap=True,
                 seed=42, sample_rate=None, valid_chunk=None, interferers=None, speed_range=None):
        self.root, self.split, self.targets = root, split, list(targets)
        if interferers is None:
            base = storage.join(root, split)
            first = storage.list_dirs(base)[:1]
            found = audio.stem_files(storage.join(base, first[0])) if first else {}
            interferers = sorted(set(found) - set(self.targets) - {"mixture"})
        self.interferers = [s for s in interferers if s not in self.targets]
        self.sources = self.targets + self.interferers
        self.train = split == "train"
        self.seq_duration = seq_duration
        self.samples_per_track = int(samples_per_track)
        self.random_track_mix = float(random_track_mix)
        if not 0.0 <= self.random_track_mix <= 1.0:
            raise UMXError(f"random_track_mix must be between 0 and 1 (a share of the examples), "
                           f"got {random_track_mix!r}")
        self.gain_range = tuple(gain_range) if gain_range else None
        self.channel_swap = bool(channel_swap)
        self.speed_range = tuple(float(v) for v in speed_range) if speed_range else None
        if self.speed_range and not (len(self.speed_range) == 2 and 0 < self.speed_range[0] <= self.speed_range[1]):
            raise UMXError(f"speed_range must be two positive factors, low <= high, got {list(speed_range)!r}")
        self.seed = int(seed)
        min_seconds = seq_duration if self.train and seq_duration else 0.0
        if min_seconds and self.speed_range and self.speed_range[1] > 1.0:
            min_seconds = (seq_duration * self.speed_range[1]) + 1.0 / 8000  # the fastest excerpt's span
        self.tracks = index_split(root, split, self.sources, min_seconds, sample_rate)
        self.sample_rate = self.tracks[0].sample_rate
        self.channels = self.tracks[0].channels
        self.seq_samples = int(round(seq_duration * self.sample_rate)) if seq_duration else None
        # validation items: (track, start, samples); samples None reads to the end
        self.items = []
        chunk = int(round(valid_chunk * self.sample_rate)) if valid_chunk else None
        for k, track in enumerate(self.tracks):
            if chunk is None or track.samples < chunk:
                self.items.append((k, 0, None))
            else:
                self.items.extend((k, start, chunk) for start in range(0, track.samples - chunk + 1, chunk))

    def __len__(self):
        return len(self.tracks) * self.samples_per_track if self.train else len(self.items)

    def plan(self, epoch, index):
        """The random choices of one training example: per source (track, start, gain, swap,
        speed), targets first, then interferers. `start` is the first sample read from the file.

        Indices past `len(self)` wrap around the tracks with fresh random choices, so an
        epoch may hold more excerpts than `samples_per_track` per track.
        """
        rng = np.random.default_rng([self.seed, epoch, index])
        own = (index // self.samples_per_track) % len(self.tracks)
        share = self.random_track_mix
        # the coin is only drawn for a share strictly between 0 and 1, so those two keep their streams
        mixing = share == 1.0 or (0.0 < share < 1.0 and rng.random() < share)
        start = speed = None
        choices = []
        for _ in self.sources:
            track = int(rng.integers(len(self.tracks))) if mixing else own
            if mixing or start is None:  # one start (and speed) for all targets unless mixing
                # drawn only when enabled, so a run without it keeps its stream
                speed = float(np.exp(rng.uniform(*np.log(self.speed_range)))) if self.speed_range else 1.0
                start = int(rng.integers(self.tracks[track].samples - self.span(speed) + 1))
            gain = float(rng.uniform(*self.gain_range)) if self.gain_range else 1.0
            swap = bool(self.channel_swap and self.channels == 2 and rng.random() < 0.5)
            choices.append((track, start, gain, swap, speed))
        return choices

    def span(self, speed):
        """Samples read from the file for an excerpt played at `speed`."""
        return self.seq_samples if speed == 1.0 else int(np.ceil((self.seq_samples - 1) * speed)) + 1

    def _read(self, path, start, speed, out):
        """The excerpt at `speed` into `out` `(channels, seq_samples)`."""
        if speed == 1.0:
            return audio.read(path, start, self.seq_samples, out=out)
        excerpt = audio.read(path, start, self.span(speed))
        # linear interpolation at the sped-up positions (a data augmentation, not a
        # mastering-grade resampler: the little aliasing a speed above 1 folds back lands
        # mostly above the model's bandwidth)
        positions = np.arange(self.seq_samples) * speed
        grid = np.arange(excerpt.shape[-1])
        if excerpt.shape[0] != out.shape[0]:
            raise UMXError(f"{path}: {excerpt.shape[0]} channels, not {out.shape[0]}")
        for row, channel in zip(out, excerpt):
            row[:] = np.interp(positions, grid, channel)
        return out

    def load(self, epoch, index):
        """One example as numpy: `(mixture (C, S), targets (J, C, S))`."""
        if not self.train:
            k, start, samples = self.items[index]
            track = self.tracks[k]
            stems = np.stack([audio.read(track.paths[t], start, -1 if samples is None else samples)
                              for t in self.sources])
            return stems.sum(axis=0), stems[: len(self.targets)]
        # each stem decoded straight into its row of one array (channels swapped by writing through a
        # reversed view) and scaled in place: no array per stem, no stacking (docs/benchmarks.md)
        stems = np.empty((len(self.sources), self.channels, self.seq_samples), np.float32)
        for row, source, (track, start, gain, swap, speed) in zip(stems, self.sources, self.plan(epoch, index)):
            excerpt = self._read(self.tracks[track].paths[source], start, speed, row[::-1] if swap else row)
            excerpt *= np.float32(gain)
        return stems.sum(axis=0), stems[: len(self.targets)]

    def dataset(self, epoch=0, shuffle=True, size=None, start=0, shard=None):
        """A `tf.data.Dataset` of `(mixture, targets)`, read in parallel, deterministic order.

        Training examples are visited in an order shuffled by `(seed, epoch)`; validation
        items (whole tracks or chunks) in folder order.

        Args:
            size: examples in the epoch (training; default `len(self)`).
            start: skip the first `start` examples of the epoch's order (to resume mid-epoch).
            shard: `(count, index)`: only every `count`-th example from `index`, after `start`
                (one input pipeline of several workers), so each worker reads only its own.
        """
        order = np.arange(size if (size and self.train) else len(self))
        if self.train and shuffle:
            # keyed by -1, which no example index equals: its own stream
            np.random.default_rng([self.seed, epoch, 2**32 - 1]).shuffle(order)
        order = order[start:]
        if shard is not None:
            order = order[shard[1] :: shard[0]]
        samples = self.seq_samples if self.train else None
        channels, nb_targets = self.channels, len(self.targets)

        def read(index):
            mixture, stems = tf.numpy_function(
                lambda i: self.load(epoch, int(i)), [index], (tf.float32, tf.float32), stateful=False
            )
            mixture.set_shape((channels, samples))
            stems.set_shape((nb_targets, channels, samples))
            return mixture, stems

        return (
            tf.data.Dataset.from_tensor_slices(order)
            .map(read, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        )


def input_statistics(dataset, n_fft=N_FFT, n_hop=N_HOP):
    """Per-bin mean and scale of the training mixtures' magnitudes, for the model's input scaler.

    As open-unmix's `get_statistics`: whole training tracks, unaugmented, STFT with
    `center=False`, magnitudes averaged over channels; the scale is the standard deviation
    floored at 1e-4 of its maximum. Streamed: one track at a time, accumulated in float64.

    Args:
        dataset: a training `FixedSourcesTrackFolderDataset` (only its track list is used).
    Returns:
        `(mean, scale)`, float32 arrays of `n_fft // 2 + 1` bins.
    """
    from umx_core.nn.transforms import STFTLayer

    stft = STFTLayer(n_fft, n_hop, center=False)
    count, total, squares = 0, 0.0, 0.0
    for track in dataset.tracks:
        mixture = sum(audio.read(track.paths[s]) for s in dataset.sources)  # (channels, samples)
        if mixture.shape[-1] < n_fft:
            continue
        magnitude = tf.reduce_mean(tf.abs(stft(mixture[None])), axis=-1)[0].numpy().astype(np.float64)
        count += magnitude.shape[0]
        total = total + magnitude.sum(axis=0)
        squares = squares + np.square(magnitude).sum(axis=0)
    if not count:
        raise UMXError(f"{dataset.root}: no training track is longer than n_fft = {n_fft} samples")
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - np.square(mean), 0.0))
    return mean.astype(np.float32), np.maximum(std, 1e-4 * std.max()).astype(np.float32)
