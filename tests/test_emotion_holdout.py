"""benchmarks/emotion_holdout.py: it scores only runs that kept songs out, and (slow) a tiny emotion
run on EMOPIA with a held-out share, and its refit, model and note statistics on the same held-out clips
and on VGMIDI's phrases."""

from __future__ import annotations

import json

import pytest
from omegaconf import OmegaConf

from tests.conftest import ROOT, SHARED_DATA, script
from tests.hydra_configs import config

SCRIPT = ROOT / "benchmarks" / "emotion_holdout.py"


def _script():
    return script(SCRIPT)


def test_a_run_without_held_out_songs_is_refused(tmp_path):
    stage = tmp_path / "emotion-bert-seed1"
    stage.mkdir()
    OmegaConf.save(config("finetune", ["task=emotion"], tmp_path), stage / "config.yaml")
    with pytest.raises(SystemExit, match="trained without a held-out share"):
        _script().evaluate_run(tmp_path)
    with pytest.raises(SystemExit, match="no emotion-bert-seed"):
        _script().evaluate_run(tmp_path / "empty")


def test_table_says_how_far_ahead_of_the_statistics():
    row = {"model": "m", "test": "VGMIDI", "split_seed": 1, "clips": 10, "songs": 4, "accuracy": 0.6, "macro_f1": 0.5,
           "statistics_accuracy": 0.7, "statistics_macro_f1": 0.65}  # fmt: skip
    assert "| m | 1 | VGMIDI | 10 (4) | 60.00% | 50.00% | 70.00% | 65.00% | -10.00 |" in _script().markdown([row])


@pytest.mark.slow
@pytest.mark.skipif(
    not (SHARED_DATA / "emopia").is_dir() or not (SHARED_DATA / "vgmidi").is_dir(),
    reason="needs EMOPIA and VGMIDI (../shared/data/emopia, ../shared/data/vgmidi)",
)
def test_tiny_emotion_run_is_scored_on_its_held_out_songs(tmp_path):
    from midibert.finetune import finetune

    run = tmp_path / "run"
    overrides = ["task=emotion", "model=bert", "encoder=bert-tiny", "trainer.max_steps=2", "trainer.val_check_interval=2",
                 "model.head.hidden=16", f"task.data.path={SHARED_DATA / 'emopia'}", "+task.data.options.holdout=0.15",
                 "split_seed=1", "logger=csv"]  # fmt: skip
    cfg = config("finetune", [*overrides, f"run_dir={run / 'emotion-bert-seed1'}"], tmp_path)
    finetune(cfg)
    refit = config(
        "finetune", [*overrides, "+task.data.options.refit=true", f"run_dir={run / 'emotion-bert-refit'}"], tmp_path
    )
    finetune(refit)
    row, vgmidi, refitted, _ = _script().evaluate_run(run, vgmidi=SHARED_DATA / "vgmidi")
    assert row["clips"] > 50 and row["songs"] > 20 and row["split_seed"] == 1 and not row["refit"]
    assert (row["test"], vgmidi["test"], vgmidi["clips"]) == ("EMOPIA held-out", "VGMIDI", 204)
    assert 0 <= vgmidi["accuracy"] <= 1 and 0 < vgmidi["statistics_accuracy"] <= 1
    assert 0 <= row["accuracy"] <= 1 and 0 < row["statistics_accuracy"] <= 1
    # the refit is tested on the same held-out clips, which are its test split
    assert refitted["refit"] and (refitted["clips"], refitted["songs"]) == (row["clips"], row["songs"])
    tested = json.loads((run / "emotion-bert-refit" / "results.json").read_text())["levels"]["piece"]
    assert tested["n"] == refitted["clips"] and tested["accuracy"] == pytest.approx(refitted["accuracy"], abs=0.02)
