"""The per-run figures have fixed margins (no layout engine): nothing may fall outside the canvas."""

import numpy as np
import pytest

from ser_bench import plots


def _outside(fig) -> list[str]:
    """Axes (with their tick labels, axis labels, titles and legends) that do not fit inside the figure."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    canvas = fig.bbox
    bad = []
    for ax in fig.axes:
        box = ax.get_tightbbox(renderer)
        if box.x0 < canvas.x0 - 1 or box.y0 < canvas.y0 - 1 or box.x1 > canvas.x1 + 1 or box.y1 > canvas.y1 + 1:
            bad.append(ax.get_label() or ax.get_title() or ax.get_ylabel())
    return bad


@pytest.mark.parametrize("names", [["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"],
                                   ["neutral", "pleasant_surprise", "sad"], ["a", "b"]])
def test_confusion_labels_fit(names):
    matrix = np.arange(len(names) ** 2).reshape(len(names), len(names))
    fig = plots.confusion(matrix, names)
    try:
        assert _outside(fig) == []
    finally:
        plots.close(fig)


def test_curves_fit():
    history = [{"epoch": e, "train/acc": 0.3 + e / 30, "val/acc": 0.3 + e / 40, "val/ua": 0.3 + e / 45,
                "train/loss": 2.0 - e / 10, "val/loss": 2.0 - e / 20} for e in range(20)]
    fig = plots.curves(history, best_epoch=12)
    try:
        assert _outside(fig) == []
    finally:
        plots.close(fig)
