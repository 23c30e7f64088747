"""Each plot writes a readable PNG from tiny inputs."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

from midibert import viz

PNG = b"\x89PNG\r\n\x1a\n"


def _is_png(path: Path) -> bool:
    return path.exists() and path.stat().st_size > 1000 and path.read_bytes()[:8] == PNG


def _metrics_csv(path: Path, scale: float = 1.0) -> Path:
    """A file shaped like Lightning's CSVLogger output: train and val rows interleaved, blanks elsewhere."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["epoch", "step", "train/loss", "val/acc", "val/loss"])
        for step in range(0, 40, 5):
            writer.writerow([step // 10, step, scale * 2 / (1 + step), "", ""])
            if step % 10 == 5:
                writer.writerow([step // 10, step, "", 0.5 + step / 100, scale * 3 / (1 + step)])
    return path


def test_pianoroll_true_vs_pred(tmp_path):
    onset, duration, pitch = [0, 1, 1, 2, 3], [1, 1, 2, 1, 1], [72, 74, 60, 48, 76]
    out = viz.pianoroll(onset, duration, pitch, [0, 0, 1, 2, 0], [0, 1, 1, 2, 0], path=tmp_path / "sub" / "roll.png")
    assert out == tmp_path / "sub" / "roll.png" and _is_png(out)


def test_pianoroll_without_labels_or_path_returns_figure():
    assert isinstance(viz.pianoroll([0, 1], [1, 1], [60, 64]), Figure)


@pytest.mark.parametrize("binned", [False, True])
def test_velocity_scatter(tmp_path, binned):
    rng = np.random.default_rng(0)
    true = rng.integers(0, 6, 50) if binned else rng.integers(1, 128, 50)
    pred = np.clip(true + rng.integers(-1, 2, 50), 0, 127)
    assert _is_png(viz.velocity_scatter(true, pred, tmp_path / "vel.png"))


@pytest.mark.parametrize("normalize", [True, False])
def test_confusion_matrix(tmp_path, normalize):
    cm = np.array([[5, 1, 0], [0, 0, 0], [1, 2, 9]])  # an empty row must not turn into NaN
    with np.errstate(all="raise"):
        out = viz.confusion_matrix(cm, ["melody", "bridge", "accompaniment"], tmp_path / "cm.png", normalize=normalize)
    assert _is_png(out)


def test_training_curves_from_dir_files_and_selected_metrics(tmp_path):
    logs = tmp_path / "logs"
    first = _metrics_csv(logs / "version_0" / "metrics.csv")
    second = _metrics_csv(logs / "version_1" / "metrics.csv", scale=1.5)
    assert _is_png(viz.training_curves(logs, tmp_path / "all.png"))
    assert _is_png(viz.training_curves([first, second], tmp_path / "two.png", metrics=["val/loss"]))
    assert _is_png(viz.training_curves(str(first), tmp_path / "one.png"))


def test_training_curves_without_files_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        viz.training_curves(tmp_path, tmp_path / "none.png")


def test_masked_accuracy_shares_a_panel_with_its_baselines():
    from midibert.viz import _panel

    assert (
        _panel("val/acc_Pitch") == _panel("val/base_prev_Pitch") == _panel("train/acc_Pitch") == "masked Pitch accuracy"
    )
    assert _panel("val/base_unigram_Position") != _panel("val/acc_Pitch")
    assert _panel("val/loss") == _panel("train/loss") == "loss"
    by_corpus = _panel("val/pop909/acc_Pitch")
    assert by_corpus == _panel("val/asap/base_prev_Pitch") == "masked Pitch accuracy by corpus"
