"""A style, a key and a random generator -> timed notes for every part of one song.

Songs are built from sections of a few bars in which parts drop out and come back (verses
without guitar, breaks without drums, instrumental passages where a lead instrument takes the
melody instead of the voice). Notes are `(start_tick, length_ticks, midi_note, velocity)`.
"""

import numpy as np

from training.render.styles import MODES, PROGRESSIONS, RHYTHMS, STEP, STYLES, TICKS

PARTS = ("vocals", "bass", "drums", "guitar", "other")
VOICE_RANGES = {"low": (45, 67), "high": (55, 79)}  # MIDI notes of a lower and a higher voice
SECTIONS = {  # parts that a section type leaves out (besides random drop-outs)
    "full": (), "verse": ("guitar",), "verse2": ("other",), "break": ("drums",),
    "instrumental": ("vocals",), "intro": ("vocals", "drums"), "sparse": ("drums", "guitar"),
}


def chord_notes(scale, key, degree, octave, size=3):
    """MIDI notes of the chord stacked in thirds on a scale degree (size 3: triad, 4: seventh)."""
    return [key + 12 * octave + scale[(degree + 2 * k) % 7] + 12 * ((degree + 2 * k) // 7) for k in range(size)]


def plan_sections(rng, bars):
    """`[set of active parts]` per bar: sections of 1-4 bars, each dropping some parts."""
    active, lengths = [], (1, 2) if bars < 8 else (2, 4)
    kinds = list(SECTIONS)
    while len(active) < bars:
        kind = kinds[int(rng.choice(len(kinds), p=[0.3, 0.15, 0.1, 0.12, 0.15, 0.08, 0.1]))]
        parts = {p for p in PARTS if p not in SECTIONS[kind] and rng.random() > 0.12}
        active += [parts] * int(rng.choice(lengths))
    active = active[:bars]
    for part in PARTS:  # every part plays somewhere in the song
        if not any(part in a for a in active):
            active[int(rng.integers(bars))].add(part)
    return active


def _voicing(kind, chord, step, index):
    """Notes one hit of a comping pattern plays."""
    if kind == "power":
        return [chord[0], chord[0] + 7, chord[0] + 12]
    if kind == "spread":
        return [chord[0] - 12, chord[2], chord[1] + 12]
    if kind in ("arpeggio", "single"):
        up = chord + [n + 12 for n in chord]
        return [up[index % len(up)]] if kind == "arpeggio" else [chord[(step // 2) % len(chord)]]
    return list(chord)


def melody(rng, scale, key, chords, bar_ticks, bars, low, high, density, meter):
    """A phrased line: stepwise motion with leaps, chord tones on strong beats, rests between phrases."""
    notes, degree = [], int(rng.integers(7, 12))
    base = key + 12 * (low // 12)
    for b in bars:
        slot, slots = 0, meter * 2
        rest_from = slots - int(rng.integers(0, 4)) if b % 2 else slots  # breathe at the end of two bars
        while slot < rest_from:
            length = int(rng.choice([1, 1, 2, 2, 3, 4]))
            if rng.random() < density:
                if slot % 4 == 0 and rng.random() < 0.5:  # land on a chord tone
                    target = chords[b][int(rng.integers(3))] % 12
                    here = degree
                    distance = lambda d: (abs(_pitch(scale, base, here + d) % 12 - target), abs(d))  # noqa: E731
                    degree += min(range(-3, 4), key=distance)
                else:
                    degree += int(rng.choice([-2, -1, -1, 0, 1, 1, 2, 3, -3, 4, -4]))
                while _pitch(scale, base, degree) > high:
                    degree -= 7
                while _pitch(scale, base, degree) < low:
                    degree += 7
                length = min(length, rest_from - slot)
                notes.append((b * bar_ticks + slot * 2 * STEP, length * 2 * STEP - 30, _pitch(scale, base, degree),
                              int(rng.integers(70, 110))))
            slot += length
    return notes


def _pitch(scale, base, degree):
    return base + scale[degree % 7] + 12 * (degree // 7)


def _bass(rng, pattern, chord, nxt, meter):
    """(step, length, note) of one bar's bass line."""
    root, fifth, steps = chord[0], chord[0] + 7, meter * 4
    if pattern == "walking":
        walk = [root, chord[1], fifth, nxt[0] + (1 if rng.random() < 0.5 else -1)]
        return [(4 * k, 4, walk[k]) for k in range(meter)]
    lines = {
        "roots": [(s, 4, root) for s in range(0, steps, 4)],
        "eighths": [(s, 2, root) for s in range(0, steps, 2)],
        "octaves": [(s, 2, root + 12 * (s // 2 % 2)) for s in range(0, steps, 2)],
        "sustained": [(0, steps, root)],
        "syncopated": [(0, 3, root), (3, 2, root + 12), (6, 2, fifth), (10, 2, root), (12, 1, chord[1]),
                       (14, 2, fifth)],
        "offbeat": [(s, 2, root) for s in range(2, steps, 4)],
        "waltz": [(0, 4, root), (8, 4, fifth - 12)],
        "bossa": [(0, 6, root), (6, 2, fifth), (8, 6, fifth), (14, 2, root)],
    }
    return [(s, n, note) for s, n, note in lines[pattern] if s < steps]


def _drums(rng, style, fill, crash):
    """(step, key, velocity) of one bar of drums."""
    steps, hits = style.meter * 4, []
    busy = rng.uniform(0.6, 1.0)
    for s in style.kick:
        hits.append((s, 36, int(rng.integers(90, 120))))
    for s in style.snare:
        hits.append((s, style.snare_note, int(rng.integers(85, 120))))
    for s in style.hat:
        if rng.random() < busy:
            hits.append((s, 46 if style.hat_note == 42 and s == steps - 2 and rng.random() < 0.3 else style.hat_note,
                         int(rng.integers(50, 95))))
    if rng.random() < 0.4:  # a ghost note or an extra kick
        hits.append((int(rng.integers(steps)), int(rng.choice([36, 38, 37])), int(rng.integers(35, 70))))
    if fill:
        hits = [h for h in hits if h[0] < steps - 4] + [(s, int(rng.choice([50, 48, 47, 45, 38])),
                                                         int(rng.integers(80, 120))) for s in range(steps - 4, steps)]
    if crash:
        hits.append((0, int(rng.choice([49, 57, 55])), 105))
    return [h for h in hits if h[0] < steps]


def arrange(rng, style_name, bars):
    """Timed notes per part: `{part: [(start_tick, length_ticks, note, velocity)]}` and the plan.

    Returns:
        (notes, info): info has the key, mode name, voice range name and active parts per bar.
    """
    style = STYLES[style_name]
    key, mode = int(rng.integers(12)), list(MODES)[int(rng.integers(len(MODES)))]
    scale = MODES[mode]
    progression = PROGRESSIONS[int(rng.integers(len(PROGRESSIONS)))]
    bar_ticks, steps = style.meter * TICKS, style.meter * 4
    active = plan_sections(rng, bars)
    voice = "low" if rng.random() < 0.45 else "high"
    octaves = {"guitar": int(rng.integers(3, 5)), "other": int(rng.integers(3, 6)), "bass": int(rng.integers(1, 3))}
    degrees = [progression[b % len(progression)] for b in range(bars + 1)]
    chords = {part: [chord_notes(scale, key, d, o) for d in degrees] for part, o in octaves.items()}
    swing = style.swing * STEP
    notes = {p: [] for p in PARTS}

    def add(part, bar, step, length, note, velocity):
        shift = swing if step % 4 == 2 else 0
        jitter = int(rng.integers(-10, 11)) if bar or step else 0  # a little human timing
        start = max(0, int(bar * bar_ticks + step * STEP + shift + jitter))
        notes[part].append((start, max(30, int(length * STEP - 20)), int(np.clip(note, 0, 127)),
                            int(np.clip(velocity, 1, 127))))

    bass_pattern = str(rng.choice(style.bass))
    parts_comp = {p: getattr(style, p)[int(rng.integers(len(getattr(style, p))))] for p in ("guitar", "other")}
    lead_bars = {p: [b for b in range(bars) if p in active[b] and "vocals" not in active[b]] for p in parts_comp}
    for b in range(bars):
        if "bass" in active[b]:
            for s, n, note in _bass(rng, bass_pattern, chords["bass"][b], chords["bass"][b + 1], style.meter):
                add("bass", b, s, n, note, rng.integers(80, 115))
        if "drums" in active[b]:
            last = b + 1 == bars or active[b + 1] != active[b]
            crash = b == 0 or active[b - 1] != active[b]
            for s, key_, vel in _drums(rng, style, last and rng.random() < 0.5, crash):
                notes["drums"].append((max(0, int(b * bar_ticks + s * STEP + (swing if s % 4 == 2 else 0))),
                                       STEP, key_, vel))
        for part, (rhythm, voicing) in parts_comp.items():
            if part not in active[b] or rhythm == "lead":
                continue
            velocity = rng.integers(55, 100)
            for k, (s, n) in enumerate(RHYTHMS[rhythm]):
                if s >= steps:
                    continue
                length = steps - s if voicing == "pad" else min(n, steps - s)
                for j, note in enumerate(_voicing(voicing, chords[part][b], s, k)):
                    add(part, b, s + (0.12 * j if part == "guitar" and voicing != "single" else 0), length, note,
                        velocity + rng.integers(-8, 9))
    lo, hi = VOICE_RANGES[voice]
    density = rng.uniform(*style.melody)
    bar_chords = [chord_notes(scale, key, d, 4) for d in degrees]
    notes["vocals"] = melody(rng, scale, key, bar_chords, bar_ticks, [b for b in range(bars) if "vocals" in active[b]],
                             lo, hi, density, style.meter)
    for part, (rhythm, _) in parts_comp.items():
        # a lead instrument takes the tune where the voice rests (and sometimes doubles it)
        if rhythm == "lead":  # a counter-melody over the voice when there is no instrumental passage
            lead = lead_bars[part] or [b for b in range(bars) if part in active[b]]
        else:
            lead = [b for b in lead_bars[part] if rng.random() < 0.3]
        notes[part] += melody(rng, scale, key, bar_chords, bar_ticks, lead, lo - 5, hi + 5, density, style.meter)
    return notes, {"key": key, "mode": mode, "voice": voice, "active": active, "bpm_range": style.bpm}
