"""FixedSourcesTrackFolderDataset and the synthetic dataset generator."""

import hashlib
import os

import numpy as np
import pytest
import soundfile as sf

from training.data import FixedSourcesTrackFolderDataset
from training.synthesize import synthesize
from umx_core import storage
from umx_core.errors import UMXError

TARGETS = ["vocals", "drums", "bass"]
RATE = 8000


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("data"))
    synthesize(out, tracks=5, targets=TARGETS, duration=2.0, rate=RATE, seed=1)
    return out


def dataset(root, **kwargs):
    kwargs = {"targets": TARGETS, "seq_duration": 0.5, "samples_per_track": 3, "seed": 7, **kwargs}
    return FixedSourcesTrackFolderDataset(root, **kwargs)


def digest(folder):
    return hashlib.sha256(b"".join(open(p, "rb").read() for p in storage.list_files(folder))).hexdigest()


def test_synthesize_is_deterministic_and_in_layout(root, tmp_path):
    assert len(os.listdir(os.path.join(root, "train"))) == 4 and len(os.listdir(os.path.join(root, "valid"))) == 1
    again = str(tmp_path / "again")
    synthesize(again, tracks=5, targets=TARGETS, duration=2.0, rate=RATE, seed=1)
    assert digest(root) == digest(again)
    other = str(tmp_path / "other")
    synthesize(other, tracks=5, targets=TARGETS, duration=2.0, rate=RATE, seed=2)
    assert digest(root) != digest(other)


def test_extra_tracks_train_on_more_songs_and_leave_the_held_out_ones_as_they_were(root, tmp_path):
    more = str(tmp_path / "more")
    synthesize(more, tracks=5, targets=TARGETS, duration=2.0, rate=RATE, seed=1, extra_tracks=3)
    assert sorted(os.listdir(os.path.join(more, "train"))) == sorted(
        os.listdir(os.path.join(root, "train")) + ["track0005", "track0006", "track0007"])
    assert digest(os.path.join(more, "valid")) == digest(os.path.join(root, "valid"))
    for track in os.listdir(os.path.join(root, "train")):
        assert digest(os.path.join(more, "train", track)) == digest(os.path.join(root, "train", track))


def test_more_test_tracks_grow_the_test_split_and_leave_every_other_song_as_it_was(tmp_path):
    first, grown = str(tmp_path / "first"), str(tmp_path / "grown")
    synthesize(first, tracks=3, targets=TARGETS, duration=1.0, rate=RATE, seed=3, test_tracks=1, extra_tracks=1)
    synthesize(grown, tracks=3, targets=TARGETS, duration=1.0, rate=RATE, seed=3, test_tracks=1, extra_tracks=1,
               more_test_tracks=2)
    assert sorted(os.listdir(os.path.join(grown, "test"))) == ["track0003", "track0005", "track0006"]
    for split in os.listdir(first):
        for track in os.listdir(os.path.join(first, split)) if split != ".synthesize.json" else ():
            assert digest(os.path.join(grown, split, track)) == digest(os.path.join(first, split, track))
    assert digest(os.path.join(grown, "test", "track0005")) != digest(os.path.join(grown, "test", "track0003"))


def test_a_second_run_renders_only_the_tracks_not_complete(tmp_path):
    out = str(tmp_path / "resumed")
    synthesize(out, tracks=3, targets=TARGETS, duration=1.0, rate=RATE, seed=4)
    whole = digest(out)
    kept = os.path.join(out, "train", "track0000", "drums.wav")
    os.utime(kept, (1, 1))
    cut = os.path.join(out, "train", "track0001", "bass.wav")
    os.replace(cut, cut + ".partial")  # what a render killed mid-file leaves
    with open(cut + ".partial", "r+b") as f:
        f.truncate(100)
    synthesize(out, tracks=3, targets=TARGETS, duration=1.0, rate=RATE, seed=4)
    assert os.stat(kept).st_mtime == 1  # a complete track is not rendered again
    assert digest(out) == whole  # the incomplete one is whole again
    assert not [n for _, _, names in os.walk(out) for n in names if not n.endswith((".wav", ".synthesize.json"))]
    with pytest.raises(ValueError, match="seed"):  # other songs are not mixed into these
        synthesize(out, tracks=4, targets=TARGETS, duration=1.0, rate=RATE, seed=5)
    assert digest(out) == whole


def test_synthesize_from_a_missing_folder_names_it(tmp_path, capsys):
    from training.synthesize import main

    with pytest.raises(SystemExit):
        main(["--from", str(tmp_path / "nope"), "--out", str(tmp_path / "o"), "--targets", "vocals", "accompaniment"])
    assert "nope: no such dataset folder" in capsys.readouterr().err


def test_excerpts_are_slices_of_the_files(root):
    ds = dataset(root, gain_range=None, channel_swap=False)
    for epoch, index in ((0, 0), (1, 5), (0, 11)):
        mixture, stems = ds.load(epoch, index)
        for j, (track, start, gain, swap, speed) in enumerate(ds.plan(epoch, index)):
            whole = sf.read(ds.tracks[track].paths[TARGETS[j]], dtype="float32", always_2d=True)[0].T
            np.testing.assert_array_equal(stems[j], whole[:, start : start + ds.seq_samples])
            assert track == index // 3 and gain == 1.0 and not swap and speed == 1.0
        np.testing.assert_allclose(mixture, stems.sum(axis=0), atol=1e-6)
        assert stems.shape == (3, 2, 4000)


def test_augmented_mixed_excerpts_are_scaled_swapped_slices_of_the_files(root):
    # every augmentation at once (random songs per source, gains, swaps, an interferer), against the
    # files as soundfile reads them
    ds = dataset(root, targets=TARGETS[:2], interferers=TARGETS[2:], random_track_mix=1.0)
    swaps = 0
    for index in range(6):
        mixture, stems = ds.load(4, index)
        expected = []
        for source, (track, start, gain, swap, _) in zip(ds.sources, ds.plan(4, index)):
            whole = sf.read(ds.tracks[track].paths[source], dtype="float32", always_2d=True)[0].T
            piece = whole[:, start : start + ds.seq_samples] * np.float32(gain)
            expected.append(piece[::-1] if swap else piece)
            swaps += swap
        np.testing.assert_array_equal(stems, np.stack(expected[:2]))
        np.testing.assert_allclose(mixture, sum(expected), atol=1e-6)
    assert 0 < swaps < 18


def test_tf_data_stream_is_deterministic_under_a_seed(root):
    def take(ds, epoch=0):
        return [(m.numpy(), s.numpy()) for m, s in ds.dataset(epoch).take(6)]

    a, b = take(dataset(root)), take(dataset(root))
    for (ma, sa), (mb, sb) in zip(a, b):
        np.testing.assert_array_equal(ma, mb)
        np.testing.assert_array_equal(sa, sb)
    assert not np.array_equal(a[0][0], take(dataset(root, seed=8))[0][0])
    assert not np.array_equal(a[0][0], take(dataset(root), epoch=1)[0][0])
    assert len(dataset(root)) == 12 and sum(1 for _ in dataset(root).dataset()) == 12


def test_gains_are_in_range_and_per_target(root):
    ds = dataset(root, gain_range=(0.5, 0.9), channel_swap=False)
    gains = []
    for index in range(12):
        _, stems = ds.load(0, index)
        plain = dataset(root, gain_range=None, channel_swap=False)
        _, reference = plain.load(0, index)
        for j, (_, _, gain, *_) in enumerate(ds.plan(0, index)):
            assert 0.5 <= gain <= 0.9
            np.testing.assert_allclose(stems[j], np.float32(gain) * reference[j], atol=1e-6)
            gains.append(gain)
    assert np.std(gains) > 0.05  # different gains, not one constant


def test_channel_swap_swaps(root):
    ds = dataset(root, gain_range=None, channel_swap=True)
    plain = dataset(root, gain_range=None, channel_swap=False)
    swapped = 0
    for index in range(12):
        _, stems = ds.load(0, index)
        _, reference = plain.load(0, index)
        for j, (_, _, _, swap, _) in enumerate(ds.plan(0, index)):
            np.testing.assert_array_equal(stems[j], reference[j][::-1] if swap else reference[j])
            swapped += swap
    assert 0 < swapped < 36


def _tones(folder, rate, seconds, frequencies):
    """One track whose stems are stereo sines at `frequencies` (Hz), in the dataset layout."""
    os.makedirs(folder)
    t = np.arange(int(seconds * rate)) / rate
    for name, f in frequencies.items():
        tone = 0.5 * np.sin(2 * np.pi * f * t)
        sf.write(os.path.join(folder, f"{name}.wav"), np.stack([tone, tone], axis=1), rate, subtype="FLOAT")


def _peak(signal, rate):
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal))))
    return np.argmax(spectrum) * rate / len(signal)


def test_speed_augmentation_moves_pitch_by_the_planned_factor(tmp_path):
    tones = {"vocals": 440.0, "drums": 660.0, "bass": 220.0}
    for split in ("train", "valid"):
        _tones(str(tmp_path / split / "t0"), RATE, 3.0, tones)
    for mix, shared in ((True, False), (False, True)):
        ds = dataset(str(tmp_path), samples_per_track=20, gain_range=None, channel_swap=False,
                     speed_range=(0.8, 1.25), random_track_mix=mix)
        speeds = []
        for index in range(20):
            mixture, stems = ds.load(0, index)
            plan = ds.plan(0, index)
            assert stems.shape == (3, 2, 4000) and np.isfinite(stems).all()
            for j, (_, start, _, _, speed) in enumerate(plan):
                assert 0.8 <= speed <= 1.25
                # the sine heard at `speed` is the file's frequency times the speed (FFT bins are 2 Hz)
                assert abs(_peak(stems[j, 0], RATE) - tones[TARGETS[j]] * speed) <= 2.5, (index, j, speed)
                assert start + ds.span(speed) <= 3 * RATE
            speeds.append([choice[-1] for choice in plan])
            np.testing.assert_allclose(mixture, stems.sum(axis=0), atol=1e-6)
        speeds = np.array(speeds)
        # one speed per example when its stems are one song's, one per stem when they are mixed
        assert (np.ptp(speeds, axis=1) == 0).all() == shared
        assert np.ptp(speeds) > 0.2 and (speeds < 1).any() and (speeds > 1).any()


def test_speed_range_needs_room_and_a_sane_range(root, tmp_path):
    with pytest.raises(UMXError, match="speed_range must be two positive factors"):
        dataset(root, speed_range=(1.2, 0.9))
    _tones(str(tmp_path / "train" / "t0"), RATE, 0.55, {t: 300.0 for t in TARGETS})
    dataset(str(tmp_path), split="train", speed_range=(0.9, 1.05))  # 0.5 s at 1.05 fits in 0.55 s
    with pytest.raises(UMXError, match="t0: 0.55 s, shorter than an excerpt"):
        dataset(str(tmp_path), split="train", speed_range=(0.9, 1.2))


def test_track_mixing_mixes_different_samples(root):
    ds = dataset(root, random_track_mix=True)
    plans = [ds.plan(0, i) for i in range(12)]
    assert any(len({track for track, *_ in plan}) > 1 for plan in plans)
    assert all(len({track for track, *_ in dataset(root).plan(0, i)}) == 1 for i in range(12))


def test_a_share_of_track_mixing_mixes_that_share_and_keeps_the_rest_one_song(root):
    def mixed(plan):
        return len({(track, start) for track, start, *_ in plan}) > 1

    for share, low, high in ((0.0, 0, 0), (0.3, 0.2, 0.4), (1.0, 0.9, 1.0)):
        ds = dataset(root, random_track_mix=share, samples_per_track=50)
        plans = [ds.plan(0, i) for i in range(len(ds))]
        assert low <= np.mean([mixed(plan) for plan in plans]) <= high, share
        # an unmixed example is its own track's stems at one start
        own = [(i // 50) % len(ds.tracks) for i in range(len(ds))]
        assert all({(t, s) for t, s, *_ in plan} == {(own[i], plan[0][1])} for i, plan in enumerate(plans)
                   if not mixed(plan))
    # True and False are the shares 1 and 0, with the same random choices
    assert dataset(root, random_track_mix=True).plan(0, 5) == dataset(root, random_track_mix=1.0).plan(0, 5)
    assert dataset(root, random_track_mix=False).plan(0, 5) == dataset(root, random_track_mix=0).plan(0, 5)
    with pytest.raises(UMXError, match="random_track_mix must be between 0 and 1.*1.5"):
        dataset(root, random_track_mix=1.5)


def test_validation_yields_whole_unaugmented_tracks(root):
    ds = dataset(root, split="valid")
    (mixture, stems), = [(m.numpy(), s.numpy()) for m, s in ds.dataset()]
    whole = sf.read(ds.tracks[0].paths["drums"], dtype="float32", always_2d=True)[0].T
    np.testing.assert_array_equal(stems[1], whole)
    assert mixture.shape == (2, 2 * RATE)


def test_malformed_dataset_names_every_offending_sample(tmp_path):
    out = str(tmp_path / "bad")
    synthesize(out, tracks=6, targets=TARGETS, duration=1.0, rate=RATE, seed=3)
    train = os.path.join(out, "train")
    os.remove(os.path.join(train, "track0000", "bass.wav"))
    sf.write(os.path.join(train, "track0001", "drums.wav"), np.zeros((RATE // 2, 2), np.float32), RATE)
    sf.write(os.path.join(train, "track0002", "vocals.wav"), np.zeros((RATE, 2), np.float32), 16000)
    with open(os.path.join(train, "track0003", "vocals.wav"), "w") as f:
        f.write("not audio")
    with pytest.raises(UMXError) as err:
        dataset(out, seq_duration=0.5)
    message = str(err.value)
    for name, problem in (("track0000", "missing bass"), ("track0001", "differ"), ("track0002", "differ"),
                          ("track0003", "unreadable")):
        assert f"{name}: " in message and problem in message
    assert "track0004" not in message


def test_dataset_on_gcs(root, gcs_emulator):
    remote = f"gs://{gcs_emulator}/datasets/synthetic"
    storage.upload_dir(root, remote)
    local = dataset(root)
    remote_ds = dataset(remote)
    assert [t.name for t in remote_ds.tracks] == [t.name for t in local.tracks]
    for index in (0, 7):
        for a, b in zip(remote_ds.load(2, index), local.load(2, index)):
            np.testing.assert_array_equal(a, b)


def test_input_statistics_match_a_torch_reference(root):
    import torch

    from training.data import input_statistics

    ds = dataset(root)
    mean, scale = input_statistics(ds, n_fft=512, n_hop=128)
    frames = []
    for track in ds.tracks:
        mixture = sum(sf.read(track.paths[t], dtype="float32", always_2d=True)[0].T for t in TARGETS)
        spec = torch.stft(torch.from_numpy(mixture), 512, 128, window=torch.hann_window(512), center=False,
                          return_complex=True).abs().mean(0)  # (bins, frames), channels averaged
        frames.append(spec.numpy().T)
    frames = np.concatenate(frames)
    std = frames.std(axis=0)
    np.testing.assert_allclose(mean, frames.mean(axis=0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(scale, np.maximum(std, 1e-4 * std.max()), rtol=1e-3, atol=1e-6)


def test_interferers_are_mixed_in_but_not_targets(root):
    solo = dataset(root, targets=["vocals"], gain_range=None, channel_swap=False)
    assert solo.interferers == ["bass", "drums"] and solo.sources == ["vocals", "bass", "drums"]
    mixture, stems = solo.load(0, 4)
    track, start, *_ = solo.plan(0, 4)[0]
    whole = {t: sf.read(solo.tracks[track].paths[t], dtype="float32", always_2d=True)[0].T[:, start:start + 4000]
             for t in TARGETS}
    assert stems.shape == (1, 2, 4000)
    np.testing.assert_array_equal(stems[0], whole["vocals"])
    np.testing.assert_allclose(mixture, sum(whole.values()), atol=1e-6)
    valid = dataset(root, split="valid", targets=["vocals"])
    (valid_mix, valid_stems), = [(m.numpy(), s.numpy()) for m, s in valid.dataset()]
    files = {t: sf.read(valid.tracks[0].paths[t], dtype="float32", always_2d=True)[0].T for t in TARGETS}
    np.testing.assert_array_equal(valid_stems[0], files["vocals"])
    np.testing.assert_allclose(valid_mix, sum(files.values()), atol=1e-6)
    alone = dataset(root, targets=["vocals"], interferers=[], gain_range=None, channel_swap=False)
    mixture, stems = alone.load(0, 4)
    np.testing.assert_array_equal(mixture, stems[0])
