"""Label sets: each corpus keeps its own emotions (`labels=native`), or maps to a shared set for
cross-corpus work (`labels=ekman7`, `labels=four`).

Adapters name emotions with the shared words below (EmoDB's W is `angry`, TESS's ps `surprised`).
A shared set folds only what it says it folds (calm into neutral); a clip whose emotion has no place
in the set is dropped and counted, never relabelled.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import replace

from ser_bench.data.manifest import Utterance
from ser_bench.errors import UserError

log = logging.getLogger(__name__)

# Order of the shared words; a native label set follows it (RAVDESS's 8 come first, in code order).
ORDER = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised", "boredom")

SETS: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    # name: (classes, folds)
    "ekman7": (("neutral", "happy", "sad", "angry", "fearful", "disgust", "surprised"), {"calm": "neutral"}),
    "four": (("neutral", "happy", "sad", "angry"), {"calm": "neutral"}),
}

# Other spellings corpora and manifests use for the shared words.
ALIASES = {"neu": "neutral", "cal": "calm", "hap": "happy", "happiness": "happy", "joy": "happy", "sadness": "sad",
           "ang": "angry", "anger": "angry", "fea": "fearful", "fear": "fearful", "dis": "disgust",
           "disgusted": "disgust", "sur": "surprised", "surprise": "surprised", "pleasant surprise": "surprised",
           "pleasant_surprise": "surprised", "ps": "surprised", "bor": "boredom", "bored": "boredom"}


def canonical(name: str) -> str:
    """The shared word for an emotion name (case and common spellings aside); unknown names kept, lowercased."""
    key = name.strip().lower()
    return ALIASES.get(key, key)


def native_classes(manifest: list[Utterance]) -> list[str]:
    """The emotions the corpus holds, shared words in ORDER first, any others after, alphabetically."""
    present = {u.emotion for u in manifest}
    return [e for e in ORDER if e in present] + sorted(present - set(ORDER))


def apply(manifest: list[Utterance], labels: str) -> tuple[list[Utterance], list[str], Counter]:
    """(kept utterances with mapped emotions, class names, dropped emotion -> count)."""
    if labels == "native":
        return manifest, native_classes(manifest), Counter()
    if labels not in SETS:
        raise UserError(f"labels={labels} is not a label set; use native, {', '.join(SETS)}")
    classes, folds = SETS[labels]
    kept, dropped = [], Counter()
    for u in manifest:
        emotion = folds.get(u.emotion, u.emotion)
        if emotion in classes:
            kept.append(u if emotion == u.emotion else replace(u, emotion=emotion))
        else:
            dropped[f"{u.corpus}:{u.emotion}"] += 1
    if dropped:
        log.info("labels=%s: dropped %d clips whose emotion has no place in the set (%s)", labels,
                 sum(dropped.values()), ", ".join(f"{k} {n}" for k, n in sorted(dropped.items())))
    folded = Counter(f"{u.emotion}->{folds[u.emotion]}" for u in manifest if u.emotion in folds)
    if folded:
        log.info("labels=%s: folded %s", labels, ", ".join(f"{k} ({n})" for k, n in sorted(folded.items())))
    if not kept:
        raise UserError(f"labels={labels}: no clip of this corpus has an emotion in {', '.join(classes)}")
    return kept, list(classes), dropped

