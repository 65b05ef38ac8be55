"""Corpus adapters (TESS, EmoDB, CREMA-D, SAVEE), EmoBox manifests, label sets and the cross-corpus split,
on small files the tests write with each corpus's naming (the synthetic voice speaks them)."""

from __future__ import annotations

import json
import shutil
from collections import Counter

import numpy as np
import pytest
import soundfile as sf

from ser_bench.data import corpora, emobox, labels, splits
from ser_bench.data.audio import read_audio
from ser_bench.errors import UserError

from .conftest import write_wav


def names_to_files(root, names, sample_rate=16_000):
    for i, name in enumerate(names):
        write_wav(root / name, actor=1 + i % 24, emotion=1 + i % 8, sample_rate=sample_rate, seconds=0.3)


def test_tess_reads_speaker_and_emotion_from_the_file_name_and_audio_by_content(tmp_path):
    root = tmp_path / "tess"
    names_to_files(root, ["OAF_angry/OAF_back_angry.wav", "YAF_pleasant_surprised/YAF_bath_ps.wav",
                          "OAF_Fear/OAF_dog_fear.wav", "yaf_neutral/YAF_germ_neutral.wav",
                          "OAF_neutral/OA_bite_neutral.wav"], sample_rate=24_414)
    # A file named .wav that holds FLAC: read by content, not by extension.
    flac = root / "YAF_sad" / "YAF_chair_sad.flac"
    write_wav(flac, sample_rate=24_414, seconds=0.3)
    sf.write(str(flac), sf.read(str(flac))[0], 24_414, format="FLAC")
    flac.rename(flac.with_suffix(".wav"))
    manifest = corpora.tess(root)
    got = {(u.actor, u.emotion, u.gender, u.utt_id) for u in manifest}
    assert got == {("OAF", "angry", "female", "OAF_back_angry"), ("YAF", "surprised", "female", "YAF_bath_ps"),
                   ("OAF", "fearful", "female", "OAF_dog_fear"), ("YAF", "neutral", "female", "YAF_germ_neutral"),
                   ("OAF", "neutral", "female", "OAF_bite_neutral"), ("YAF", "sad", "female", "YAF_chair_sad")}
    assert sf.info(str(flac.with_suffix(".wav"))).format == "FLAC"
    wave = read_audio(flac.with_suffix(".wav"))  # 24.4 kHz FLAC in a .wav name -> 16 kHz
    assert abs(len(wave) - 0.3 * 16_000) <= 2


@pytest.mark.parametrize("adapter, name, why", [
    ("tess", "OAF_back_bored.wav", "emotion 'bored'"),
    ("tess", "back_angry.wav", "not a tess name"),
    ("emodb", "04a01Fa.wav", "speaker 04"),
    ("emodb", "03a03Fa.wav", "text a03"),
    ("emodb", "03a01Xa.wav", "emotion X"),
    ("emodb", "03a01F.wav", "not a emodb name"),
    ("cremad", "1092_DFA_ANG_XX.wav", "actor 1092"),
    ("cremad", "1001_ABC_ANG_XX.wav", "sentence ABC"),
    ("cremad", "1001_DFA_SUR_XX.wav", "emotion SUR"),
    ("cremad", "1001_DFA_ANG_ZZ.wav", "level ZZ"),
    ("savee", "XX_a01.wav", "speaker 'XX'"),
    ("savee", "DC_q01.wav", "emotion 'q'"),
])
def test_bad_names_say_what_is_wrong(tmp_path, adapter, name, why):
    names_to_files(tmp_path, [name])
    with pytest.raises(UserError, match=why) as err:
        getattr(corpora, adapter)(tmp_path)
    assert name in str(err.value)


def test_emodb_fields_and_genders(tmp_path):
    names_to_files(tmp_path / "wav", ["03a01Fa.wav", "08b10Lc.wav", "16a07Wf.wav", "10b02Ab.wav"])
    got = [(u.actor, u.gender, u.emotion, u.statement, u.repetition) for u in corpora.emodb(tmp_path)]
    assert got == [(3, "male", "happy", 1, 1), (8, "female", "boredom", 10, 3), (10, "male", "fearful", 7, 2),
                   (16, "female", "angry", 5, 6)]


def test_cremad_reads_genders_from_the_demographics_table_when_present(tmp_path):
    names_to_files(tmp_path / "AudioWAV", ["1001_DFA_ANG_XX.wav", "1002_IEO_HAP_HI.wav", "1091_WSI_NEU_LO.wav"])
    no_table = corpora.cremad(tmp_path)
    assert [(u.actor, u.gender, u.emotion, u.intensity) for u in no_table] == [
        (1001, "unknown", "angry", 0), (1002, "unknown", "happy", 3), (1091, "unknown", "neutral", 1)]
    (tmp_path / "VideoDemographics.csv").write_text("ActorID,Age,Sex,Race,Ethnicity\n"
                                                    "1001,51,Male,Caucasian,Not Hispanic\n"
                                                    "1002,21,Female,Caucasian,Not Hispanic\n")
    assert [u.gender for u in corpora.cremad(tmp_path)] == ["male", "female", "unknown"]


def test_savee_reads_both_layouts(tmp_path):
    names_to_files(tmp_path, ["DC/a01.wav", "JE/sa15.wav", "JK_su03.wav", "KL_n30.wav"])
    got = [(u.actor, u.emotion, u.statement, u.utt_id) for u in corpora.savee(tmp_path)]
    assert got == [("DC", "angry", 1, "DC_a01"), ("JE", "sad", 15, "JE_sa15"), ("JK", "surprised", 3, "JK_su03"),
                   ("KL", "neutral", 30, "KL_n30")]
    names_to_files(tmp_path / "twice", ["DC/a01.wav", "DC_a01.wav"])
    with pytest.raises(UserError, match="same utterance twice"):
        corpora.savee(tmp_path / "twice")


def test_label_sets_fold_calm_and_drop_what_has_no_place(tiny_manifest, tmp_path):
    names_to_files(tmp_path, ["03a01Fa.wav", "03a01La.wav", "08a01Lb.wav", "09a01Wa.wav"])
    emodb = corpora.emodb(tmp_path)
    kept, classes, dropped = labels.apply(emodb, "ekman7")
    assert classes == ["neutral", "happy", "sad", "angry", "fearful", "disgust", "surprised"]
    assert [u.emotion for u in kept] == ["happy", "angry"] and dropped == Counter({"emodb:boredom": 2})
    assert labels.apply(emodb, "native")[1] == ["happy", "angry", "boredom"]

    kept, classes, dropped = labels.apply(tiny_manifest, "four")
    assert classes == ["neutral", "happy", "sad", "angry"]
    assert Counter(u.emotion for u in kept) == Counter(neutral=48, happy=24, sad=24, angry=24)  # calm -> neutral
    assert dropped == Counter({"synthetic:fearful": 24, "synthetic:disgust": 24, "synthetic:surprised": 24})
    with pytest.raises(UserError, match="not a label set"):
        labels.apply(tiny_manifest, "ekman6")
    assert labels.canonical("Pleasant Surprise") == "surprised" and labels.canonical("Frustrated") == "frustrated"


def test_cross_split_tests_every_speaker_of_the_other_corpus(tiny_manifest, tmp_path):
    names_to_files(tmp_path, ["DC/a01.wav", "DC/h01.wav", "JE/a01.wav", "JE/n01.wav"])
    both = tiny_manifest + corpora.savee(tmp_path)
    split = splits.cross(both, test_corpus="savee", n_val_actors=2)
    split.name_corpora(both)
    assert split.corpus == "synthetic→savee" and split.test_actors == ["savee:DC", "savee:JE"]
    assert {both[r].corpus for r in split.test} == {"savee"} and len(split.test) == 4
    assert {both[r].corpus for r in np.concatenate([split.train, split.val])} == {"synthetic"}
    assert len(split.val_actors) == 2 and not set(split.val_actors) & set(split.train_actors)
    with pytest.raises(UserError, match="needs the corpus to test on"):
        splits.cross(both, test_corpus=None)
    with pytest.raises(UserError, match="nothing to train on"):
        splits.cross(corpora.savee(tmp_path), test_corpus="savee")


def emobox_metadata(tmp_path, manifest, folds, name="ravdess", with_key=lambda u: u.utt_id):
    """An EmoBox-format metadata folder for `manifest`, audio paths relative to the corpus root's parent."""
    folder = tmp_path / "emobox" / name
    audio = tmp_path / "audio"
    codes = {"neutral": "neu", "calm": "cal", "happy": "hap", "sad": "sad", "angry": "ang", "fearful": "fea",
             "disgust": "dis", "surprised": "sur"}

    def record(u):
        rel = f"downloads/{name}/Actor_{u.actor:02d}/{u.path.name}"
        (audio / rel).parent.mkdir(parents=True, exist_ok=True)
        if not (audio / rel).exists():
            shutil.copy(u.path, audio / rel)
        return json.dumps({"key": with_key(u), "dataset": name, "wav": rel, "type": "raw", "sample_rate": 16000,
                           "length": 1.0, "task": "category", "emo": codes[u.emotion], "channel": 1})

    folder.mkdir(parents=True)
    (folder / f"{name}.jsonl").write_text("\n".join(record(u) for u in manifest) + "\n")
    (folder / "label_map.json").write_text(json.dumps({c: w.title() for w, c in codes.items()}))
    for k, test_actors in enumerate(folds, 1):
        (folder / f"fold_{k}").mkdir()
        for part, rows in (("train", [u for u in manifest if u.actor not in test_actors]),
                           ("test", [u for u in manifest if u.actor in test_actors])):
            (folder / f"fold_{k}" / f"{name}_{part}_fold_{k}.jsonl").write_text(
                "\n".join(record(u) for u in rows) + "\n")
    return folder, audio


def test_emobox_manifest_and_its_folds(tiny_manifest, tmp_path):
    folder, audio = emobox_metadata(tmp_path, tiny_manifest, [(1, 2, 3, 4), (5, 6, 7, 8)])
    manifest = emobox.load(folder, audio)
    assert len(manifest) == len(tiny_manifest) and {u.corpus for u in manifest} == {"ravdess"}
    assert [(u.actor, u.gender, u.emotion) for u in manifest] == [(u.actor, u.gender, u.emotion) for u in tiny_manifest]
    split = splits.manifest(manifest, metadata=str(folder), fold=1, n_val_actors=2)
    assert split.test_actors == [5, 6, 7, 8] and split.n_folds == 2 and not split.leaky
    assert len(split.val_actors) == 2 and not set(split.val_actors) & set(split.train_actors)
    assert sorted(split.train_actors + split.val_actors) == [a for a in range(1, 25) if a not in (5, 6, 7, 8)]
    with pytest.raises(UserError, match="folds 0-1"):
        splits.manifest(manifest, metadata=str(folder), fold=2)
    with pytest.raises(UserError, match="lacks emo"):
        (folder / "fold_1" / "ravdess_test_fold_1.jsonl").write_text('{"key": "a", "wav": "b"}\n')
        splits.manifest(manifest, metadata=str(folder), fold=0)


def test_emobox_speakers_from_a_pattern_or_else_unknown_and_leaky(tiny_manifest, tmp_path):
    keyed = lambda u: f"corp-{u.actor:02d}-{u.utt_id}"  # noqa: E731 - a corpus without an adapter
    folder, audio = emobox_metadata(tmp_path, tiny_manifest, [(1, 2, 3, 4)], name="othercorpus", with_key=keyed)
    unknown = emobox.load(folder, audio)
    assert {u.actor for u in unknown} == {emobox.UNKNOWN}
    split = splits.manifest(unknown, metadata=str(folder), fold=0)
    assert split.leaky and "speakers unknown" in split.note and len(split.val) > 0
    known = emobox.load(folder, audio, speaker_pattern=r"^corp-(\d+)-")
    split = splits.manifest(known, metadata=str(folder), fold=0)
    assert not split.leaky and split.test_actors == [1, 2, 3, 4]
    with pytest.raises(UserError, match="is not a folder"):
        emobox.load(tmp_path / "nowhere", audio)
    with pytest.raises(UserError, match="not under data.root"):
        emobox.load(folder, tmp_path)


def test_data_mix_joins_corpora_named_on_the_command_line(make_cfg, tmp_path):
    from ser_bench.train import build_corpus

    names_to_files(tmp_path / "savee", ["DC/a01.wav", "JE/h02.wav"])
    names_to_files(tmp_path / "tess", ["OAF_angry/OAF_back_angry.wav"])
    cfg = make_cfg("data=mix", "+data@data.parts.savee=savee", f"data.parts.savee.root={tmp_path}/savee",
                   "+data@data.parts.tess=tess", f"data.parts.tess.root={tmp_path}/tess")
    manifest = build_corpus(cfg.data)
    assert sorted((u.corpus, u.actor) for u in manifest) == [("savee", "DC"), ("savee", "JE"), ("tess", "OAF")]
    with pytest.raises(UserError, match="data.parts.tess.root=PATH"):
        build_corpus(make_cfg("data=mix", "+data@data.parts.tess=tess").data)
    with pytest.raises(UserError, match="has no parts"):
        build_corpus(make_cfg("data=mix").data)
