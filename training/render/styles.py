"""Arrangement styles: meter, tempo range, groove and the patterns each part may play.

A style is data; `training.render.arrange` turns one into timed notes. Steps are sixteenth
notes from the bar's start (a 3/4 bar has 12). Two styles are held out of training and
validation entirely and only appear in the out-of-distribution test split (`HELD_OUT`).
"""

import dataclasses

TICKS = 480  # MIDI ticks per beat (a quarter note)
STEP = TICKS // 4  # a sixteenth note

MODES = {
    "ionian": (0, 2, 4, 5, 7, 9, 11), "dorian": (0, 2, 3, 5, 7, 9, 10), "phrygian": (0, 1, 3, 5, 7, 8, 10),
    "lydian": (0, 2, 4, 6, 7, 9, 11), "mixolydian": (0, 2, 4, 5, 7, 9, 10), "aeolian": (0, 2, 3, 5, 7, 8, 10),
    "harmonic minor": (0, 2, 3, 5, 7, 8, 11),
}
# scale degrees (0-based) of one chord per bar, repeated over the song
PROGRESSIONS = ((0, 4, 5, 3), (5, 3, 0, 4), (0, 3, 4, 3), (1, 4, 0, 5), (0, 5, 3, 4), (0, 3, 5, 4),
                (0, 0, 3, 4), (0, 6, 5, 4), (3, 4, 0, 0), (0, 2, 3, 4), (5, 4, 3, 4), (0, 3, 0, 4),
                (0, 4), (0, 3), (5, 4, 3, 2, 0, 3, 4, 4))

# comping rhythms: (step, length in steps) per bar of 4/4; 3/4 styles use the WALTZ_ ones
RHYTHMS = {
    "whole": ((0, 16),), "half": ((0, 8), (8, 8)), "quarters": ((0, 4), (4, 4), (8, 4), (12, 4)),
    "eighths": tuple((s, 2) for s in range(0, 16, 2)), "sixteenths": tuple((s, 1) for s in range(16)),
    "pop strum": ((0, 3), (3, 3), (6, 2), (10, 2), (12, 2), (14, 2)),
    "offbeats": ((2, 1), (6, 1), (10, 1), (14, 1)), "skank": ((4, 2), (12, 2)),
    "funk stabs": ((0, 1), (3, 1), (6, 1), (7, 1), (10, 1), (13, 1)),
    "charleston": ((0, 3), (6, 2)), "anticipated": ((0, 6), (6, 4), (10, 6)),
    "bossa": ((0, 2), (3, 2), (6, 2), (10, 2), (12, 2)), "dotted": ((0, 3), (3, 3), (6, 3), (9, 3), (12, 4)),
    "waltz oompah": ((4, 2), (8, 2)), "waltz whole": ((0, 12),), "waltz quarters": ((0, 4), (4, 4), (8, 4)),
    "waltz arp": tuple((s, 2) for s in range(0, 12, 2)),
}


@dataclasses.dataclass(frozen=True)
class Style:
    """One arrangement style.

    Attributes:
        meter: beats per bar. bpm: (low, high) tempo. swing: how late an off-beat eighth
        lands, as a fraction of a sixteenth. kick, snare, hat: drum steps; snare_note and
        hat_note: GM drum keys. bass: bass patterns to choose from (see `arrange._bass`).
        guitar, other: (rhythm, voicing) choices. melody: (low, high) chance that an eighth
        starts a sung note. half_time: the backbeat falls on beat 3.
    """

    name: str
    meter: int
    bpm: tuple
    swing: float
    kick: tuple
    snare: tuple
    hat: tuple
    bass: tuple
    guitar: tuple
    other: tuple
    melody: tuple = (0.35, 0.8)
    snare_note: int = 38
    hat_note: int = 42


STYLES = {s.name: s for s in (
    Style("rock", 4, (95, 160), 0.0, (0, 8, 10), (4, 12), tuple(range(0, 16, 2)),
          ("eighths", "roots", "octaves"),
          (("eighths", "power"), ("pop strum", "triad"), ("quarters", "power"), ("eighths", "arpeggio")),
          (("whole", "pad"), ("quarters", "triad"), ("eighths", "arpeggio"), ("half", "spread"))),
    Style("ballad", 4, (60, 84), 0.0, (0, 10), (4, 12), (0, 4, 8, 12),
          ("sustained", "roots"),
          (("eighths", "arpeggio"), ("half", "triad"), ("whole", "spread")),
          (("whole", "pad"), ("eighths", "arpeggio"), ("half", "spread"), ("lead", "lead")),
          melody=(0.25, 0.55)),
    Style("funk", 4, (88, 118), 0.0, (0, 3, 6, 10), (4, 12, 15), tuple(range(16)),
          ("syncopated", "octaves"),
          (("sixteenths", "single"), ("funk stabs", "seventh"), ("offbeats", "seventh")),
          (("funk stabs", "seventh"), ("whole", "pad"), ("lead", "lead"), ("anticipated", "triad")),
          melody=(0.45, 0.9)),
    Style("swing", 4, (110, 180), 0.6, (0,), (14,), (0, 4, 6, 8, 12, 14),
          ("walking",),
          (("quarters", "seventh"), ("charleston", "seventh")),
          (("charleston", "seventh"), ("lead", "lead"), ("half", "spread")),
          hat_note=51),
    Style("electronic", 4, (118, 140), 0.0, (0, 4, 8, 12), (4, 12), (2, 6, 10, 14),
          ("eighths", "offbeat", "sustained"),
          (("sixteenths", "arpeggio"), ("offbeats", "triad")),
          (("sixteenths", "arpeggio"), ("whole", "pad"), ("anticipated", "spread"), ("lead", "lead")),
          snare_note=39, hat_note=46),
    Style("waltz", 3, (84, 180), 0.0, (0,), (4, 8), (0, 4, 8),
          ("roots", "waltz"),
          (("waltz oompah", "triad"), ("waltz arp", "arpeggio")),
          (("waltz whole", "pad"), ("waltz arp", "arpeggio"), ("waltz quarters", "spread"), ("lead", "lead"))),
    Style("halftime", 4, (130, 180), 0.0, (0, 3, 10), (8,), tuple(range(0, 16, 2)),
          ("roots", "sustained", "eighths"),
          (("half", "power"), ("whole", "spread"), ("dotted", "triad")),
          (("whole", "pad"), ("dotted", "arpeggio"), ("lead", "lead"))),
    # held out: only in the out-of-distribution test split
    Style("reggae", 4, (64, 92), 0.3, (8,), (8,), tuple(range(0, 16, 2)),
          ("syncopated", "roots"),
          (("skank", "triad"), ("offbeats", "triad")),
          (("skank", "seventh"), ("whole", "pad"), ("lead", "lead")),
          snare_note=37),
    Style("bossa", 4, (110, 145), 0.0, (0, 6, 8, 14), (0, 6, 12), tuple(range(0, 16, 2)),
          ("bossa",),
          (("bossa", "seventh"), ("dotted", "seventh")),
          (("whole", "pad"), ("lead", "lead"), ("bossa", "spread")),
          snare_note=37, melody=(0.3, 0.7)),
)}
HELD_OUT = ("reggae", "bossa")
TRAINING = tuple(name for name in STYLES if name not in HELD_OUT)
