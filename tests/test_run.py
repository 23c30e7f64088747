"""The main job and `midibert demo`: every stage runs, the report joins all four tasks."""
from __future__ import annotations

import json

from midibert.run import run_pipeline
from tests.hydra_configs import config

TINY = ["pipeline.pretrain=['data=pretrain_sample','model=bert-tiny','trainer.max_steps=4',"
        "'trainer.val_check_interval=2']",
        "pipeline.finetune=['model.preset=bert-tiny','trainer.max_steps=3','trainer.val_check_interval=3',"
        "'model.head.hidden=16']"]


def test_demo_pipeline_at_a_smaller_size(tmp_path, capsys):
    from hydra import initialize_config_dir

    from midibert.training import CONF_DIR

    cfg = config("run", ["experiment=demo", *TINY, "pipeline.models=[bert]"], tmp_path)  # the RNN: test_finetune
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):  # the stages compose their own configs
        report = run_pipeline(cfg)
    text = report.read_text()
    for task in ("melody", "velocity", "style", "emotion"):
        for model in ("bert", "majority"):
            assert (report.parent / f"{task}-{model}" / "results.json").is_file()
            assert f"| {task}-{model} |" in text
    assert "| melody-skyline |" in text and "96.37" in text  # the paper's figure beside ours
    assert (report.parent / "melody-bert" / "training_curves.png").is_file()
    assert "report:" in capsys.readouterr().out
    # a second run reuses every finished stage instead of training again
    before = json.loads((report.parent / "style-bert" / "results.json").read_text())
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        run_pipeline(cfg)
    assert json.loads((report.parent / "style-bert" / "results.json").read_text()) == before
