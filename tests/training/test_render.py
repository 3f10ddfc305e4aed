"""The fluidsynth renderer: styles, sections, the held-out split, the voice, effects and every soundfont.

Audio tests render a second or two; they need the Debian packages `make system-deps` installs.
"""

import os

import mido
import numpy as np
import pytest

from training import render
from training.render import effects, instruments, voice
from training.render.arrange import PARTS, arrange
from training.render.styles import HELD_OUT, STYLES, TICKS, TRAINING
from umx_core.errors import UMXError

RATE = 22050


def _f0_track(x, rate, size=1024):
    """Pitch (Hz) per frame by autocorrelation, for frames that are loud enough."""
    out = []
    for i in range(0, len(x) - size, size // 2):
        frame = x[i:i + size] - x[i:i + size].mean()
        if np.sqrt(np.mean(frame ** 2)) < 0.05 * np.abs(x).max():
            continue
        ac = np.correlate(frame, frame, mode="full")[size - 1:]
        lo, hi = rate // 500, rate // 80
        lag = lo + int(np.argmax(ac[lo:hi]))
        a, b, c = ac[lag - 1], ac[lag], ac[lag + 1]  # parabolic refinement of the peak
        out.append(rate / (lag + 0.5 * (a - c) / (a - 2 * b + c)))
    return np.array(out)


@pytest.mark.parametrize("style", sorted(STYLES))
def test_every_style_arranges_every_part_deterministically(style):
    a, info = arrange(np.random.default_rng(4), style, 8)
    b, _ = arrange(np.random.default_rng(4), style, 8)
    assert a == b and set(a) == set(PARTS)
    bar = STYLES[style].meter * TICKS
    for part, notes in a.items():
        assert notes, part
        assert all(0 <= s < 9 * bar and 0 <= n < 128 and 1 <= v <= 127 for s, _, n, v in notes), part
    assert max(n for _, _, n, _ in a["bass"]) < max(n for _, _, n, _ in a["vocals"])
    assert all(p in set().union(*info["active"]) for p in PARTS)


def test_styles_differ_in_meter_and_tempo_and_sections_drop_parts():
    assert {s.meter for s in STYLES.values()} == {3, 4}
    low = min(s.bpm[0] for s in STYLES.values())
    high = max(s.bpm[1] for s in STYLES.values())
    assert low <= 64 and high >= 180
    waltz, _ = arrange(np.random.default_rng(0), "waltz", 4)
    # a 3/4 bar is three beats: every kick of the waltz lands on a multiple of 3 beats
    assert all(s % (3 * TICKS) < 30 for s, _, n, _ in waltz["drums"] if n == 36)
    dropped = 0
    for seed in range(20):
        _, info = arrange(np.random.default_rng(seed), "rock", 16)
        dropped += sum(len(a) < len(PARTS) for a in info["active"])
    assert dropped > 20  # parts drop out of some bars in most songs


def test_held_out_styles_and_soundfont_only_in_the_ood_split():
    seen = {split: (set(), set()) for split in render.SPLITS}
    for split in render.SPLITS:
        for index in range(60):
            plan = render.plan_song(3, index, split)
            seen[split][0].add(plan["style"])
            seen[split][1].update(plan["soundfonts"].values())
    for split in ("train", "valid", "test"):
        assert not seen[split][0] & set(HELD_OUT), split
        assert instruments.HELD_OUT_SOUNDFONT not in seen[split][1], split
    assert seen["train"][0] == set(TRAINING) and seen["train"][1] == set(instruments.TRAINING_SOUNDFONTS)
    assert seen["test-ood"] == (set(HELD_OUT), {instruments.HELD_OUT_SOUNDFONT})
    with pytest.raises(UMXError, match="split must be"):
        render.plan_song(3, 0, "holdout")


def test_no_guitar_from_a_soundfont_kept_from_it_and_the_rest_of_the_song_unchanged(monkeypatch):
    fm = instruments.NOT_FOR["guitar"]
    plans = [render.plan_song(5, index, "train") for index in range(80)]
    assert not any(p["soundfonts"]["guitar"] in fm for p in plans)
    assert any(p["soundfonts"][part] in fm for p in plans for part in ("bass", "drums", "other"))
    monkeypatch.setattr(instruments, "NOT_FOR", {})
    unruled = [render.plan_song(5, index, "train") for index in range(80)]
    redrawn = [k for k, p in enumerate(unruled) if p["soundfonts"]["guitar"] in fm]
    assert redrawn  # the rule had songs to change
    for plan, before in zip(plans, unruled):
        assert {k: v for k, v in plan["soundfonts"].items() if k != "guitar"} == \
            {k: v for k, v in before["soundfonts"].items() if k != "guitar"}
        assert (plan["style"], plan["bpm"], plan["programs"]) == (before["style"], before["bpm"], before["programs"])
        assert plan["rng"].random() == before["rng"].random()  # the notes drawn next are the same too
    for k, (plan, before) in enumerate(zip(plans, unruled)):
        if k not in redrawn:
            assert plan["soundfonts"]["guitar"] == before["soundfonts"]["guitar"]


@pytest.mark.parametrize("drums", [False, True])
def test_midi_round_trips_through_mido(tmp_path, drums):
    notes = [(0, 400, 60, 90), (480, 200, 64, 70), (470, 100, 67, 80)]
    path = str(tmp_path / "part.mid")
    instruments.write_midi(path, 33, notes, drums, 40, 500000)
    midi = mido.MidiFile(path)
    ticks, on = 0, []
    for message in midi.tracks[0]:
        ticks += message.time
        if message.type == "note_on":
            on.append((ticks, message.note, message.velocity))
            assert message.channel == (9 if drums else 0)
        if message.type == "program_change":
            assert message.program == 33
    assert sorted(on) == sorted((s, n, v) for s, _, n, v in notes)
    assert midi.length == pytest.approx((480 + 200) / TICKS * 0.5)


def test_pitch_curve_scoops_into_the_note_and_has_vibrato():
    curve, spans = voice.pitch_curve(np.random.default_rng(0), [(0.0, 2.0, 60, 90)], RATE, depth=(0.4, 0.4))
    assert curve[0] < 59.8 and abs(np.median(curve[RATE // 4:]) - 60) < 0.2  # from below, then on pitch
    late = curve[RATE:] - np.convolve(curve[RATE:], np.ones(RATE // 8) / (RATE // 8), mode="same")
    crossings = np.sum(np.diff(np.sign(late[RATE // 16: -RATE // 16])) != 0) / 2 / (1 - 1 / 8)
    assert 3.5 <= crossings <= 7.5 and np.ptp(curve[RATE:]) > 0.4  # 4.5-6.5 Hz, at least +-0.2 semitones


def test_formant_voice_moves_in_pitch_and_breathes_between_phrases():
    notes = [(0.1, 0.6, 57, 90), (0.6, 1.5, 60, 90), (2.2, 3.4, 62, 90)]
    x = voice.sing(np.random.default_rng(1), notes, 3.6, RATE, "low", espeak_share=0.0)
    assert x.shape == (int(3.6 * RATE),) and x.dtype == np.float32
    f0 = _f0_track(x[int(0.7 * RATE): int(1.4 * RATE)], RATE)
    cents = 1200 * np.log2(f0 / np.median(f0))
    assert abs(np.median(f0) - 261.6) < 12 and np.ptp(cents) > 15  # on the note, and not a still tone
    gap = x[int(1.75 * RATE): int(1.9 * RATE)]  # between the phrases: near silence (before the breath)
    assert np.abs(gap).max() < 0.02 * np.abs(x).max()
    assert len(voice.phrases(notes)) == 2


def test_espeak_voice_sings_syllables_on_the_notes():
    notes = [(0.2, 0.8, 64, 90), (0.8, 1.4, 67, 90), (2.0, 2.6, 60, 90)]
    x = voice.sing(np.random.default_rng(2), notes, 3.0, RATE, espeak_share=1.0)
    assert x.shape == (3 * RATE,) and np.abs(x[int(0.3 * RATE): int(1.3 * RATE)]).max() > 0.1
    assert np.abs(x[int(1.5 * RATE): int(1.8 * RATE)]).max() < 0.02


def test_effects_change_the_sound_keep_the_length_and_the_mix_bus_stays_linear():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((RATE, 2)) * 0.1).astype(np.float32)
    for part in PARTS:
        y = effects.produce(np.random.default_rng(5), part, x, RATE)
        assert y.shape == x.shape and y.dtype == np.float32
        assert np.abs(y / np.abs(y).max() - x / np.abs(x).max()).mean() > 0.01, part
    stems = {"a": x, "b": np.roll(x, 100, axis=0)}
    out = effects.master(np.random.default_rng(1), stems, RATE)
    both = effects.master(np.random.default_rng(1), {"ab": x + stems["b"]}, RATE)
    np.testing.assert_allclose(out["a"] + out["b"], both["ab"], atol=1e-4)
    left = effects.place(np.ones((4, 2)), -1.0, 1.0)
    assert np.allclose(left[:, 1], 0, atol=1e-6) and np.all(left[:, 0] > 1)


def test_each_stem_lands_within_its_level_range_and_the_voice_sits_in_front():
    x = (np.random.default_rng(0).standard_normal((RATE // 4, 2)) * 0.1).astype(np.float32)
    for part in PARTS:
        low, high = effects.LEVELS_DB[part]
        levels = []
        for seed in range(12):
            y = effects.produce(np.random.default_rng(seed), part, x, RATE)
            playing = np.abs(y).max(axis=1) > 1e-3
            levels.append(20 * np.log10(np.sqrt(np.mean(y[playing] ** 2)) / effects.LEVEL))
        assert low - 0.5 < min(levels) and max(levels) < high + 0.5, (part, levels)
        assert max(levels) - min(levels) > 0.3 * (high - low), (part, levels)  # drawn, not fixed
    assert effects.LEVELS_DB["vocals"][0] > max(effects.LEVELS_DB[p][0] for p in PARTS if p != "vocals")


@pytest.mark.parametrize("soundfont", sorted(instruments.SOUNDFONTS))
def test_every_soundfont_renders_an_instrument_and_a_kit(tmp_path, soundfont):
    for program, drums in ((int(instruments.PROGRAMS["guitar"][0]), False), (0, True)):
        midi, wav = str(tmp_path / "p.mid"), str(tmp_path / "p.wav")
        notes = [(0, 200, 60 if not drums else 38, 100), (240, 200, 64 if not drums else 36, 100)]
        instruments.write_midi(midi, program, notes, drums, 64, 500000)
        instruments.fluidsynth(midi, wav, RATE, soundfont)
        import soundfile as sf

        audio, rate = sf.read(wav)
        assert rate == RATE and np.abs(audio).max() > 0.01, (soundfont, drums)


@pytest.mark.parametrize("split", ["train", "test-ood"])
def test_render_track_writes_every_part_at_the_length_asked(split):
    parts = render.render_track(5, 1, 2.0, RATE, split)
    assert set(parts) == set(PARTS)
    assert all(p.shape == (2 * RATE, 2) and p.dtype == np.float32 for p in parts.values())
    assert np.abs(sum(parts.values())).max() <= 0.9 + 1e-6
    stems = render.stems_for(["vocals", "accompaniment"], parts)
    np.testing.assert_allclose(stems["vocals"] + stems["accompaniment"], sum(parts.values()), atol=1e-5)
    with pytest.raises(UMXError, match="not \\['piano'\\]"):
        render.targets_supported(["vocals", "piano"])


def test_regroup_writes_vocals_and_accompaniment_from_a_rendered_dataset(tmp_path):
    from training.synthesize import main, regroup, synthesize

    source, out = str(tmp_path / "five"), str(tmp_path / "two")
    synthesize(source, tracks=2, targets=["vocals", "drums", "bass"], duration=0.5, rate=8000, seed=1,
               valid_fraction=0.5, jobs=2)
    (tmp_path / "five" / ".done").write_text("")  # the Makefile's stamp sits beside the splits
    assert main(["--from", source, "--out", out, "--targets", "vocals", "accompaniment"]) is None
    folders = regroup(source, out, ["vocals", "accompaniment"])
    assert sorted(os.path.relpath(f, out) for f in folders) == ["train/track0000", "valid/track0001"]
    import soundfile as sf

    parts = {n: sf.read(f"{source}/train/track0000/{n}.wav")[0] for n in ("vocals", "drums", "bass")}
    accompaniment = sf.read(f"{out}/train/track0000/accompaniment.wav")[0]
    np.testing.assert_allclose(accompaniment, parts["drums"] + parts["bass"], atol=2e-4)
