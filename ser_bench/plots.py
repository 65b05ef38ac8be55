"""Figures for runs and reports (matplotlib, no display needed).

Every run saves two figures (curves, confusion), so they have fixed margins, sized for the
longest class name: a layout engine would draw each figure twice, once to measure it (about 0.1 s
per figure here, a third of its cost). The once-per-sweep figure keeps `layout="tight"`.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402


def curves(history: list[dict], best_epoch: int | None = None) -> Figure:
    """Train vs validation accuracy and loss per epoch: the overfitting picture of one run."""
    fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(10, 3.8))
    fig.subplots_adjust(left=0.05, right=0.99, bottom=0.13, top=0.92, wspace=0.15)
    epochs = [h["epoch"] for h in history]
    for ax, key, title in ((ax_acc, "acc", "accuracy"), (ax_loss, "loss", "loss")):
        ax.plot(epochs, [h[f"train/{key}"] for h in history], "o-", ms=3, label="train")
        ax.plot(epochs, [h[f"val/{key}"] for h in history], "o-", ms=3, label="validation")
        if key == "acc":
            ax.plot(epochs, [h["val/ua"] for h in history], "--", lw=1, label="validation UA")
            ax.set_ylim(0, 1)
        if best_epoch is not None:
            ax.axvline(best_epoch, color="grey", ls=":", lw=1, label=f"best (epoch {best_epoch})")
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    ax_acc.legend(fontsize=8)
    return fig


def epoch_means(histories: list[dict[int, float]]) -> dict[int, float]:
    """Per-epoch mean over runs' {epoch: value} histories; an epoch's mean covers the runs that reached it."""
    per_epoch: dict[int, list[float]] = {}
    for history in histories:
        for epoch, value in history.items():
            per_epoch.setdefault(epoch, []).append(value)
    return {epoch: float(np.mean(values)) for epoch, values in sorted(per_epoch.items())}


def sweep_curves(curves: dict) -> Figure:
    """A sweep's overfitting picture: one panel per model, one colour per augmentation setting,
    train (dashed) and validation (solid) accuracy per epoch, averaged over folds and seeds.

    `curves`: {model: {augment: {"runs": n, "train/acc": {epoch: mean}, "val/acc": {epoch: mean}}}}.
    """
    models = sorted(curves)
    fig, axes = plt.subplots(1, len(models), figsize=(5.2 * len(models), 4.0), squeeze=False, sharey=True,
                             layout="tight")
    for ax, model in zip(axes[0], models):
        for i, (aug, entry) in enumerate(sorted(curves[model].items())):
            colour = f"C{i % 10}"
            for key, style in (("train/acc", "--"), ("val/acc", "-")):
                points = entry.get(key, {})
                ax.plot(list(points), list(points.values()), style, color=colour, lw=1.6,
                        label=f"{aug} ({entry['runs']} runs)" if key == "val/acc" else None)
        ax.set_title(f"{model}: train (dashed) vs validation (solid)")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, title="augment", title_fontsize=8)
    axes[0][0].set_ylabel("accuracy (mean over folds)")
    return fig


def confusion(matrix: np.ndarray, class_names: list[str]) -> Figure:
    """Counts, coloured by row-normalised recall."""
    recall = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    # Margins in inches: the tick labels' room grows with the longest class name (10 pt text).
    label = 0.075 * max(map(len, class_names))
    left, bottom, side, right, top = 0.45 + label, 0.5 + 0.71 * label, 4.2, 1.0, 0.15
    width, height = left + side + right, bottom + side + top
    fig = plt.figure(figsize=(width, height))
    ax = fig.add_axes((left / width, bottom / height, side / width, side / height))
    im = ax.imshow(recall, cmap="Blues", vmin=0, vmax=1)
    n = len(class_names)
    ax.set_xticks(range(n), class_names, rotation=45, ha="right")
    ax.set_yticks(range(n), class_names)
    for i in range(n):
        for j in range(n):
            ax.text(j, i, int(matrix[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if recall[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.colorbar(im, cax=fig.add_axes(((left + side + 0.12) / width, bottom / height, 0.18 / width, side / height)),
                 label="recall")
    return fig


def close(fig: Figure) -> None:
    plt.close(fig)
