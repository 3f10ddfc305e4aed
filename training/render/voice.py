"""The vocal stem: a voice-like source singing a melody, not a General MIDI patch.

Two singers, chosen per phrase:

- `formant`: a source-filter voice. A harmonic glottal source whose pitch has onset scoops,
  glides between legato notes, vibrato that sets in after the attack and slow jitter; the
  harmonics are weighted by five formant resonances that move from vowel to vowel; breath
  noise, consonant bursts at syllable onsets and audible breaths between phrases.
- `espeak`: sung syllables from the `espeak-ng` speech synthesizer (Debian: `espeak-ng`), each
  stretched to its note and pitch-shifted to its pitch with a vibrato curve (pedalboard's
  formant-preserving `time_stretch`), so consonants and vowel colour are a real synthesizer's.

Notes are `(start_seconds, end_seconds, midi_note, velocity)`; phrases are the runs of notes
separated by more than `PHRASE_GAP` seconds.
"""

import os
import shutil
import subprocess
import tempfile

import numpy as np
import soundfile as sf

from umx_core.errors import UMXError

PHRASE_GAP = 0.3
# F1..F3 (Hz) of a lower adult voice; the fourth and fifth formants make the singer's ring
VOWELS = {"a": (730, 1090, 2440), "e": (530, 1840, 2480), "i": (300, 2250, 3000), "o": (570, 840, 2410),
          "u": (320, 870, 2240), "ae": (660, 1720, 2410), "er": (490, 1350, 1690), "uh": (520, 1190, 2390)}
SYLLABLES = ("la", "na", "oh", "yeah", "love", "day", "high", "go", "my", "you", "see", "night", "shine",
             "down", "away", "baby", "hold", "ooh", "be", "so")
ESPEAK_VOICES = ("en-us+f2", "en-us+f3", "en-us+f4", "en-us+m1", "en-us+m3", "en-gb+f1", "en-gb+m2", "en-us+klatt2")


def phrases(notes):
    """Notes grouped into phrases: lists of notes with gaps under `PHRASE_GAP` seconds."""
    out = []
    for note in sorted(notes):
        if out and note[0] - out[-1][-1][1] < PHRASE_GAP:
            out[-1].append(note)
        else:
            out.append([note])
    return out


def pitch_curve(rng, phrase, rate, vibrato=(4.5, 6.5), depth=(0.15, 0.6)):
    """Semitones (MIDI pitch, fractional) for every sample of a phrase, and each note's span.

    Onsets scoop up from below, legato notes glide into each other, vibrato fades in after
    the attack, and a slow random drift keeps the pitch from ever being quite still.
    """
    start = phrase[0][0]
    n = int(round((phrase[-1][1] - start) * rate))
    curve = np.zeros(n)
    spans = []
    previous = None
    for s, e, note, _ in phrase:
        a, b = int((s - start) * rate), min(n, int((e - start) * rate))
        t = np.arange(b - a) / rate
        glide = rng.uniform(0.04, 0.12)
        origin = previous if previous is not None else note - rng.uniform(0.5, 2.0)
        seg = note + (origin - note) * np.exp(-t / (glide / 3))
        onset = rng.uniform(0.12, 0.35)
        ramp = np.clip((t - onset) / 0.25, 0, 1)
        seg += ramp * rng.uniform(*depth) * np.sin(2 * np.pi * rng.uniform(*vibrato) * t + rng.uniform(0, 6.3))
        curve[a:b] = seg
        if a > 0 and spans and a > spans[-1][1]:  # a gap inside the phrase: hold the last pitch
            curve[spans[-1][1]:a] = curve[spans[-1][1] - 1]
        spans.append((a, b))
        previous = note
    drift = np.cumsum(rng.standard_normal(n // 256 + 2)) * 0.02
    return curve + np.interp(np.arange(n), np.arange(drift.size) * 256, drift), spans


def _envelope(n, spans, rate, rng):
    """Amplitude per sample: attacks, releases, and legato notes that do not dip."""
    env = np.zeros(n)
    for a, b in spans:
        attack, release = int(rate * rng.uniform(0.015, 0.06)), int(rate * rng.uniform(0.04, 0.12))
        shape = np.ones(b - a)
        shape[: min(attack, b - a)] = np.linspace(0, 1, min(attack, b - a))
        tail = min(release, b - a)
        shape[b - a - tail:] *= np.linspace(1, 0, tail)
        env[a:b] = np.maximum(env[a:b], shape)
    return env


def _noise(rng, n, rate, low, high):
    from scipy.signal import butter, sosfilt

    sos = butter(4, [low, min(high, rate / 2 - 100)], btype="band", fs=rate, output="sos")
    return sosfilt(sos, rng.standard_normal(n))


def formant_phrase(rng, phrase, rate, voice):
    """One phrase from the source-filter singer, mono float64."""
    curve, spans = pitch_curve(rng, phrase, rate)
    n = curve.size
    f0 = 440.0 * 2 ** ((curve - 69) / 12)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    hop = 128
    frames = np.arange(0, n, hop)
    scale = (1.0 if voice == "low" else 1.17) * rng.uniform(0.93, 1.07)
    formants = np.zeros((frames.size, 5))
    names = list(VOWELS)
    for a, b in spans:  # a vowel per syllable, sometimes gliding into a second one (a diphthong)
        first, second = (np.array(VOWELS[names[int(rng.integers(len(names)))]]) for _ in range(2))
        lo, hi = a // hop, max(a // hop + 1, b // hop)
        mix = np.clip(np.linspace(-1, 2 if rng.random() < 0.3 else -1, hi - lo), 0, 1)[:, None]
        formants[lo:hi, :3] = first * (1 - mix) + second * mix
    for k in range(1, len(formants)):  # carry a vowel through gaps, move between vowels in ~40 ms
        formants[k, :3] = formants[k, :3] if formants[k, 0] else formants[k - 1, :3]
    formants[:, :3] = _smooth(formants[:, :3], int(0.04 * rate / hop))
    formants[:, 3], formants[:, 4] = 3300, 3900
    formants *= scale
    widths = np.array([90, 110, 160, 250, 300]) * scale
    gains = np.array([1.0, 0.7, 0.35, 0.2, 0.15]) * np.r_[1, 1, 1, rng.uniform(0.3, 1.5, 2)]
    tilt = rng.uniform(0.6, 1.2)
    f0_frames = f0[frames]
    out = np.zeros(n)
    for k in range(1, 64):
        freq = k * f0_frames
        if freq.min() > 9000:
            break
        amp = (k ** -tilt) * (freq < 9000) * (gains / (1 + ((freq[:, None] - formants) / widths) ** 2)).sum(axis=1)
        out += np.interp(np.arange(n), frames, amp) * np.sin(k * phase)
    shimmer = 1 + 0.05 * np.interp(np.arange(n), frames, _smooth(rng.standard_normal((frames.size, 1)), 8)[:, 0])
    env = _envelope(n, spans, rate, rng)
    out = out / max(1e-9, np.abs(out).max()) * env * shimmer
    out += rng.uniform(0.02, 0.12) * env * _noise(rng, n, rate, 1500, 9000) / 0.3  # breathiness
    for a, _ in spans:  # consonants: a noise burst before some syllables
        if rng.random() < 0.5:
            length = int(rate * rng.uniform(0.03, 0.09))
            low = rng.choice([2500, 4000, 1000])
            burst = _noise(rng, length, rate, low, low * 2.5) * np.hanning(length) * rng.uniform(0.5, 1.5)
            c = max(0, a - length // 2)
            out[c:c + length] += burst[: n - c]
    return out


def _smooth(x, width):
    """Moving average along the first axis, same length."""
    if width < 2:
        return x
    kernel = np.ones(width) / width
    pad = np.pad(x, [(width // 2, width - 1 - width // 2), (0, 0)], mode="edge")
    return np.stack([np.convolve(pad[:, j], kernel, mode="valid") for j in range(x.shape[1])], axis=1)


def _espeak(text, voice, pitch, speed, rate, tmp):
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise UMXError("the espeak-ng program is not installed (Debian: apt-get install espeak-ng)")
    path = os.path.join(tmp, "syllable.wav")
    result = subprocess.run([exe, "-v", voice, "-p", str(pitch), "-s", str(speed), "-w", path, text],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise UMXError(f"espeak-ng failed on {text!r}: {result.stderr.strip()[-300:]}")
    audio, source_rate = sf.read(path, dtype="float32")
    from scipy.signal import resample_poly

    audio = resample_poly(audio, rate, source_rate).astype(np.float32)
    loud = np.flatnonzero(np.abs(audio) > 0.02 * np.abs(audio).max())
    return audio[loud[0]: loud[-1] + 1] if loud.size else audio


def _f0(audio, rate):
    """Median pitch (Hz) of the loudest frames, by autocorrelation."""
    size, estimates = int(0.04 * rate), []
    frames = [audio[i:i + size] for i in range(0, len(audio) - size, size // 2)]
    frames = sorted(frames, key=lambda f: -np.abs(f).sum())[: max(1, len(frames) // 2)]
    lo, hi = int(rate / 400), int(rate / 70)
    for frame in frames:
        ac = np.correlate(frame, frame, mode="full")[size - 1:]
        estimates.append(rate / (lo + int(np.argmax(ac[lo:hi]))))
    return float(np.median(estimates))


def espeak_phrase(rng, phrase, rate, voice, cache):
    """One phrase of sung espeak-ng syllables, mono float64; `cache` keeps syllables per song."""
    import pedalboard

    curve, spans = pitch_curve(rng, phrase, rate, depth=(0.1, 0.4))
    out = np.zeros(curve.size)
    for (a, b) in spans:
        word = str(rng.choice(SYLLABLES))
        if word not in cache:
            with tempfile.TemporaryDirectory(prefix="umx-voice-") as tmp:
                audio = _espeak(word, voice, int(rng.integers(30, 70)), int(rng.integers(110, 170)), rate, tmp)
            cache[word] = (audio, 12 * np.log2(_f0(audio, rate) / 440) + 69)
        audio, source = cache[word]
        length = b - a
        factor = len(audio) / max(length, 1)  # > 1 shortens
        shift = curve[a:b][:: max(1, length // 64)] - source
        sung = pedalboard.time_stretch(audio[None], rate, stretch_factor=factor,
                                       pitch_shift_in_semitones=float(np.median(shift)))[0]
        fade = min(len(sung), int(0.02 * rate))
        sung[-fade:] *= np.linspace(1, 0, fade)
        out[a:a + min(length, len(sung))] += sung[:length]
    return out


def sing(rng, notes, seconds, rate, voice="high", espeak_share=0.5):
    """The vocal stem, mono float32 `(samples,)`: each phrase by one of the two singers, breaths between."""
    n = int(round(seconds * rate))
    out, cache = np.zeros(n), {}
    espeak_voice = str(rng.choice(ESPEAK_VOICES))
    for phrase in phrases([note for note in notes if note[0] < seconds]):
        start = int(phrase[0][0] * rate)
        if rng.random() < espeak_share:
            audio = espeak_phrase(rng, phrase, rate, espeak_voice, cache)
        else:
            audio = formant_phrase(rng, phrase, rate, voice)
        audio = audio / max(1e-9, np.abs(audio).max()) * rng.uniform(0.5, 1.0)
        out[start:start + audio.size] += audio[: n - start]
        if start > int(0.3 * rate) and rng.random() < 0.6:  # an audible breath before the phrase
            length = int(rate * rng.uniform(0.15, 0.3))
            b = start - length - int(0.03 * rate)
            out[b:b + length] += _noise(rng, length, rate, 600, 4000) * np.hanning(length) * rng.uniform(0.1, 0.3)
    return out.astype(np.float32)
