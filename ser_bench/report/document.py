"""The leaderboard as tables and figures: one ranked table per corpus and actor-disjoint protocol,
the leaky random split apart with its inflation, baselines and published references."""

from __future__ import annotations

import functools

import numpy as np
from tqdm import tqdm

from ser_bench.report import calibration, figures, links, render
from ser_bench.report.collect import Collection, artifact, confusion, curves
from ser_bench.report.ensemble import (
    Ensemble,
    by_validation,
    leaky_twins,
    on_own_validation,
    seed_ensembles,
    settings_ensembles,
)
from ser_bench.report.render import Table, num, pm
from ser_bench.report.stats import REFERENCES, Group, baselines, build_groups, leakage, sections, validation_marks

HEADERS = ["rank", "model + augmentation", "folds", "seeds", "test UA", "95% CI", "WA", "macro-F1",
           "gap (best epoch)", "val UA (select on this)", "p vs #1 (t / Wilcoxon)", "min/run", "params"]
MAX_CURVES = 10


def document(client, collection: Collection, uri: str, when: str,
             ensemble_specs: list[str] = (), ui: str | None = None) -> tuple[str, str, str]:
    """The Markdown, HTML and CSV leaderboards; `ensemble_specs`: settings ensembles to score ("A | B"); `ui`: the
    MLflow UI's address, where each row's label links to its runs (default: from `uri`, ser_bench.report.links)."""
    ui = links.ui_base(uri, ui)
    groups = build_groups(collection.records)
    by_section = sections(groups)
    histories, matrices = {}, {}
    runs = [r for g in groups for r in g.records]
    for r in tqdm(runs, desc="reading runs", unit="run", mininterval=1.0, disable=len(runs) < 20):
        histories[r.run_id] = curves(client, r.run_id)
        if (m := confusion(client, r.run_id)) is not None:
            matrices[r.run_id] = m
    pairs = leakage(groups)
    leaky_pairs = {id(a): b for a, b in pairs}

    @functools.cache  # ensembles, calibration and the reliability diagram read the same files
    def fetch(run_id: str, name: str) -> str | None:
        return artifact(client, run_id, name)

    combined = settings_ensembles(groups, list(ensemble_specs), fetch)
    ensembles = seed_ensembles(groups, fetch)
    twins = leaky_twins(combined, {id(b): a for a, b in reversed(pairs)}, fetch)  # reversed: the first pair wins
    tables = []
    for (corpus, split), members in by_section.items():
        if all(g.leaky for g in members):
            own = [(leaky, honest) for leaky, honest in twins if any(leaky.groups[0] is g for g in members)]
            tables.append(_leaky_table(corpus, split, members, leaky_pairs, own))
            tables[-1].links = {i: links.runs_url(ui, g.records) for i, g in enumerate(members)}
            tables[-1].link_column = 0
        else:
            tables.append(_ranked_table(corpus, split, members, histories, matrices))
            tables[-1].links = {i: links.runs_url(ui, g.records) for i, g in enumerate(members)}
            if (calibrated := calibration.table(corpus, split, [g for g in members if not g.leaky], fetch)):
                tables.append(calibrated)
            if own := [e for e in ensembles + combined if any(e.groups[0] is g for g in members)]:
                tables.append(ensemble_table(corpus, split, own))
                tables[-1].links = {i: links.runs_url(ui, [r for g in e.groups for r in g.records])
                                    for i, e in enumerate(by_validation(own))}
                tables[-1].link_column = 0
    excluded = ", ".join(f"{n} {why}" for why, n in sorted(collection.excluded.items())) or "none"
    title = f"Leaderboard: {', '.join(collection.experiments)}"
    preamble = [
        f"Generated {when} from {uri}. {len(runs)} finished runs in {len(groups)} settings. "
        f"Left out of every figure: {excluded}.",
        "UA = unweighted accuracy (mean per-class recall), WA = accuracy. Each fold's value is the mean over "
        "its seeds; ± is the sample standard deviation over folds and the 95% CI a t-interval over folds. "
        "p compares test UA with rank 1 over the folds both have (two-sided paired t-test / Wilcoxon "
        "signed-rank; with 6 folds the Wilcoxon p cannot go below 0.031). gap = train minus validation "
        "accuracy at the best-validation epoch. val UA = validation UA at that epoch (validation actors only): "
        "choose between settings on it, never on test UA. Settings with missing folds are listed as incomplete and "
        "never ranked; the leaky random split is never ranked with actor-disjoint results.",
        f"In the HTML page each setting's label links to its runs in the MLflow UI at {ui} (`mlflow ui "
        f"--backend-store-uri URI`; --mlflow-ui for another address); leaderboard.csv lists them (run_ids, "
        f"mlflow_url).",
    ]
    return (render.markdown(title, preamble, tables), render.to_html(title, preamble, tables),
            render.to_csv(groups, ensembles, ui))


def _row(g: Group, rank: str, mark: str = "") -> list[str]:
    return [rank, g.label, f"{len(g.folds)}/{g.expected_folds}", ",".join(g.seeds), pm(g, "test/ua"),
            render.ci(g), pm(g, "test/wa"), pm(g, "test/macro_f1"), pm(g, "best/gap_acc"),
            pm(g, "best/val_ua") + (f" ({mark})" if mark else ""), render.pvalues(g) if g.rank else "–",
            num(g.minutes, 1),
            f"{g.params:,}" if g.params else "–"]


def _ranked_table(corpus: str, split: str, members: list[Group], histories: dict, matrices: dict) -> Table:
    marks = validation_marks(members)
    rows = [_row(g, str(g.rank) if g.rank else "transductive" if g.transductive else "incomplete",
                 marks.get(id(g), "")) for g in members]
    mats = [matrices[r.run_id] for g in members for r in g.records if r.run_id in matrices]
    names = mats[0][0] if mats else None
    totals = sum(m.sum(axis=1) for _, m in mats) if mats else None
    # Class totals pooled over every setting count each test set once per setting: shares are unchanged.
    n_classes = len(names) if names else 8
    for name, ua, wa in baselines(totals, n_classes):
        rows.append(["base", name, "–", "–", num(ua), "–", num(wa), "–", "–", "–", "–", "–", "–"])
    refs = REFERENCES.get((corpus, split), [])
    for name, ua in refs:
        rows.append(["ref", f"{name} (published, measured elsewhere)", "6/6", "–", num(ua), "–", "–", "–", "–",
                     "–", "–", "–", "–"])
    title = f"{corpus} · {split} (actor-disjoint)"
    note = "Ranked by mean test UA over complete settings."
    if any(g.transductive for g in members):
        note += (" TRANSDUCTIVE rows used the test actors' audio (not their labels), e.g. speaker normalisation:"
                 " not speaker-independent, so listed apart and never ranked.")
    if marks:
        note += (f" The val UA column was measured on {len(set(marks.values()))} different sets of validation actors"
                 " (marked V1, V2, ...; e.g. another split.n_val_actors): choose on val UA only between rows with"
                 " the same mark.")
    table = Table(title, note, HEADERS, rows)
    shown = [g for g in members if not g.leaky]
    table.figures.append((f"{title}: test UA with 95% intervals (grey: incomplete; orange: transductive; "
                          "green: published)", render.png(figures.bars(shown, refs, title, n_classes))))
    table.figures.append((f"{title}: overfitting curves, mean over folds and seeds",
                          render.png(figures.curves(shown[:MAX_CURVES], histories, title))))
    leader = next((g for g in members if g.rank == 1), None)
    leader_mats = [matrices[r.run_id] for r in leader.records if r.run_id in matrices] if leader else []
    if leader_mats:
        total = sum(m for _, m in leader_mats)
        table.figures.append((f"Confusion matrix of the leader, {leader.label}, summed over its test folds",
                              render.png(figures.confusion(leader_mats[0][0], total, f"leader: {leader.label}"))))
    table.figures.append((f"{title}: recall per emotion (confusion matrices summed over each setting's runs)",
                          render.png(figures.recall(shown, matrices, "recall per emotion"))))
    return table


def ensemble_table(corpus: str, split: str, ensembles: list[Ensemble]) -> Table:
    headers = ["setting(s)", "folds", "seeds", "trainings per fold", "ensemble test UA", "WA", "macro-F1",
               "members' test UA", "gain (UA)", "ensemble val UA (select on this)", "members' val UA"]
    rows = []
    ordered = by_validation(ensembles)
    own = on_own_validation(ensembles)  # else the (chosen) mark goes on the members' val UA
    for e in ordered:
        chosen = " (chosen)" if e is ordered[0] else ""
        rows.append([e.label, f"{len(e.members)}/{e.groups[0].expected_folds}", " & ".join(map(",".join, e.seeds)),
                     str(e.trainings),
                     *(render.mean_std(*e.summary(m)) for m in ("test/ua", "test/wa", "test/macro_f1")),
                     num(e.members_ua), f"{e.summary('test/ua')[0] - e.members_ua:+.3f}",
                     num(e.ensemble_val_ua) + (chosen if own else ""), num(e.members_val_ua) + ("" if own else chosen)])
    note = ("ENSEMBLES, not single models: per fold, the class probabilities of the members (a setting's seeds; or "
            "the settings named with --ensemble, '&' in the first column, each setting's seeds averaged first, then "
            "the settings with equal weight; every run's best-validation checkpoint) are averaged clip by clip and "
            "scored. members' test UA = the same runs scored alone, weighted alike. ensemble val UA = the ensemble "
            "on the validation clips (– where runs predate val_predictions.csv; then choose on the members' val "
            "UA). Ordered by that validation figure, ties to fewer trainings; the first row is the one to choose "
            "(chosen), whatever its test UA. Not ranked with single models.")
    return Table(f"{corpus} · {split}: ensembles", note, headers, rows)


def _leaky_table(corpus: str, split: str, members: list[Group], pairs: dict,
                 twins: list[tuple[Ensemble, Ensemble]]) -> Table:
    headers = ["model + augmentation", "folds", "test UA (leaky)", "WA", "macro-F1",
               "test UA actor-disjoint", "inflation (UA)"]
    rows = []
    for g in members:
        honest = pairs.get(id(g))
        ua = g.summary("test/ua")[0]
        rows.append([g.label, f"{len(g.folds)}/{g.expected_folds}", pm(g, "test/ua"), pm(g, "test/wa"),
                     pm(g, "test/macro_f1"),
                     f"{pm(honest, 'test/ua')} ({honest.split}, {len(honest.folds)} folds)" if honest else "–",
                     f"{ua - honest.summary('test/ua')[0]:+.3f}" if honest else "–"])
    for leaky, honest in twins:
        ua, honest_ua = leaky.summary("test/ua")[0], honest.summary("test/ua")[0]
        rows.append([f"ENSEMBLE {leaky.label} ({leaky.trainings} trainings per fold)",
                     f"{len(leaky.members)}/{leaky.groups[0].expected_folds}",
                     *(render.mean_std(*leaky.summary(m)) for m in ("test/ua", "test/wa", "test/macro_f1")),
                     f"{render.mean_std(*honest.summary('test/ua'))} (the same ensemble, {honest.groups[0].split}, "
                     f"{len(honest.members)} folds)", f"{ua - honest_ua:+.3f}"])
    note = ("LEAKY: utterances are split at random, so the same actors are in train and test. Never ranked; "
            "shown only to measure how much leakage inflates accuracy (the original study's 80% was such a split). "
            "ENSEMBLE rows: an ensemble named with --ensemble whose every setting was also run on this split, "
            "averaged alike on those runs, next to the same ensemble on actor-disjoint folds.")
    return Table(f"{corpus} · {split} (LEAKY, not ranked)", note, headers, rows)


__all__ = ["document", "np"]
