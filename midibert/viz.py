"""Plots for results: piano rolls by melody class, velocity scatter, confusion matrices, training curves.

Built on matplotlib's object API (``Figure``, no pyplot state), so it works headless, under the Agg
backend and from worker threads; each function writes a PNG and returns its path.

Example::

    from midibert import viz
    viz.confusion_matrix(cm, ["melody", "bridge", "accompaniment"], "out/cm.png")
"""

from __future__ import annotations

from midibert.errors import require_extra

require_extra("train")

import csv
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from midibert.tokenize.labels import MELODY_CLASSES, VELOCITY_EDGES

# Colour-blind-safe (Okabe-Ito): melody stands out, accompaniment recedes.
_CLASS_COLOURS = ("#D55E00", "#0072B2", "#999999", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442")
_DPI = 120


def _save(fig: Figure, path: str | os.PathLike) -> Path:
    """Write the figure as PNG (creating folders) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=_DPI)
    return path


def pianoroll(
    onset: Sequence[float],
    duration: Sequence[float],
    pitch: Sequence[int],
    labels_true: Sequence[int] | None = None,
    labels_pred: Sequence[int] | None = None,
    class_names: Sequence[str] = MELODY_CLASSES[3],
    path: str | os.PathLike | None = None,
) -> Path | Figure:
    """Piano roll with notes coloured by class; true and predicted labels side by side, errors outlined.

    Times may be in any unit (ticks, beats, seconds). Without ``path`` the Figure is returned
    (notebooks display it); with one, a PNG is written and its path returned.
    """
    onset, duration, pitch = (np.asarray(a, dtype=float) for a in (onset, duration, pitch))
    given = (("true", labels_true), ("predicted", labels_pred))
    panels = [(title, np.asarray(lab, dtype=int)) for title, lab in given if lab is not None]
    if not panels:
        panels = [("notes", np.zeros(len(onset), dtype=int))]
    fig = Figure(figsize=(6 * len(panels), 4), layout="constrained")
    axes = fig.subplots(1, len(panels), sharex=True, sharey=True, squeeze=False)[0]
    for ax, (title, labels) in zip(axes, panels):
        colours = [_CLASS_COLOURS[k % len(_CLASS_COLOURS)] for k in labels]
        compared = title == "predicted" and labels_true is not None
        wrong = labels != panels[0][1] if compared else np.zeros(len(labels), bool)
        ax.barh(
            pitch,
            duration,
            left=onset,
            height=0.8,
            color=colours,
            edgecolor=np.where(wrong, "black", "none"),
            linewidth=np.where(wrong, 1.2, 0),
        )
        if compared and len(labels):
            title = f"predicted (accuracy {np.mean(~wrong):.1%}; errors outlined)"
        ax.set_title(title)
        ax.set_xlabel("time")
        ax.grid(axis="y", alpha=0.2)
    axes[0].set_ylabel("MIDI pitch")
    if labels_true is not None or labels_pred is not None:
        used = sorted(set(np.concatenate([lab for _, lab in panels]).tolist()))
        names = [class_names[k] if k < len(class_names) else str(k) for k in used]
        handles = [Patch(color=_CLASS_COLOURS[k % len(_CLASS_COLOURS)], label=name) for k, name in zip(used, names)]
        fig.legend(handles=handles, loc="outside right upper", fontsize="small")  # outside, so it hides no notes
    return fig if path is None else _save(fig, path)


def velocity_scatter(true: Sequence[float], pred: Sequence[float], path: str | os.PathLike) -> Path:
    """Predicted against true velocity (1..127) or velocity bin; bins are jittered so stacked points show."""
    true, pred = np.asarray(true, dtype=float), np.asarray(pred, dtype=float)
    n_bins = len(VELOCITY_EDGES) - 1
    binned = bool(len(true)) and max(true.max(), pred.max()) < n_bins and np.all(true == np.round(true))
    fig = Figure(figsize=(5, 5), layout="constrained")
    ax = fig.subplots()
    if binned:
        rng = np.random.default_rng(0)  # fixed jitter, so the same inputs give the same picture
        x, y = true + rng.uniform(-0.25, 0.25, len(true)), pred + rng.uniform(-0.25, 0.25, len(pred))
        ticks = np.arange(n_bins)
        labels = [f"{lo}-{hi - 1}" for lo, hi in zip(VELOCITY_EDGES, VELOCITY_EDGES[1:])]
        ax.set_xticks(ticks, labels, rotation=45)
        ax.set_yticks(ticks, labels)
        limits, score = (-0.5, n_bins - 0.5), f"accuracy {np.mean(true == pred):.1%}" if len(true) else ""
    else:
        x, y = true, pred
        limits, score = (0, 128), f"MAE {np.mean(np.abs(true - pred)):.1f}" if len(true) else ""
    ax.scatter(x, y, s=8, alpha=0.4, linewidths=0)
    ax.plot(limits, limits, color="black", linewidth=0.8, linestyle="--")
    ax.set(
        xlim=limits,
        ylim=limits,
        aspect="equal",
        title=f"velocity{' bin' if binned else ''}: {score}",
        xlabel="true",
        ylabel="predicted",
    )
    return _save(fig, path)


def confusion_matrix(
    cm: np.ndarray, class_names: Sequence[str], path: str | os.PathLike, normalize: bool = True
) -> Path:
    """Confusion matrix (rows true, columns predicted), row-normalised by default, each cell annotated."""
    cm = np.asarray(cm, dtype=float)
    shown = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1) if normalize else cm  # empty rows stay 0, not NaN
    n = len(class_names)
    fig = Figure(figsize=(2.5 + 0.8 * n, 2.0 + 0.7 * n), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else max(shown.max(), 1))
    fig.colorbar(image, ax=ax, shrink=0.8)
    for (i, j), value in np.ndenumerate(shown):
        text = f"{value:.2f}" if normalize else f"{value:g}"
        ax.text(
            j,
            i,
            text,
            ha="center",
            va="center",
            fontsize="small",
            color="white" if value > 0.6 * image.norm.vmax else "black",
        )
    ax.set_xticks(range(n), class_names, rotation=45, ha="right")
    ax.set_yticks(range(n), class_names)
    ax.set(xlabel="predicted", ylabel="true", title="confusion" + (" (row-normalised)" if normalize else ""))
    return _save(fig, path)


def _read_metrics(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(steps, values) per metric column of a Lightning CSVLogger file; blank cells are steps that did not log it."""
    series: dict[str, list[tuple[float, float]]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            step = float(row.get("step") or "nan")
            for name, value in row.items():
                if name not in ("step", "epoch") and value not in ("", None):
                    series.setdefault(name, []).append((step, float(value)))
    return {name: tuple(np.array(v).T) for name, v in series.items()}


def _panel(metric: str) -> str:
    """The panel a metric is drawn in: its name after the last "/", except that a family's masked
    accuracy and its trivial baselines (acc_Pitch, base_prev_Pitch, ...) share one panel, and
    their scores per corpus (val/pop909/acc_Pitch, ...) another."""
    parts = metric.split("/")
    name = parts[-1]
    if name.startswith(("acc_", "base_")):
        return f"masked {name.rsplit('_', 1)[-1]} accuracy" + (" by corpus" if len(parts) > 2 else "")
    return name


def training_curves(
    csv_paths_or_dir: str | os.PathLike | Sequence[str | os.PathLike],
    path: str | os.PathLike,
    metrics: Sequence[str] | None = None,
) -> Path:
    """Each metric over steps from Lightning ``metrics.csv`` files (a folder is searched recursively).

    Metrics sharing a name after the last "/" (``train/loss``, ``val/loss``) share a panel, and so do
    a token family's masked accuracy and its trivial baselines (``val/acc_Pitch``,
    ``val/base_prev_Pitch``: the model against copying a neighbour); each run
    is labelled by the folder its file sits in (``version_0`` ...), or by the run folder above
    ``logs/`` (``melody-bert``), where midibert's CSV logger writes.
    """
    given = [csv_paths_or_dir] if isinstance(csv_paths_or_dir, (str, os.PathLike)) else list(csv_paths_or_dir)
    files = [f for p in map(Path, given) for f in (sorted(p.rglob("metrics.csv")) if p.is_dir() else [p])]
    if not files:
        raise FileNotFoundError(f"no metrics.csv under {given}")
    runs = {f: _read_metrics(f) for f in files}
    names = list(metrics) if metrics is not None else sorted({m for run in runs.values() for m in run})
    panels: dict[str, list[str]] = {}
    for name in names:
        panels.setdefault(_panel(name), []).append(name)
    cols = min(len(panels), 3) or 1
    rows = -(-len(panels) // cols) or 1
    fig = Figure(figsize=(4.5 * cols, 3.2 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, (panel, members) in zip(axes, panels.items()):
        for f, run in runs.items():
            for name in members:
                if name in run:
                    steps, values = run[name]
                    run_name = f.parent.parent.name if f.parent.name == "logs" else f.parent.name
                    label = name if len(runs) == 1 else f"{run_name}: {name}"
                    ax.plot(steps, values, marker="o" if len(steps) < 30 else None, markersize=3, label=label)
        ax.set(title=panel, xlabel="step")
        ax.grid(alpha=0.3)
        if ax.lines:  # a requested metric may be in no file
            ax.legend(fontsize="small")
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    return _save(fig, path)
