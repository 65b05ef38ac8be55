"""The leaderboard report on a store the test fills through MLflow's client: ranking, honesty rules,
statistics, the three files, and one-line errors for bad input."""

from __future__ import annotations

import csv
import html
import io
import json
from urllib.parse import quote

import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from scipy import stats

from ser_bench.report.__main__ import main
from ser_bench.report.ensemble import Ensemble, by_validation
from ser_bench.tracking import ensure_experiment

EMOTIONS = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]
GOOD = [0.62, 0.55, 0.58, 0.60, 0.70, 0.52]
WEAK = [0.50, 0.46, 0.41, 0.47, 0.63, 0.38]


def add_run(client, exp, model, fold, ua, split="emobox", augment="none", status="FINISHED", tags=True,
            extra_tags=None, **params):
    run = client.create_run(exp, run_name=f"{model}-{fold}")
    rid = run.info.run_id
    if tags:
        for k, v in {"corpus": "ravdess", "split": split, "model": model, "augment": augment, "fold": str(fold),
                     "seed": "0", "leaky": str(split == "random").lower(),
                     "actors.test": "1 2 3 4", "actors.train": " ".join(map(str, range(5, 25))),
                     **(extra_tags or {})}.items():
            client.set_tag(rid, k, v)
    for k, v in {"test/ua": ua, "test/wa": ua + 0.01, "test/macro_f1": ua - 0.01, "best/gap_acc": 0.1,
                 "best/val_ua": ua + 0.02, "params": 1000}.items():
        client.log_metric(rid, k, v)
    for epoch in range(3):
        client.log_metric(rid, "train/acc", 0.3 + 0.2 * epoch, step=epoch)
        client.log_metric(rid, "val/acc", 0.3 + 0.1 * epoch, step=epoch)
    for k, v in {"split.fold": fold, "model.name": model, **params}.items():
        client.log_param(rid, k, v)
    matrix = np.eye(8, dtype=int) * 20 + 2
    text = ",".join(["true\\pred", *EMOTIONS]) + "\n" + "\n".join(
        ",".join([name, *map(str, row)]) for name, row in zip(EMOTIONS, matrix)) + "\n"
    client.log_text(rid, text, "confusion_matrix.csv")
    if status != "RUNNING":
        client.set_terminated(rid, status)
    return rid


def empty_store(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    exp = ensure_experiment(uri, "study")
    return uri, MlflowClient(uri), exp


def leaderboard(uri, tmp_path, *extra) -> str:
    """The report's markdown, written without logging a report run."""
    assert report(uri, tmp_path / "rep", "--no-log", *extra) == 0
    return (tmp_path / "rep" / "leaderboard.md").read_text()


@pytest.fixture
def store(tmp_path):
    uri, client, exp = empty_store(tmp_path)
    for fold in range(6):
        add_run(client, exp, "cnn2d", fold, GOOD[fold])
        add_run(client, exp, "cnn1d", fold, WEAK[fold])
    for fold in range(2):
        add_run(client, exp, "cnn1d", fold, 0.9, augment="all")  # better, but incomplete: never ranked
        add_run(client, exp, "cnn1d", fold, 0.70, split="random")  # leaky
    add_run(client, exp, "cnn1d", 2, 0.99, augment="all", status="FAILED")
    add_run(client, exp, "cnn1d", 3, 0.99, augment="all", status="RUNNING")
    return uri, client, exp


def test_leakage_pairs_the_random_split_with_the_same_settings(tmp_path):
    """The actor-disjoint table varies settings the random split does not: the pair is the setting whose
    values the random-split runs share (split options aside), not the first of its model."""
    uri, client, exp = empty_store(tmp_path)
    for fold in range(6):
        add_run(client, exp, "cnn1d", fold, WEAK[fold], **{"trainer.max_epochs": 12, "split.n_val_actors": 2})
        add_run(client, exp, "cnn1d", fold, GOOD[fold], **{"trainer.max_epochs": 30, "split.n_val_actors": 4})
        add_run(client, exp, "cnn1d", fold, 0.80, split="random", **{"trainer.max_epochs": 30})
    assert report(uri, tmp_path / "rep", "--no-log") == 0
    leaky = (tmp_path / "rep" / "leaderboard.md").read_text().split("random (LEAKY, not ranked)")[1]
    assert f"{0.80 - np.mean(GOOD):+.3f}" in leaky and f"{0.80 - np.mean(WEAK):+.3f}" not in leaky


def report(uri, out, *extra):
    return main(["--tracking-uri", uri, "--experiment", "study", "--out", str(out), *extra])


def test_leaderboard_ranks_only_complete_honest_settings(store, tmp_path, capsys):
    uri, client, exp = store
    assert report(uri, tmp_path / "rep") == 0
    md = (tmp_path / "rep" / "leaderboard.md").read_text()
    assert md.strip() in capsys.readouterr().out  # the Markdown is printed, too
    lines = md.splitlines()
    assert next(line for line in lines if line.startswith("| 1 |")).startswith("| 1 | cnn2d + none")
    assert next(line for line in lines if line.startswith("| 2 |")).startswith("| 2 | cnn1d + none")
    assert any(line.startswith("| incomplete | cnn1d + all | 2/6") for line in lines)
    assert "1 FAILED, 1 RUNNING" in md
    assert "EmoBox: frozen HuBERT-base + head (published, measured elsewhere)" in md
    assert "| base | chance (uniform guess) | – | – | 0.125 |" in md
    # The leaky split sits apart, with its inflation over the actor-disjoint result of the same model.
    leaky = md.split("random (LEAKY, not ranked)")[1]
    assert f"{0.70 - np.mean(WEAK):+.3f}" in leaky

    rows = {(r["model"], r["augment"], r["split"]): r
            for r in csv.DictReader(io.StringIO((tmp_path / "rep" / "leaderboard.csv").read_text()))}
    best = rows[("cnn2d", "none", "emobox")]
    assert float(best["test/ua_mean"]) == pytest.approx(np.mean(GOOD), abs=1e-4)
    assert float(best["test/ua_std"]) == pytest.approx(np.std(GOOD, ddof=1), abs=1e-4)
    assert float(best["best/val_ua_mean"]) == pytest.approx(np.mean(GOOD) + 0.02, abs=1e-4)  # the selection column
    assert "val UA (select on this)" in md
    lo, hi = stats.t.interval(0.95, 5, loc=np.mean(GOOD), scale=stats.sem(GOOD))
    assert (float(best["test/ua_ci_low"]), float(best["test/ua_ci_high"])) == pytest.approx((lo, hi), abs=1e-4)
    second = rows[("cnn1d", "none", "emobox")]
    assert float(second["p_ttest_vs_leader"]) == pytest.approx(stats.ttest_rel(GOOD, WEAK).pvalue, abs=1e-4)
    assert float(second["p_wilcoxon_vs_leader"]) == pytest.approx(stats.wilcoxon(GOOD, WEAK).pvalue, abs=1e-4)
    assert rows[("cnn1d", "all", "emobox")]["rank"] == "" and rows[("cnn1d", "none", "random")]["rank"] == ""

    page = (tmp_path / "rep" / "leaderboard.html").read_text()
    assert page.count("<img") == 4 and page.count("data:image/png;base64,") == 4
    # Each row links to its runs in MLflow's UI: the compare page of the setting's folds (the UI's own route).
    ids = sorted(r.info.run_id for r in client.search_runs([exp], filter_string="tags.model = 'cnn2d'"))
    url = ("http://127.0.0.1:5000/#/compare-runs?runs=" + quote(json.dumps(ids, separators=(",", ":")))
           + "&experiments=" + quote(json.dumps([exp], separators=(",", ":"))))
    assert f"<a href='{html.escape(url)}' title='its runs in MLflow'>cnn2d + none</a>" in page
    assert best["mlflow_url"] == url and sorted(best["run_ids"].split()) == ids
    assert not [r for r in client.search_runs([exp]) if r.data.tags.get("kind") == "report"]  # not among the runs
    reports = client.get_experiment_by_name(f"{client.get_experiment(exp).name}-leaderboards").experiment_id
    (logged,) = [r for r in client.search_runs([reports]) if r.data.tags.get("kind") == "report"]
    assert {a.path for a in client.list_artifacts(logged.info.run_id)} == {
        "leaderboard.md", "leaderboard.html", "leaderboard.csv"}


def test_a_swept_setting_makes_its_own_rows(tmp_path):
    uri, client, exp = empty_store(tmp_path)
    for fold in range(6):
        for lr in ("0.001", "0.003"):
            ua = WEAK[fold] + (0.05 + 0.01 * fold if lr == "0.003" else 0)
            add_run(client, exp, "cnn1d", fold, ua, **{"model.optim.lr": lr})
    md = leaderboard(uri, tmp_path)
    assert "| 1 | cnn1d + none (model.optim.lr=0.003)" in md and "| 2 | cnn1d + none (model.optim.lr=0.001)" in md


def test_val_ua_is_marked_where_rows_validated_on_different_actors(tmp_path):
    """Validation UA on 2 actors per fold and on 4 is not one scale: the rows say which actors they used."""
    uri, client, exp = empty_store(tmp_path)
    for fold in range(6):
        two, four = f"{fold + 5} {fold + 6}", f"{fold + 5} {fold + 6} {fold + 11} {fold + 12}"
        add_run(client, exp, "cnn1d", fold, WEAK[fold], extra_tags={"actors.val": two}, **{"split.n_val_actors": 2})
        add_run(client, exp, "cnn1d", fold, GOOD[fold], extra_tags={"actors.val": four}, **{"split.n_val_actors": 4})
        add_run(client, exp, "cnn2d", fold, GOOD[fold] - 0.01, extra_tags={"actors.val": two})
    md = leaderboard(uri, tmp_path)
    rows = {line.split(" | ")[1]: line for line in md.splitlines() if line.startswith("| ") and " + none" in line}
    marks = {label: line.split(" | ")[9].split("(")[-1] for label, line in rows.items()}
    assert marks == {"cnn1d + none (split.n_val_actors=4)": "V1)", "cnn2d + none": "V2)",
                     "cnn1d + none (split.n_val_actors=2)": "V2)"}
    assert "2 different sets of validation actors" in md

    same, client, exp = empty_store(tmp_path / "same")
    for fold in range(6):
        for model, ua in (("cnn1d", WEAK[fold]), ("cnn2d", GOOD[fold])):
            add_run(client, exp, model, fold, ua, extra_tags={"actors.val": f"{fold + 5} {fold + 6}"})
    md = leaderboard(same, tmp_path / "same")
    assert "(V1)" not in md and "sets of validation actors" not in md


def test_an_option_older_runs_lack_still_splits_rows(tmp_path):
    """Runs logged before `model.init_from` existed ran from scratch: they are not pooled with transfer runs."""
    uri, client, exp = empty_store(tmp_path)
    for fold in range(6):
        add_run(client, exp, "cnn1d", fold, WEAK[fold])  # no init_from param at all
        add_run(client, exp, "cnn1d", fold, GOOD[fold], **{"model.init_from": "abc"})
    md = leaderboard(uri, tmp_path)
    assert "| 1 | cnn1d + none (model.init_from=abc)" in md and "| 2 | cnn1d + none (model.init_from=None)" in md


def test_cross_corpus_runs_get_their_own_table_per_label_set(tmp_path):
    uri, client, exp = empty_store(tmp_path)
    cross = {"corpus": "synthetic→ravdess", "corpus.train": "synthetic", "corpus.test": "ravdess",
             "folds.total": "1"}
    add_run(client, exp, "cnn1d", 0, 0.31, split="cross", extra_tags={**cross, "labels": "ekman7"})
    add_run(client, exp, "cnn2d", 0, 0.35, split="cross", extra_tags={**cross, "labels": "ekman7"})
    add_run(client, exp, "cnn1d", 0, 0.40, split="cross", extra_tags={**cross, "labels": "four"})
    for fold in range(6):
        add_run(client, exp, "cnn1d", fold, WEAK[fold])
    md = leaderboard(uri, tmp_path)
    ekman = md.split("## synthetic→ravdess [labels=ekman7] · cross")[1].split("\n## ")[0]
    assert "| 1 | cnn2d + none | 1/1 |" in ekman and "| 2 | cnn1d + none | 1/1 |" in ekman  # one fold: complete
    four = md.split("## synthetic→ravdess [labels=four] · cross")[1].split("\n## ")[0]
    assert "| 1 | cnn1d + none | 1/1 |" in four and "cnn2d" not in four
    assert "## ravdess · emobox" in md


def _error(capsys, needle):
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and needle in errors[0] and "Traceback" not in err, err


def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "rep"
    assert report(f"sqlite:///{tmp_path}/none.db", out) == 2
    _error(capsys, "no MLflow store")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    exp = ensure_experiment(uri, "study")
    assert main(["--tracking-uri", uri, "--experiment", "nope", "--out", str(out)]) == 2
    _error(capsys, "no MLflow experiment named 'nope'")
    assert report(uri, out) == 2
    _error(capsys, "no runs at all")
    add_run(MlflowClient(uri), exp, "cnn1d", 0, 0.5, tags=False)
    assert report(uri, out) == 2
    _error(capsys, "1 missing tags or metrics")
    assert not out.exists()


def _ua(truth, probs) -> float:
    """UA by hand: the mean over classes of the share of that class's clips predicted right."""
    pred = probs.argmax(1)
    return float(np.mean([(pred[truth == c] == c).mean() for c in range(8)]))


def _predictions_csv(utts, truth, probs) -> str:
    header = ["utt_id", "actor", "true", "pred", *(f"p_{c}" for c in EMOTIONS)]
    rows = [[u, "1", EMOTIONS[t], EMOTIONS[int(p.argmax())], *map(str, p)] for u, t, p in zip(utts, truth, probs)]
    return "\n".join(",".join(r) for r in [header, *rows]) + "\n"


def test_seed_ensembles_average_probabilities_per_fold(tmp_path):
    """Three seeds of one setting: per fold, the probabilities are averaged clip by clip and scored, the
    validation clips' alike; a setting with one seed, or one whose member lacks predictions, gets no ensemble
    row; runs without validation predictions get an ensemble row without a validation UA."""
    uri, client, exp = empty_store(tmp_path)
    rng = np.random.default_rng(0)
    truth = np.repeat(np.arange(8), 3)  # 24 clips, 3 per class
    utts = [f"f{i:02d}" for i in range(len(truth))]
    expected, expected_val, three = [], [], {"folds.total": "3"}  # a protocol of 3 folds keeps the store small

    def draw():
        p = rng.dirichlet(np.ones(8), size=len(truth))
        p[np.arange(len(truth)), truth] += rng.uniform(0, 0.5, len(truth))  # better than chance, not perfect
        return p / p.sum(1, keepdims=True)

    for fold in range(3):
        probs, val_probs = [], []
        for seed in range(3):
            probs.append(draw())
            val_probs.append(draw())
            rid = add_run(client, exp, "cnn1d", fold, _ua(truth, probs[-1]), extra_tags={"seed": str(seed), **three})
            client.log_text(rid, _predictions_csv(utts, truth, probs[-1]), "predictions.csv")
            client.log_text(rid, _predictions_csv(utts, truth, val_probs[-1]), "val_predictions.csv")
        expected.append(_ua(truth, np.mean(probs, axis=0)))
        expected_val.append(_ua(truth, np.mean(val_probs, axis=0)))
        add_run(client, exp, "cnn2d", fold, GOOD[fold], extra_tags=three)  # one seed: no ensemble
        for seed in range(2):  # two seeds, but fold 1's second member logged no predictions
            rid = add_run(client, exp, "cnn1d", fold, WEAK[fold], augment="all",
                          extra_tags={"seed": str(seed), **three})
            if (fold, seed) != (1, 1):
                client.log_text(rid, _predictions_csv(utts, truth, probs[seed]), "predictions.csv")
        for seed in range(2):  # runs from before val_predictions.csv: an ensemble without a validation UA
            rid = add_run(client, exp, "cnn1d", fold, WEAK[fold], augment="noise",
                          extra_tags={"seed": str(seed), **three})
            client.log_text(rid, _predictions_csv(utts, truth, probs[seed]), "predictions.csv")

    md = leaderboard(uri, tmp_path)
    table = md.split("emobox: ensembles")[1]
    row = next(line for line in table.splitlines() if line.startswith("| cnn1d + none |"))
    mean, std = np.mean(expected), np.std(expected, ddof=1)
    assert row.startswith(f"| cnn1d + none | 3/3 | 0,1,2 | 3 | {mean:.3f} ± {std:.3f}")
    assert f" {np.mean(expected_val):.3f} |" in row  # the ensemble's own validation UA, the figure to choose on
    other = next(line for line in table.splitlines() if line.startswith("| cnn1d + noise"))
    assert other.split(" | ")[-2] == "–"  # no val_predictions.csv: no ensemble val UA
    assert "cnn2d" not in table and "cnn1d + all" not in table
    rows = {(r["model"], r["augment"]): r
            for r in csv.DictReader(io.StringIO((tmp_path / "rep" / "leaderboard.csv").read_text()))}
    assert float(rows[("cnn1d", "none")]["ensemble_test/ua_mean"]) == pytest.approx(np.mean(expected), abs=1e-4)
    assert rows[("cnn1d", "none")]["ensemble_seeds"] == "0 1 2"
    assert float(rows[("cnn1d", "none")]["ensemble_val/ua_mean"]) == pytest.approx(np.mean(expected_val), abs=1e-4)
    noise = rows[("cnn1d", "noise")]
    assert noise["ensemble_seeds"] == "0 1" and noise["ensemble_val/ua_mean"] == ""
    assert rows[("cnn2d", "none")]["ensemble_seeds"] == "" and rows[("cnn1d", "all")]["ensemble_seeds"] == ""


def test_settings_ensembles_combine_named_settings(tmp_path, capsys):
    """--ensemble "A | B": per fold, each named setting's seeds averaged, then the settings with equal weight; a
    part that names no setting or several is one error line, and nothing is written."""
    uri, client, exp = empty_store(tmp_path)
    rng = np.random.default_rng(1)
    truth = np.repeat(np.arange(8), 3)
    utts = [f"f{i:02d}" for i in range(len(truth))]
    three, expected = {"folds.total": "3"}, []
    for fold in range(3):
        runs = []
        for augment, seeds in (("none", 3), ("noise", 2)):
            for seed in range(seeds):
                p = rng.dirichlet(np.ones(8), size=len(truth))
                p[np.arange(len(truth)), truth] += rng.uniform(0, 0.4, len(truth))
                runs.append((augment, p / p.sum(1, keepdims=True)))
                rid = add_run(client, exp, "cnn1d", fold, _ua(truth, runs[-1][1]), augment=augment,
                              extra_tags={"seed": str(seed), **three})
                client.log_text(rid, _predictions_csv(utts, truth, runs[-1][1]), "predictions.csv")
        setting_means = [np.mean([p for a, p in runs if a == augment], axis=0) for augment in ("none", "noise")]
        expected.append(_ua(truth, np.mean(setting_means, axis=0)))
    md = leaderboard(uri, tmp_path, "--ensemble", "cnn1d + none | cnn1d + noise")
    row = next(line for line in md.splitlines() if line.startswith("| cnn1d + none & cnn1d + noise |"))
    assert row.startswith(f"| cnn1d + none & cnn1d + noise | 3/3 | 0,1,2 & 0,1 | 5 | {np.mean(expected):.3f} ± ")
    for spec, needle in (("cnn1d | cnn1d + noise", "'cnn1d' names 2 complete settings"),
                         ("cnn1d + none | cnn2d", "'cnn2d' names no complete setting"),
                         ("cnn1d + none", "name two or more different settings")):
        out = tmp_path / spec.replace(" ", "").replace("|", "_").replace("+", "")
        assert report(uri, out, "--ensemble", spec) == 2
        _error(capsys, needle)
        assert not out.exists()


def test_transductive_settings_are_listed_but_never_ranked(tmp_path):
    """Speaker normalisation uses the test actors' audio: however good, it is not the leader."""
    uri, client, exp = empty_store(tmp_path)
    speaker = {"transductive": "speaker normalisation (all speakers' audio, test actors' included, no labels)"}
    for fold in range(6):
        add_run(client, exp, "cnn1d", fold, WEAK[fold], **{"model.net.frontend.norm": "utterance"})
        add_run(client, exp, "cnn1d", fold, GOOD[fold] + 0.1, extra_tags=speaker,
                **{"model.net.frontend.norm": "speaker"})
    md = leaderboard(uri, tmp_path)
    lines = [line for line in md.splitlines() if line.startswith("| ") and "cnn1d + none" in line]
    assert lines[0].startswith("| 1 | cnn1d + none (model.net.frontend.norm=utterance) |")
    assert lines[1].startswith("| transductive | cnn1d + none (model.net.frontend.norm=speaker) [TRANSDUCTIVE")
    assert "TRANSDUCTIVE rows used the test actors' audio" in md
    with open(tmp_path / "rep" / "leaderboard.csv", newline="") as f:
        rows = {r["settings"]: r for r in csv.DictReader(f)}
    assert rows["model.net.frontend.norm=speaker"]["rank"] == "" and rows["model.net.frontend.norm=speaker"][
        "transductive"] == "True"


def test_a_settings_ensemble_gets_its_leakage_row_where_its_settings_ran_on_the_random_split(tmp_path):
    """--ensemble "A | B" with A and B also on split=random: the leaky table scores the same ensemble of the
    random-split runs (seeds, then settings averaged) beside its actor-disjoint figure; an ensemble one of whose
    settings has no random-split runs gets no such row."""
    uri, client, exp = empty_store(tmp_path)
    rng = np.random.default_rng(2)
    truth = np.repeat(np.arange(8), 3)
    utts = [f"f{i:02d}" for i in range(len(truth))]
    three = {"folds.total": "3"}
    honest, leaky = [], []
    for split, folds, strength, out in (("emobox", range(3), 0.3, honest), ("random", range(2), 0.8, leaky)):
        for fold in folds:
            per_model = []
            for model in ("cnn1d", "cnn2d", "resnet2d"):
                p = rng.dirichlet(np.ones(8), size=len(truth))
                p[np.arange(len(truth)), truth] += rng.uniform(0, strength, len(truth))
                p /= p.sum(1, keepdims=True)
                if split == "random" and model == "resnet2d":
                    continue  # resnet2d never ran on the random split
                rid = add_run(client, exp, model, fold, _ua(truth, p), split=split, extra_tags=three)
                client.log_text(rid, _predictions_csv(utts, truth, p), "predictions.csv")
                per_model.append(p)
            out.append(_ua(truth, np.mean(per_model[:2], axis=0)))  # cnn1d & cnn2d
    md = leaderboard(uri, tmp_path, "--ensemble", "cnn1d | cnn2d", "--ensemble", "cnn1d | resnet2d")
    table = md.split("random (LEAKY, not ranked)")[1]
    row = next(line for line in table.splitlines() if line.startswith("| ENSEMBLE"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[0] == "ENSEMBLE cnn1d + none & cnn2d + none (2 trainings per fold)" and cells[1] == "2/3"
    assert cells[2] == f"{np.mean(leaky):.3f} ± {np.std(leaky, ddof=1):.3f}"
    assert cells[5].startswith(f"{np.mean(honest):.3f} ± ") and "emobox, 3 folds" in cells[5]
    assert cells[6] == f"{np.mean(leaky) - np.mean(honest):+.3f}"
    assert "resnet2d" not in table


def test_ensembles_are_ordered_and_chosen_on_validation_never_test(tmp_path):
    """The ensemble table lists ensembles by their own validation UA (ties: fewer trainings first) and marks the
    first one chosen, even where another scores higher on test."""
    uri, client, exp = empty_store(tmp_path)
    rng = np.random.default_rng(2)
    truth = np.repeat(np.arange(8), 3)
    utts = [f"f{i:02d}" for i in range(len(truth))]
    three = {"folds.total": "3"}

    def draw(strength):
        p = rng.dirichlet(np.ones(8), size=len(truth))
        p[np.arange(len(truth)), truth] += strength
        return p / p.sum(1, keepdims=True)

    for fold in range(3):
        # "noise": sharp on validation, weak on test; "none": the reverse
        for augment, val_strength, test_strength in (("noise", 0.6, 0.02), ("none", 0.05, 0.6)):
            for seed in range(2):
                probs = draw(test_strength)
                rid = add_run(client, exp, "cnn1d", fold, _ua(truth, probs), augment=augment,
                              extra_tags={"seed": str(seed), **three})
                client.log_text(rid, _predictions_csv(utts, truth, probs), "predictions.csv")
                client.log_text(rid, _predictions_csv(utts, truth, draw(val_strength)), "val_predictions.csv")
    md = leaderboard(uri, tmp_path)
    rows = [line for line in md.split("emobox: ensembles")[1].splitlines() if line.startswith("| cnn1d")]
    assert [r.split(" | ")[0] for r in rows] == ["| cnn1d + noise", "| cnn1d + none"]
    test_ua = [float(r.split(" | ")[4].split(" ")[0]) for r in rows]
    assert test_ua[0] < test_ua[1]  # the chosen one is the worse on test
    assert rows[0].split(" | ")[-2].endswith("(chosen)") and "(chosen)" not in rows[1]


def test_a_validation_tie_goes_to_the_ensemble_with_fewer_trainings():
    def ensemble(val, seeds):
        return Ensemble(groups=[], seeds=seeds, members={0: 0.5, 1: 0.5}, val_ua={0: val, 1: val})
    big, small, best = ensemble(0.7, [["0", "1"], ["0"]]), ensemble(0.7, [["0"], ["0"]]), ensemble(0.71, [["0"]] * 4)
    assert [id(e) for e in by_validation([big, small, best])] == [id(best), id(small), id(big)]


def test_a_setting_copied_into_the_net_is_named_once():
    """model.net.pretrained comes from model.pretrained (${..pretrained}); the label says it once."""
    from ser_bench.report.stats import Group

    group = Group("ravdess", "emobox", "ge2e", "none", {"model.net.pretrained": "None", "model.pretrained": "None",
                                                        "model.net.dropout": "0.5"}, [], 6)
    assert group.label == "ge2e + none (model.pretrained=None model.net.dropout=0.5)"
    group.settings["model.net.pretrained"] = "other"  # set on its own: both are shown
    assert "model.net.pretrained=other" in group.label and "model.pretrained=None" in group.label


def test_a_single_run_links_to_its_own_page_and_a_server_is_its_own_ui():
    from ser_bench.report.collect import Record
    from ser_bench.report.links import runs_url, ui_base

    one = Record("abc", {}, {}, {}, 1.0, experiment_id="7")
    assert runs_url("http://h:5000", [one]) == "http://h:5000/#/experiments/7/runs/abc"
    assert ui_base("http://10.0.0.2:5000/") == "http://10.0.0.2:5000"
    assert ui_base("sqlite:///mlruns/mlflow.db") == "http://127.0.0.1:5000"
    assert ui_base("sqlite:///mlruns/mlflow.db", "http://ui:8080/") == "http://ui:8080"
