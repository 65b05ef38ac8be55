"""The report's plots: ranked bars with 95% intervals, fold-mean overfitting curves, the leader's
confusion matrix and per-emotion recall. Each returns a matplotlib Figure."""

from __future__ import annotations

import textwrap

import numpy as np

from ser_bench.plots import Figure, epoch_means, plt
from ser_bench.report.stats import Group

LABEL_WIDTH = 60  # characters per line of a setting's label (a label lists every override it has)


def wrap(label: str) -> str:
    return textwrap.fill(label, LABEL_WIDTH, break_on_hyphens=False)


def _lines(labels: list[str]) -> int:
    return sum(label.count("\n") + 1 for label in labels)


def bars(groups: list[Group], references: list[tuple[str, float]], title: str, n_classes: int = 8) -> Figure:
    labels, means, errs, colours = [], [], [], []
    for g in groups:
        mean, _, lo, hi = g.summary("test/ua")
        labels.append(wrap(g.label + ("" if g.complete else f"  [incomplete: folds {g.folds}]")))
        means.append(mean)
        errs.append([mean - lo, hi - mean] if np.isfinite(lo) else [0, 0])
        colours.append("C1" if g.transductive else "C0" if g.complete else "0.7")
    for name, ua in references:
        labels.append(f"{name} (published)")
        means.append(ua)
        errs.append([0, 0])
        colours.append("C2")
    fig, ax = plt.subplots(figsize=(11, 0.13 * _lines(labels) + 0.25 * len(labels) + 1.4))
    y = np.arange(len(labels))[::-1]
    ax.barh(y, means, xerr=np.array(errs).T if errs else None, color=colours, capsize=3)
    ax.set_yticks(y, labels, fontsize=8)
    ax.axvline(1 / n_classes, color="grey", ls=":", lw=1, label=f"chance (1/{n_classes})")
    ax.set_xlim(0, 1)
    ax.set_xlabel("test UA (mean over folds, 95% interval)")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def curves(groups: list[Group], histories: dict[str, dict[str, dict[int, float]]], title: str) -> Figure:
    """Train (dashed) and validation (solid) accuracy per epoch, averaged over each group's runs."""
    fig, ax = plt.subplots(figsize=(8.5, 4.2))
    for i, g in enumerate(groups):
        for key, style in (("train/acc", "--"), ("val/acc", "-")):
            means = epoch_means([histories.get(r.run_id, {}).get(key, {}) for r in g.records])
            if means:
                ax.plot(list(means), list(means.values()), style, color=f"C{i % 10}", lw=1.5,
                        label=wrap(g.label) if key == "val/acc" else None)
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy (mean over runs)")
    ax.set_ylim(0, 1)
    ax.set_title(title + ": train (dashed) vs validation (solid)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))  # beside the plot: labels are long
    fig.tight_layout()
    return fig


def confusion(names: list[str], matrix: np.ndarray, title: str) -> Figure:
    from ser_bench.plots import confusion as plot_confusion

    fig = plot_confusion(matrix, names)
    fig.axes[0].set_title(title, fontsize=10)
    return fig


def recall(groups: list[Group], matrices: dict[str, tuple[list[str], np.ndarray]], title: str) -> Figure:
    """Per-emotion recall (confusion matrices summed over each group's runs), one row per group."""
    rows, labels, names = [], [], None
    for g in groups:
        mats = [matrices[r.run_id] for r in g.records if r.run_id in matrices]
        if not mats:
            continue
        names = mats[0][0]
        total = sum(m for _, m in mats)
        rows.append(np.diag(total) / np.maximum(total.sum(axis=1), 1))
        labels.append(wrap(g.label))
    fig, ax = plt.subplots(figsize=(11, 0.13 * _lines(labels) + 0.25 * len(rows) + 1.8))
    if rows:
        im = ax.imshow(np.array(rows), cmap="Blues", vmin=0, vmax=1, aspect="auto")
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
        ax.set_yticks(range(len(labels)), labels, fontsize=8)
        for i, row in enumerate(rows):
            for j, v in enumerate(row):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="white" if v > 0.6 else "black")
        fig.colorbar(im, ax=ax, fraction=0.03)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def reliability(curves: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], title: str) -> Figure:
    """Accuracy against mean confidence per confidence bin (one line per curve), and the clips per bin below."""
    fig, (ax, ax_n) = plt.subplots(2, 1, figsize=(6.5, 6.2), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], color="grey", ls=":", lw=1, label="perfect calibration")
    for i, (name, (conf, acc, counts)) in enumerate(curves.items()):
        filled = counts > 0
        ax.plot(conf[filled], acc[filled], "o-", color=f"C{i}", ms=4, label=name)
        edges = np.linspace(0, 1, len(counts) + 1)
        ax_n.stairs(counts, edges, color=f"C{i}", label=name)
    ax.set_ylabel("accuracy in bin")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title(wrap(title), fontsize=9)
    ax_n.set_xlabel("confidence (top-class probability)")
    ax_n.set_ylabel("clips")
    fig.tight_layout()
    return fig
