"""General MIDI instruments per part, the soundfonts, and rendering a part with fluidsynth.

Every Debian-packaged General MIDI soundfont is used; one (`HELD_OUT_SOUNDFONT`) is kept out
of training and validation and renders only the out-of-distribution test split.
"""

import os
import shutil
import subprocess

from training.render.styles import TICKS
from umx_core.errors import UMXError

SF2, SF3 = "/usr/share/sounds/sf2", "/usr/share/sounds/sf3"
# path: Debian package
SOUNDFONTS = {
    f"{SF2}/FluidR3_GM.sf2": "fluid-soundfont-gm",
    f"{SF2}/MuseScore_General_Full.sf2": "musescore-general-soundfont-lossless",  # the .sf3 decodes slowly
    f"{SF3}/FluidR3Mono_GM.sf3": "fluidr3mono-gm-soundfont",
    f"{SF2}/OPL-3_FM_128M.sf2": "opl3-soundfont",
    f"{SF2}/TimGM6mb.sf2": "timgm6mb-soundfont",
}
HELD_OUT_SOUNDFONT = f"{SF2}/TimGM6mb.sf2"
TRAINING_SOUNDFONTS = tuple(p for p in SOUNDFONTS if p != HELD_OUT_SOUNDFONT)
# soundfonts that do not play a part: OPL-3's "guitars" are FM tones with nothing of a plucked or
# strummed string, as alike to its pianos and organs as to a guitar, so a "guitar" stem from it taught
# the model no timbre. Its basses, drums and other parts stay: FM is a synth.
NOT_FOR = {"guitar": (f"{SF2}/OPL-3_FM_128M.sf2",)}

# General MIDI programs (0-based) that plausibly belong to each stem. Choirs, voice oohs,
# synth voice and the choir pad are left out everywhere: "vocals" is the voice renderer's.
PROGRAMS = {
    "bass": (32, 33, 34, 35, 36, 37, 38, 39, 43),  # acoustic .. synth basses, contrabass
    "guitar": (24, 25, 26, 27, 28, 29, 30, 31),  # nylon, steel, jazz, clean, muted, overdrive, distortion, harmonics
    "other": tuple(range(0, 24)) + (40, 41, 42, 44, 45, 46, 47, 48, 49, 50, 51, 55) + tuple(range(56, 85))
    + (86, 87, 88, 89, 90, 92, 93, 94, 95, 104, 105, 106, 107, 108, 109, 110, 111),
}
DRUM_KITS = (0, 8, 16, 24, 25, 32, 40)  # standard, room, power, electronic, TR-808, jazz, brush


def missing_soundfonts(paths=None):
    """The Debian packages to install for the soundfonts in `paths` (default: all) that are absent."""
    return sorted({SOUNDFONTS[p] for p in (paths or SOUNDFONTS) if not os.path.exists(p)})


def write_midi(path, program, notes, drums, pan, tempo):
    """A one-track MIDI file: `notes` as `(start_tick, length_ticks, note, velocity)`, tempo in us per beat."""
    import mido

    channel = 9 if drums else 0
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("set_tempo", tempo=tempo, time=0))
    if drums:  # a kit is a program in bank 128, selected on the drum channel
        track.append(mido.Message("control_change", channel=channel, control=0, value=0, time=0))
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


def fluidsynth(midi, wav, rate, soundfont, effects=True):
    """Render a MIDI file to a stereo WAV with the `fluidsynth` program (its own reverb/chorus on or off)."""
    exe = shutil.which("fluidsynth")
    if exe is None:
        raise UMXError("the fluidsynth program is not installed (Debian: apt-get install fluidsynth)")
    if not os.path.exists(soundfont):
        package = SOUNDFONTS.get(soundfont, "a General MIDI soundfont")
        raise UMXError(f"{soundfont}: no such soundfont (Debian: apt-get install {package})")
    switch = "1" if effects else "0"
    # dynamic sample loading reads only the samples the song plays: a large .sf3 loads in a second, not five
    result = subprocess.run([exe, "-ni", "-q", "-g", "0.5", "-R", switch, "-C", switch, "-o",
                             "synth.dynamic-sample-loading=1", "-r", str(rate), "-F", wav, soundfont, midi],
                            capture_output=True, text=True)
    if result.returncode != 0 or not os.path.exists(wav):
        raise UMXError(f"fluidsynth failed on {midi}: {result.stderr.strip()[-500:]}")
