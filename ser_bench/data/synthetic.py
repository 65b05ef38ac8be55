"""The embedded default corpus: a synthetic RAVDESS, generated deterministically on first use.

A source-filter voice (glottal pulse train with jitter and breath noise, three formant resonators
per syllable) speaks two 7-syllable "statements". Emotion moves pitch level and range, speaking
rate, loudness, brightness and voice quality; speakers differ in pitch, vocal-tract length, rate,
loudness and, importantly, in how they act each emotion (an actor-specific offset per emotion).
That last part is what makes an utterance-level random split easier than an actor-disjoint one,
as on real acted speech.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import lfilter, sosfilt
from tqdm import tqdm

from ser_bench.data import ravdess
from ser_bench.data.manifest import EMOTIONS, Utterance
from ser_bench.errors import UserError

log = logging.getLogger(__name__)

GENERATOR_VERSION = 2
SR = 16_000
N_SYLLABLES = 7

# Per emotion, deviations from neutral in "cue units":
# pitch shift (semitones), pitch range (semitones), rate (log factor), loudness (dB),
# breathiness (0-1), brightness (tilt, -1 dark .. 1 bright), jitter (relative).
CUES = np.array([
    # shift range  rate   dB  breath bright jitter
    [0.0, 2.0, 0.00, 0.0, 0.10, 0.0, 0.010],  # neutral
    [-1.0, 1.5, -0.15, -3.0, 0.25, -0.4, 0.010],  # calm
    [3.0, 4.5, 0.10, 3.0, 0.10, 0.4, 0.015],  # happy
    [-2.0, 1.0, -0.25, -5.0, 0.30, -0.6, 0.020],  # sad
    [2.0, 4.0, 0.15, 7.0, 0.05, 0.9, 0.030],  # angry
    [4.5, 3.0, 0.22, 1.0, 0.25, 0.1, 0.045],  # fearful
    [-1.0, 3.0, -0.20, 2.0, 0.15, 0.2, 0.030],  # disgust
    [5.5, 6.5, 0.00, 4.0, 0.10, 0.5, 0.015],  # surprised
])
NEUTRAL = CUES[0]
# How far one actor's rendering of an emotion may stray from the shared profile, per cue.
IDIOSYNCRASY = 1.6 * np.array([1.5, 1.2, 0.08, 2.5, 0.08, 0.35, 0.008])
# Utterance-to-utterance variation within one actor and emotion.
UTTERANCE_NOISE = np.array([0.8, 0.6, 0.05, 1.5, 0.04, 0.15, 0.004])

# Vowel formant targets (F1, F2, F3 in Hz, adult male) for the syllables of the two statements.
VOWELS = {
    1: [(400, 2000, 2550), (700, 1200, 2500), (570, 840, 2410), (300, 2300, 3000), (660, 1700, 2400),
        (500, 1500, 2500), (450, 900, 2400)],
    2: [(570, 840, 2410), (700, 1200, 2500), (400, 2000, 2550), (300, 2300, 3000), (660, 1700, 2400),
        (500, 1500, 2500), (450, 900, 2400)],
}
# Accent pattern (relative pitch movement per syllable) of each statement.
ACCENTS = {1: [0.6, 0.1, 1.0, 0.2, 0.3, 0.0, 0.5], 2: [1.0, 0.1, 0.7, 0.2, 0.3, 0.0, 0.5]}


def _rng(*keys: int) -> np.random.Generator:
    return np.random.default_rng(list(keys))


def actor_profile(actor: int, seed: int) -> dict:
    """Speaker traits, drawn once per actor."""
    r = _rng(seed, actor, 1)
    male = actor % 2 == 1
    return {
        "f0": float(r.normal(115, 18) if male else r.normal(205, 28)),
        "vtl": float(r.normal(1.0, 0.05) if male else r.normal(1.16, 0.05)),
        "rate": float(r.normal(4.6, 0.5)),
        "gain_db": float(r.normal(0.0, 3.0)),
        "expressive": float(r.uniform(0.5, 1.2)),
        "idiosyncrasy": r.normal(0.0, 1.0, size=CUES.shape) * IDIOSYNCRASY,
    }


def utterance_cues(profile: dict, emotion: int, intensity: int, statement: int, repetition: int,
                   seed: int, actor: int) -> np.ndarray:
    """The cue vector one utterance is spoken with."""
    r = _rng(seed, actor, 2, emotion, intensity, statement, repetition)
    strength = profile["expressive"] * (1.0 if intensity == 1 else 1.6)
    deviation = (CUES[emotion - 1] - NEUTRAL) * strength + profile["idiosyncrasy"][emotion - 1]
    cues = NEUTRAL + deviation + r.normal(0.0, 1.0, size=NEUTRAL.shape) * UTTERANCE_NOISE
    cues[1] = max(cues[1], 0.3)
    cues[4] = float(np.clip(cues[4], 0.0, 0.8))
    cues[6] = max(cues[6], 0.002)
    return cues


def _resonator_sos(freq: float, bw: float) -> np.ndarray:
    """Second-order section of a unit-gain-at-DC-ish formant resonator."""
    rad = np.exp(-np.pi * bw / SR)
    theta = 2 * np.pi * freq / SR
    a1, a2 = -2 * rad * np.cos(theta), rad * rad
    return np.array([1 + a1 + a2, 0.0, 0.0, 1.0, a1, a2])


def synthesize(actor: int, emotion: int, intensity: int, statement: int, repetition: int,
               seed: int) -> np.ndarray:
    """One utterance as float32 at 16 kHz."""
    profile = actor_profile(actor, seed)
    shift, prange, rate, loud_db, breath, bright, jitter = utterance_cues(
        profile, emotion, intensity, statement, repetition, seed, actor)
    r = _rng(seed, actor, 3, emotion, intensity, statement, repetition)
    syl_rate = profile["rate"] * np.exp(rate)
    syl_len = np.maximum(r.normal(1.0, 0.18, N_SYLLABLES), 0.5) / syl_rate
    lead, tail = r.uniform(0.25, 0.55), r.uniform(0.25, 0.55)
    n = int((lead + syl_len.sum() + tail) * SR)
    out = np.zeros(n, dtype=np.float64)

    # Pitch contour: declination, per-syllable accents, emotion's range, jitter as a random walk.
    t = np.arange(n) / SR
    accents = np.array(ACCENTS[statement]) + r.normal(0, 0.15, N_SYLLABLES)
    bounds = lead + np.concatenate([[0.0], np.cumsum(syl_len)])
    centers = (bounds[:-1] + bounds[1:]) / 2
    contour = np.interp(t, centers, accents) - 0.4 * (t / t[-1])
    if emotion == 8:  # surprise: final rise
        contour += np.clip((t - bounds[-2]) / syl_len[-1], 0, 1) * 0.8
    # Jitter: a slow wander (about a semitone at most) plus fast, roughly per-period wobble.
    slow = np.cumsum(r.normal(0, 1, n))
    slow = (slow - slow.mean()) / (slow.std() + 1e-9)
    pole = np.exp(-2 * np.pi * 60 / SR)
    fast = lfilter([1 - pole], [1, -pole], r.normal(0, 1, n))
    fast /= fast.std() + 1e-9
    semitones = shift + prange * contour + jitter * (25 * slow + 40 * fast)
    f0 = profile["f0"] * 2 ** (semitones / 12)
    phase = np.cumsum(f0 / SR) % 1.0
    # Rosenberg-like glottal pulse: open phase 0..0.6, closed after; differentiated for radiation.
    oq = 0.6
    pulse = np.where(phase < oq, 0.5 * (1 - np.cos(np.pi * phase / oq)), 0.0)
    source = np.diff(pulse, prepend=0.0) * 8.0
    # Brightness: one-pole tilt filter; darker voices lose more high-frequency energy.
    pole = float(np.clip(0.55 - 0.35 * bright, 0.05, 0.95))
    source = lfilter([1 - pole], [1, -pole], source)
    noise = r.normal(0, 1, n) * 0.05
    source = (1 - breath) * source + breath * noise * 1.5

    gain = 10 ** ((loud_db + profile["gain_db"]) / 20) * 0.12
    for k in range(N_SYLLABLES):
        a, b = int(bounds[k] * SR), int(bounds[k + 1] * SR)
        seg_len = b - a
        onset = int(seg_len * 0.25)
        f1, f2, f3 = (np.array(VOWELS[statement][k]) / profile["vtl"]) * r.normal(1.0, 0.03, 3)
        sos = np.stack([_resonator_sos(f1, 80), _resonator_sos(f2, 110), _resonator_sos(f3, 160)])
        voiced = sosfilt(sos, source[a:b])
        envelope = np.sin(np.linspace(0, np.pi, seg_len)) ** 0.6
        # Consonant onset: a short burst of high-passed noise.
        burst = np.zeros(seg_len)
        burst[:onset] = np.diff(r.normal(0, 1, onset + 1)) * 0.04 * np.hanning(onset)
        out[a:b] = gain * (voiced * envelope / 4.0 + burst)
    out += r.normal(0, 1e-3, n)  # room noise floor
    return np.clip(out, -0.99, 0.99).astype(np.float32)


def _utterances(n_actors: int, intensities, statements: int, repetitions: int):
    for actor in range(1, n_actors + 1):
        for emotion in range(1, len(EMOTIONS) + 1):
            for intensity in intensities:
                if emotion == 1 and intensity == 2:
                    continue  # like RAVDESS, neutral has no strong intensity
                for statement in range(1, statements + 1):
                    for repetition in range(1, repetitions + 1):
                        yield ravdess.RavdessName(3, 1, emotion, intensity, statement, repetition, actor)


def generate(root: Path, seed: int, n_actors: int, intensities, statements: int, repetitions: int) -> None:
    """Write the corpus into `root` in the RAVDESS layout (16 kHz PCM-16 WAV)."""
    names = list(_utterances(n_actors, intensities, statements, repetitions))
    for name in tqdm(names, desc="synthetic corpus", unit="clip", mininterval=1.0):
        folder = root / f"Actor_{name.actor:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        wave = synthesize(name.actor, name.emotion, name.intensity, name.statement, name.repetition, seed)
        sf.write(str(folder / f"{name.stem()}.wav"), wave, SR, subtype="PCM_16")


def load(cache_dir: str | Path, seed: int = 0, n_actors: int = 24, intensities=(1, 2), statements: int = 2,
         repetitions: int = 2, corpus: str = "synthetic") -> list[Utterance]:
    """Manifest of the synthetic corpus, generating it into `cache_dir` on first use."""
    if not 1 <= n_actors <= 24 or not 1 <= statements <= 2 or not 1 <= repetitions <= 2 \
            or not set(intensities) <= {1, 2} or not intensities:
        raise UserError("synthetic corpus: n_actors 1-24, statements 1-2, repetitions 1-2, intensities from [1, 2]")
    settings = {"version": GENERATOR_VERSION, "seed": seed, "n_actors": n_actors,
                "intensities": sorted(intensities), "statements": statements, "repetitions": repetitions}
    key = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    root = Path(cache_dir).expanduser() / "synthetic" / key
    if not (root / "settings.json").exists():
        root.parent.mkdir(parents=True, exist_ok=True)
        log.info("generating synthetic corpus %s into %s", settings, root)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=root.parent))
        try:
            generate(tmp, seed, n_actors, sorted(intensities), statements, repetitions)
            (tmp / "settings.json").write_text(json.dumps(settings, indent=1))
            try:
                os.rename(tmp, root)  # atomic: a parallel job that got there first wins
            except OSError:
                if not (root / "settings.json").exists():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return ravdess.scan(root, corpus=corpus)
