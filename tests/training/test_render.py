"""The fluidsynth renderer's arrangement and MIDI (the fluidsynth call itself needs the Debian
packages and is exercised by `make demo-data`, not here)."""

import mido
import numpy as np
import pytest

from training import render
from umx_core.errors import UMXError


def test_arrangement_is_deterministic_and_musical(tmp_path):
    a = render._arrangement(np.random.default_rng([1, 2, 1000]), bars=8)
    b = render._arrangement(np.random.default_rng([1, 2, 1000]), bars=8)
    c = render._arrangement(np.random.default_rng([1, 3, 1000]), bars=8)
    assert a == b and a != c and set(a) == set(render.PARTS)
    for part, (program, notes) in a.items():
        assert 0 <= program < 128 and notes, part
        assert all(0 <= start < 9 * 4 * render.TICKS and 0 <= note < 128 and 1 <= vel <= 127
                   for start, _, note, vel in notes)
    # the bass sits below the vocal melody
    assert max(n for _, _, n, _ in a["bass"][1]) < min(n for _, _, n, _ in a["vocals"][1])


@pytest.mark.parametrize("drums", [False, True])
def test_midi_round_trips_through_mido(tmp_path, drums):
    notes = [(0, 400, 60, 90), (480, 200, 64, 70), (470, 100, 67, 80)]
    path = str(tmp_path / "part.mid")
    render._write_midi(path, 33, notes, drums, 40, 500000)
    midi = mido.MidiFile(path)
    assert midi.ticks_per_beat == render.TICKS
    ticks, on = 0, []
    for message in midi.tracks[0]:
        ticks += message.time
        if message.type == "note_on":
            on.append((ticks, message.note, message.velocity))
            assert message.channel == (9 if drums else 0)
        if message.type == "program_change":
            assert message.program == 33
    assert sorted(on) == sorted((s, n, v) for s, _, n, v in notes)
    assert midi.length == pytest.approx((480 + 200) / render.TICKS * 0.5)


def test_accompaniment_sums_every_part_but_vocals():
    rng = np.random.default_rng(0)
    parts = {p: rng.standard_normal((10, 2)).astype(np.float32) for p in render.PARTS}
    stems = render.stems_for(["vocals", "accompaniment"], parts)
    np.testing.assert_allclose(stems["vocals"] + stems["accompaniment"], sum(parts.values()), atol=1e-5)
    with pytest.raises(UMXError, match="not \\['piano'\\]"):
        render.targets_supported(["vocals", "piano"])
    with pytest.raises(UMXError, match="nope.sf2: no such soundfont"):
        render.render_track(0, 0, 1.0, 8000, soundfont="/nope.sf2")
