"""Multi-stem songs for the demo models: varied arrangements, real instrument samples, a sung voice.

Each track is a short song in one of several styles (`styles.STYLES`: rock/pop, ballad, funk,
swing, electronic, waltz, half-time, and two held-out ones), at a tempo of the style's range,
in any key and mode, built from sections in which parts drop out and come back
(`arrange.arrange`). Bass, drums, guitar and other are written to MIDI with `mido` and played
by the `fluidsynth` program through a General MIDI soundfont drawn per part from several
Debian packages (`instruments.SOUNDFONTS`); the vocals are sung by `voice.sing`. Each stem
then goes through its own random effects, panning, width and level (`effects`, pedalboard).

Splits: `train`, `valid` and `test` draw from the training styles and soundfonts; `test-ood`
uses only the held-out styles (`styles.HELD_OUT`) and the held-out soundfont
(`instruments.HELD_OUT_SOUNDFONT`), so it measures what the models learned beyond their data.
Everything is drawn from a generator seeded by `(seed, track)`: a seed gives the same songs.
`accompaniment` is the sum of every part but the vocals.
"""

import os
import tempfile

import numpy as np
import soundfile as sf

from training.render import effects, instruments, voice
from training.render.arrange import PARTS, arrange
from training.render.styles import HELD_OUT, STYLES, TICKS, TRAINING
from umx_core.errors import UMXError

SPLITS = ("train", "valid", "test", "test-ood")
OOD_SPLIT = "test-ood"


def targets_supported(targets):
    """Raise UMXError for a target the renderer cannot write."""
    unknown = [t for t in targets if t not in PARTS + ("accompaniment",)]
    if unknown:
        raise UMXError(f"the fluidsynth renderer writes {', '.join(PARTS)} and accompaniment, not {unknown}")


def plan_song(seed, index, split="train"):
    """The song's style, tempo and, per instrument part, soundfont and GM program (drums: kit).

    Returns:
        `{"style", "bpm", "soundfonts": {part: path}, "programs": {part: program}, "rng"}`; `rng` is the
        generator the rest of the song is drawn from.
    """
    if split not in SPLITS:
        raise UMXError(f"split must be one of {SPLITS}, got {split!r}")
    rng = np.random.default_rng([seed, index, 1000])
    ood = split == OOD_SPLIT
    style = str(rng.choice(HELD_OUT if ood else TRAINING))
    fonts = (instruments.HELD_OUT_SOUNDFONT,) if ood else instruments.TRAINING_SOUNDFONTS
    one_font = rng.random() < 0.4  # sometimes one soundfont for the whole band, else one per part
    shared = str(rng.choice(fonts))
    parts = [p for p in PARTS if p != "vocals"]
    soundfonts = {p: shared if one_font else str(rng.choice(fonts)) for p in parts}
    for part, excluded in instruments.NOT_FOR.items():
        if soundfonts[part] in excluded:  # drawn again from its own generator: the song's stays as it was
            allowed = [f for f in fonts if f not in excluded]
            soundfonts[part] = str(np.random.default_rng([seed, index, 1001]).choice(allowed))
    programs = {p: int(rng.choice(instruments.DRUM_KITS if p == "drums" else instruments.PROGRAMS[p])) for p in parts}
    low, high = STYLES[style].bpm
    return {"style": style, "bpm": float(rng.uniform(low, high)), "soundfonts": soundfonts, "programs": programs,
            "rng": rng}


def _play(part, notes, plan, frames, rate, tmp):
    """One instrument part through fluidsynth: `(frames, 2)` float32."""
    rng, font, program = plan["rng"], plan["soundfonts"][part], plan["programs"][part]
    midi, wav = os.path.join(tmp, f"{part}.mid"), os.path.join(tmp, f"{part}.wav")
    fx = bool(rng.random() < 0.3)
    for attempt in (program, 0):  # a soundfont without the program or kit: fall back to the first one
        instruments.write_midi(midi, attempt, notes, part == "drums", 64, int(60e6 / plan["bpm"]))
        instruments.fluidsynth(midi, wav, rate, font, effects=fx)
        audio, _ = sf.read(wav, dtype="float32", always_2d=True)
        out = np.zeros((frames, 2), np.float32)
        out[: min(frames, len(audio))] = audio[:frames, :2]
        if not notes or np.abs(out).max() > 1e-3:
            break
    return out


def render_track(seed, index, seconds, rate, split="train"):
    """`{part: float32 (samples, 2)}` for every part of one song, all `seconds` long."""
    missing = instruments.missing_soundfonts()
    if missing:
        raise UMXError(f"soundfonts missing (Debian: apt-get install {' '.join(missing)})")
    plan = plan_song(seed, index, split)
    rng, style = plan["rng"], STYLES[plan["style"]]
    bars = int(np.ceil(seconds * plan["bpm"] / 60 / style.meter)) + 1
    notes, info = arrange(rng, plan["style"], bars)
    frames = int(round(seconds * rate))
    stems = {}
    with tempfile.TemporaryDirectory(prefix="umx-render-") as tmp:
        for part in PARTS[1:]:
            stems[part] = _play(part, notes[part], plan, frames, rate, tmp)
    beat = 60.0 / plan["bpm"] / TICKS
    sung = [(s * beat, (s + n) * beat, note, v) for s, n, note, v in notes["vocals"]]
    mono = voice.sing(rng, sung, seconds, rate, info["voice"], espeak_share=float(rng.choice([0.0, 0.5, 1.0])))
    stems = {"vocals": np.repeat(mono[:, None], 2, axis=1) * np.float32(0.5), **stems}
    stems = effects.master(rng, {p: effects.produce(rng, p, stems[p], rate) for p in PARTS}, rate)
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
