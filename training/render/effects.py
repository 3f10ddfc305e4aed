"""Production: a random effects chain per stem (pedalboard), panning and stereo width, and a mix EQ.

Each part gets the kind of processing it gets in a studio (drive on guitars, compression on
bass and drums, reverb and delay on voices and keys), with random settings. The mix bus gets
only linear filters, applied to every stem alike, so the stems still sum to the mixture.
"""

import numpy as np

LEVEL = 0.05  # RMS of a stem where it plays, before its random level
# each stem's random level (dB relative to LEVEL): a lead vocal sits in front of the band, as in
# produced songs; the instruments range widely against each other
LEVELS_DB = {"vocals": (-5.0, 3.0), "bass": (-12.0, 3.0), "drums": (-12.0, 3.0), "guitar": (-12.0, 3.0),
             "other": (-12.0, 3.0)}

# the chance that a part gets each effect
CHANCES = {
    "vocals": {"eq": 0.8, "compressor": 0.7, "distortion": 0.1, "chorus": 0.15, "delay": 0.35, "reverb": 0.8},
    "bass": {"eq": 0.7, "compressor": 0.7, "distortion": 0.2, "chorus": 0.1, "delay": 0.0, "reverb": 0.15},
    "drums": {"eq": 0.8, "compressor": 0.7, "distortion": 0.15, "chorus": 0.0, "delay": 0.0, "reverb": 0.5},
    "guitar": {"eq": 0.7, "compressor": 0.4, "distortion": 0.45, "chorus": 0.3, "delay": 0.3, "reverb": 0.6},
    "other": {"eq": 0.7, "compressor": 0.4, "distortion": 0.1, "chorus": 0.3, "delay": 0.3, "reverb": 0.6},
}


def _eq(rng):
    import pedalboard as pb

    return [pb.HighpassFilter(float(rng.uniform(20, 150))),
            pb.LowShelfFilter(float(rng.uniform(80, 300)), float(rng.uniform(-6, 6))),
            pb.PeakFilter(float(np.exp(rng.uniform(np.log(300), np.log(5000)))), float(rng.uniform(-8, 8)),
                          float(rng.uniform(0.5, 2.5))),
            pb.HighShelfFilter(float(rng.uniform(3000, 10000)), float(rng.uniform(-8, 5)))]


def chain(rng, part):
    """A pedalboard.Pedalboard for one part, drawn at random from `CHANCES[part]`."""
    import pedalboard as pb

    chance = CHANCES[part]
    plugins = []
    if rng.random() < chance["eq"]:
        plugins += _eq(rng)
    if rng.random() < chance["distortion"]:
        plugins.append(pb.Distortion(float(rng.uniform(5, 30))))
        plugins.append(pb.LowpassFilter(float(rng.uniform(4000, 9000))))  # a cabinet's roll-off
    if rng.random() < chance["compressor"]:
        plugins.append(pb.Compressor(float(rng.uniform(-30, -10)), float(rng.uniform(2, 8)),
                                     float(rng.uniform(1, 30)), float(rng.uniform(50, 300))))
    if rng.random() < chance["chorus"]:
        plugins.append(pb.Chorus(float(rng.uniform(0.3, 2)), float(rng.uniform(0.1, 0.4)),
                                 mix=float(rng.uniform(0.2, 0.5))))
    if rng.random() < chance["delay"]:
        plugins.append(pb.Delay(float(rng.uniform(0.1, 0.5)), float(rng.uniform(0.1, 0.45)),
                                float(rng.uniform(0.1, 0.3))))
    if rng.random() < chance["reverb"]:
        plugins.append(pb.Reverb(float(rng.uniform(0.1, 0.9)), float(rng.uniform(0.2, 0.8)),
                                 float(rng.uniform(0.05, 0.35)), 1.0, float(rng.uniform(0.5, 1.0))))
    return pb.Pedalboard(plugins)


def place(stereo, pan, width):
    """Pan (-1 left .. 1 right, constant power) and scale the side signal by `width`: `(samples, 2)` in and out."""
    mid, side = (stereo[:, 0] + stereo[:, 1]) / 2, (stereo[:, 0] - stereo[:, 1]) / 2 * width
    angle = (pan + 1) * np.pi / 4
    return np.stack([(mid + side) * np.cos(angle), (mid - side) * np.sin(angle)], axis=1) * np.sqrt(2)


def produce(rng, part, stereo, rate):
    """One part through its random effects, placement and level: `(samples, 2)` float32 in and out."""
    board = chain(rng, part)
    out = board(np.ascontiguousarray(stereo.T, dtype=np.float32), rate, reset=True).T if len(board) else stereo
    centred = part in ("vocals", "bass", "drums") and rng.random() < 0.8
    pan = rng.uniform(-0.15, 0.15) if centred else rng.uniform(-0.8, 0.8)
    width = rng.uniform(0.0, 1.5) if part != "bass" else rng.uniform(0.0, 0.5)
    out = place(out, pan, width)
    playing = np.abs(out).max(axis=1) > 1e-3
    loudness = np.sqrt(np.mean(out[playing] ** 2)) if playing.any() else 1.0
    # a level relative to the other stems: sounding parts are set to one loudness, then moved within LEVELS_DB
    return (out * (LEVEL / max(loudness, 1e-6)) * 10 ** (rng.uniform(*LEVELS_DB[part]) / 20)).astype(np.float32)


def master(rng, stems, rate):
    """The same random mix-bus EQ on every stem (linear, so the stems still sum to the mixture)."""
    import pedalboard as pb

    board = pb.Pedalboard(_eq(rng)[1:] if rng.random() < 0.7 else [])
    if not len(board):
        return stems
    return {k: board(np.ascontiguousarray(v.T), rate, reset=True).T.astype(np.float32) for k, v in stems.items()}
