"""Multi-stem songs with real instrument samples: random arrangements, General MIDI, fluidsynth.

Each track is a short song: a tempo, a key, a four-chord progression, and a part per stem
(a sung-vowel melody, a bass line, a drum kit, strummed guitar, keys/strings/pads), each
part written to its own MIDI file with `mido` and rendered through the `fluidsynth`
program with a General MIDI soundfont (Debian: `fluidsynth`, `fluid-soundfont-gm`). The
instruments, patterns and mix are drawn from a generator seeded by `(seed, track)`, so a
seed gives the same songs. `accompaniment` is the sum of every part but the vocals.
"""

import os
import shutil
import subprocess
import tempfile

import numpy as np
import soundfile as sf

from umx_core.errors import UMXError

SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
PARTS = ("vocals", "bass", "drums", "guitar", "other")
# General MIDI programs per part (0-based)
PROGRAMS = {
    "vocals": (52, 53, 54, 85),  # choir aahs, voice oohs, synth voice, lead voice
    "bass": (32, 33, 34, 35, 38, 39),  # acoustic, finger, pick, fretless, synth basses
    "guitar": (24, 25, 26, 27, 28, 29, 30),  # nylon, steel, jazz, clean, muted, overdrive, distortion
    "other": (0, 1, 4, 5, 16, 19, 48, 49, 61, 88, 89),  # pianos, e-pianos, organs, strings, brass, pads
}
DRUM_KITS = (0, 8, 16, 24, 25, 32)  # standard, room, power, electronic, TR-808, jazz
PROGRESSIONS = ((0, 4, 5, 3), (5, 3, 0, 4), (0, 3, 4, 3), (1, 4, 0, 5), (0, 5, 3, 4), (0, 3, 5, 4))
MAJOR, MINOR = (0, 2, 4, 5, 7, 9, 11), (0, 2, 3, 5, 7, 8, 10)
TICKS = 480  # per beat


def targets_supported(targets):
    """Raise UMXError for a target the renderer cannot write."""
    unknown = [t for t in targets if t not in PARTS + ("accompaniment",)]
    if unknown:
        raise UMXError(f"the fluidsynth renderer writes {', '.join(PARTS)} and accompaniment, not {unknown}")


def _chord(scale, root_key, degree, octave):
    """MIDI notes of the triad on a scale degree."""
    return [root_key + 12 * octave + scale[(degree + k) % 7] + 12 * ((degree + k) // 7) for k in (0, 2, 4)]


def _arrangement(rng, bars):
    """Timed notes per part: `{part: (program, [(start_tick, length_ticks, note, velocity)])}`."""
    key = int(rng.integers(0, 12))
    scale = MAJOR if rng.random() < 0.6 else MINOR
    progression = PROGRESSIONS[int(rng.integers(len(PROGRESSIONS)))]
    bar = 4 * TICKS
    parts = {name: (int(rng.choice(PROGRAMS[name])) if name in PROGRAMS else int(rng.choice(DRUM_KITS)), [])
             for name in PARTS}

    def add(part, start, length, note, velocity):
        jitter = int(rng.integers(-12, 13)) if start > 0 else 0  # a little human timing
        parts[part][1].append((max(0, start + jitter), length, int(note), int(np.clip(velocity, 1, 127))))

    strum = [(0, 2), (2, 1), (3, 1)] if rng.random() < 0.5 else [(0, 1), (1, 1), (2, 1), (3, 1)]
    melody_note = 7
    for b in range(bars):
        degree = progression[b % 4]
        t0 = b * bar
        chord = _chord(scale, key, degree, 4)
        # bass: root on the beats, the fifth sometimes
        for beat in range(4):
            note = chord[0] - 24 + (7 if beat == 2 and rng.random() < 0.4 else 0)
            add("bass", t0 + beat * TICKS, TICKS - 40, note, rng.integers(80, 110))
        # drums: kick 1 and 3, snare 2 and 4, hi-hat eighths, a crash at phrase starts
        for beat in range(4):
            add("drums", t0 + beat * TICKS, TICKS // 2, 36 if beat % 2 == 0 else 38, rng.integers(85, 120))
        for eighth in range(8):
            if rng.random() < 0.9:
                add("drums", t0 + eighth * TICKS // 2, TICKS // 4, 42, rng.integers(50, 90))
        if b % 4 == 0:
            add("drums", t0, TICKS, 49, 100)
        # guitar: strummed chord an octave below the keys, strings a few ticks apart
        for beat, beats in strum:
            for k, note in enumerate(chord):
                add("guitar", t0 + beat * TICKS + 15 * k, beats * TICKS - 30, note - 12, rng.integers(60, 95))
        # other: held chord, or arpeggio
        if rng.random() < 0.5:
            for note in chord:
                add("other", t0, bar - 20, note, rng.integers(50, 80))
        else:
            for step in range(8):
                add("other", t0 + step * TICKS // 2, TICKS // 2, chord[step % 3] + 12 * (step // 3 % 2), rng.integers(55, 85))
        # vocals: a stepwise melody over the chord, with rests
        step = 0
        while step < 8:
            length = int(rng.choice([1, 2, 2, 4]))
            if rng.random() < 0.8:
                melody_note = int(np.clip(melody_note + rng.integers(-2, 3), 2, 12))
                note = key + 60 + scale[melody_note % 7] + 12 * (melody_note // 7)
                add("vocals", t0 + step * TICKS // 2, length * TICKS // 2 - 20, note, rng.integers(70, 105))
            step += length
    return parts


def _write_midi(path, program, notes, drums, pan, tempo):
    import mido

    channel = 9 if drums else 0
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("set_tempo", tempo=tempo, time=0))
    track.append(mido.Message("program_change", channel=channel, program=program, time=0))
    track.append(mido.Message("control_change", channel=channel, control=10, value=pan, time=0))
    events = []
    for start, length, note, velocity in notes:
        events.append((start, 1, note, velocity))
        events.append((start + max(10, length), 0, note, 0))
    events.sort(key=lambda e: (e[0], e[1]))
    now = 0
    for tick, on, note, velocity in events:
        kind = "note_on" if on else "note_off"
        track.append(mido.Message(kind, channel=channel, note=note, velocity=velocity, time=tick - now))
        now = tick
    midi = mido.MidiFile(ticks_per_beat=TICKS)
    midi.tracks.append(track)
    midi.save(path)


def _fluidsynth(midi, wav, rate, soundfont):
    exe = shutil.which("fluidsynth")
    if exe is None:
        raise UMXError("the fluidsynth program is not installed (Debian: apt-get install fluidsynth fluid-soundfont-gm)")
    result = subprocess.run([exe, "-ni", "-q", "-g", "0.5", "-r", str(rate), "-F", wav, soundfont, midi],
                            capture_output=True, text=True)
    if result.returncode != 0 or not os.path.exists(wav):
        raise UMXError(f"fluidsynth failed on {midi}: {result.stderr.strip()[-500:]}")


def render_track(seed, index, seconds, rate, soundfont=SOUNDFONT):
    """`{part: float32 (samples, 2)}` for every part of one song, all `seconds` long."""
    if not os.path.exists(soundfont):
        raise UMXError(f"{soundfont}: no such soundfont (Debian: apt-get install fluid-soundfont-gm)")
    rng = np.random.default_rng([seed, index, 1000])
    bpm = float(rng.uniform(80, 140))
    bars = int(np.ceil(seconds * bpm / 60 / 4)) + 1
    arrangement = _arrangement(rng, bars)
    frames = int(round(seconds * rate))
    stems = {}
    with tempfile.TemporaryDirectory(prefix="umx-render-") as tmp:
        for part, (program, notes) in arrangement.items():
            midi, wav = os.path.join(tmp, f"{part}.mid"), os.path.join(tmp, f"{part}.wav")
            pan = 64 if part in ("vocals", "bass", "drums") else int(rng.integers(30, 98))
            _write_midi(midi, program, notes, part == "drums", pan, int(60e6 / bpm))
            _fluidsynth(midi, wav, rate, soundfont)
            audio, _ = sf.read(wav, dtype="float32", always_2d=True)
            out = np.zeros((frames, 2), np.float32)
            out[: min(frames, len(audio))] = audio[:frames, :2]
            stems[part] = out * np.float32(10 ** (rng.uniform(-6, 0) / 20))  # a random mix level
    peak = np.abs(sum(stems.values())).max()
    if peak > 0.9:  # one gain for every stem keeps the mixture unclipped and the stems consistent
        stems = {k: v * np.float32(0.9 / peak) for k, v in stems.items()}
    return stems


def stems_for(targets, parts):
    """The requested target stems from rendered parts (`accompaniment` sums the non-vocal parts)."""
    out = {}
    for target in targets:
        if target == "accompaniment":
            out[target] = sum(v for k, v in parts.items() if k != "vocals")
        else:
            out[target] = parts[target]
    return out
