"""The main job and `midibert demo`: every stage runs, the report joins all four tasks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from midibert.run import run_pipeline
from tests.factories import TINY
from tests.hydra_configs import config


def test_demo_pipeline_at_a_smaller_size(tmp_path, capsys):
    from hydra import initialize_config_dir

    from midibert.training import CONF_DIR

    cfg = config("run", ["experiment=demo", *TINY, "pipeline.models=[bert]"], tmp_path)  # the RNN: test_finetune
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):  # the stages compose their own configs
        report = run_pipeline(cfg, command="python -m midibert.run experiment=demo")
    text = report.read_text()
    for task in ("melody", "velocity", "style", "emotion"):
        for model in ("bert", "majority"):
            assert (report.parent / f"{task}-{model}" / "results.json").is_file()
            assert f"| {task}-{model} |" in text
    assert "| melody-skyline |" in text and "96.37" not in text  # no paper figure beside sample-corpus runs
    assert (report.parent / "melody-bert" / "training_curves.png").is_file()
    assert "report:" in capsys.readouterr().out
    # a second run reuses every finished stage instead of training again
    before = json.loads((report.parent / "style-bert" / "results.json").read_text())
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        run_pipeline(cfg, command="python -m midibert.run experiment=demo seed=7")
    assert json.loads((report.parent / "style-bert" / "results.json").read_text()) == before
    # only invocations that ran a stage are the run's record (release cards cite it)
    assert (report.parent / "commands.txt").read_text() == "python -m midibert.run experiment=demo\n"
    for stage in ("pretrain", "melody-bert", "style-majority"):  # and each stage's, of the commands that ran it
        assert (report.parent / stage / "commands.txt").read_text() == "python -m midibert.run experiment=demo\n"


def test_stages_scratch_column_and_seeds(tmp_path):
    from midibert.run import _stages

    cfg = config(
        "run",
        ["experiment=cpu_reference", "pipeline.models=[bert,scratch,rnn]", "pipeline.seeds={style:[1,2,3]}"],
        tmp_path,
    )
    stages = {name: overrides for name, entry, overrides in _stages(cfg, tmp_path)}
    assert stages["melody-scratch"][:4] == ["seed=42", "split_seed=42", "task=melody", "model=bert"]
    assert not any(o.startswith("pretrained=") for o in stages["melody-scratch"])
    assert f"pretrained={tmp_path / 'pretrain' / 'bundle'}" in stages["melody-bert"]
    assert {n for n in stages if n.startswith("style-bert")} == {f"style-bert-seed{s}" for s in (1, 2, 3)}
    assert stages["style-rnn-seed2"][:2] == ["seed=2", "split_seed=42"]  # one test set for every seed
    assert "melody-skyline" in stages and next(iter(stages)) == "pretrain"
    performance = config("run", ["experiment=cpu_reference_performance"], tmp_path)
    stages = {name: overrides for name, entry, overrides in _stages(performance, tmp_path)}
    assert "task.tokenizer=cp-performance" in stages["emotion-features-seed1"]  # baselines read the models' tokens


def test_one_run_pretrains_several_encoders_and_each_task_starts_from_its_own(tmp_path):
    """experiment=release: the score encoder for the note tasks, the performance encoder for the
    piece tasks, both pre-trained in the same run; an unknown encoder name is refused."""
    from midibert.run import _stages

    release = config("run", ["experiment=release"], tmp_path)
    stages = {name: overrides for name, entry, overrides in _stages(release, tmp_path)}
    assert list(stages)[:2] == ["pretrain-score", "pretrain-performance"]
    assert "data=pretrain_reference" in stages["pretrain-score"]
    assert "data=pretrain_performance" in stages["pretrain-performance"]
    for task, encoder in (
        ("melody", "score"),
        ("velocity", "score"),
        ("style", "performance"),
        ("emotion", "performance"),
    ):
        bert = next(o for n, o in stages.items() if n.startswith(f"{task}-bert"))
        assert f"pretrained={tmp_path / f'pretrain-{encoder}' / 'bundle'}" in bert
    wrong = config("run", ["experiment=release", "pipeline.encoder_of.style=audio"], tmp_path)
    with pytest.raises(ValueError, match="encoder_of.style=audio: no such encoder in pipeline.encoders"):
        _stages(wrong, tmp_path)


def test_split_with_seed_tests_every_model_on_each_split(tmp_path):
    from hydra import initialize_config_dir

    from midibert.run import _check_splits, _stages
    from midibert.training import CONF_DIR

    cfg = config("run", ["experiment=cpu_reference"], tmp_path)  # seeds 1-3, emotion split with each
    stages = {name: overrides for name, entry, overrides in _stages(cfg, tmp_path)}
    for model in ("bert", "scratch", "rnn", "features", "majority"):
        for seed in (1, 2, 3):
            assert stages[f"emotion-{model}-seed{seed}"][:2] == [f"seed={seed}", f"split_seed={seed}"]
    assert "emotion-features" not in stages
    assert stages["style-bert-seed2"][:2] == ["seed=2", "split_seed=42"]  # Pianist8's published split
    assert stages["style-features"][:2] == ["seed=42", "split_seed=42"]
    release = config("run", ["experiment=release"], tmp_path)  # the packaged models: seed 1 on split 1 first
    stages = {name: overrides for name, entry, overrides in _stages(release, tmp_path)}
    assert stages["emotion-bert-seed1"][:2] == ["seed=1", "split_seed=1"] and "emotion-features-seed1" in stages
    with pytest.raises(ValueError, match="melody, to which pipeline.seeds gives no seeds"):
        _stages(config("run", ["experiment=cpu_reference", "pipeline.split_with_seed=[melody]"], tmp_path), tmp_path)
    # the demo pre-trains on its sample corpus' training split: other splits would test on what it learned
    demo = config(
        "run", ["experiment=demo", "pipeline.seeds={emotion:[1,2]}", "pipeline.split_with_seed=[emotion]"], tmp_path
    )
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        with pytest.raises(ValueError, match="emotion's dataset sample is in the pre-training corpus"):
            _check_splits(demo, _stages(demo, tmp_path))
        _check_splits(cfg, _stages(cfg, tmp_path))  # EMOPIA is not in cpu_reference's corpus


def test_a_refit_trains_from_the_encoder_beside_its_rules_on_the_held_out_split(tmp_path):
    """pipeline.refit: the emotion recipe once more from the performance encoder, and its rule
    baselines, all reading the held-out songs as their test split."""
    from midibert.run import _stages

    asked = "+pipeline.refit.emotion=['+task.data.options.refit=true']"
    release = config("run", ["experiment=release", asked], tmp_path)
    stages = {name: overrides for name, entry, overrides in _stages(release, tmp_path)}
    refit = stages["emotion-bert-refit"]
    assert refit[:2] == ["seed=42", "split_seed=42"] and "+task.data.options.refit=true" in refit
    assert refit[-1] == f"pretrained={tmp_path / 'pretrain-performance' / 'bundle'}"
    seed1 = stages["emotion-bert-seed1"]
    assert refit[2:] == [*seed1[2:-1], "+task.data.options.refit=true", seed1[-1]]  # the seeds' recipe, nothing else
    for rule in ("majority", "features"):
        assert "+task.data.options.refit=true" in stages[f"emotion-{rule}-refit"]
        assert "+task.data.options.refit=true" not in stages[f"emotion-{rule}-seed1"]
    assert not any(name.endswith("-refit") and not name.startswith("emotion-") for name in stages)
    with pytest.raises(ValueError, match="refit.emotion: trains the task's pre-trained BERT model"):
        _stages(
            config("run", ["experiment=release", "pipeline.models=[rnn]", "pipeline.then=null", asked], tmp_path),
            tmp_path,
        )


def test_a_task_goes_on_from_its_model_once_every_other_stage_is_done(tmp_path, monkeypatch):
    """pipeline.then: the melody model fine-tuned once more from its own bundle, with the task's
    overrides and then its own; with stages side by side it waits for the one it goes on from."""
    from hydra import initialize_config_dir

    import midibert.run as run
    from midibert.training import CONF_DIR

    release = config("run", ["experiment=release"], tmp_path)
    stages = {name: overrides for name, entry, overrides in run._stages(release, tmp_path)}
    then = stages["melody-bert-then"]
    assert then[-1] == f"pretrained={tmp_path / 'melody-bert' / 'bundle'}"
    assert then.index("trainer.max_steps=800") > then.index("trainer.max_steps=2400")  # its own overrides win
    assert "+task.data.options.extra_train=madrigals" in then and "+task.data.options.timing=both" in then
    with pytest.raises(ValueError, match="then.style: goes on from the task's one pre-trained BERT model"):
        run._stages(config("run", ["experiment=release", "+pipeline.then.style=[]"], tmp_path), tmp_path)
    order = []
    monkeypatch.setattr(run, "_run_stage", lambda entry, cfg, threads, started: order.append(cfg.run_dir))
    monkeypatch.setattr(run, "_run_parallel", lambda stages, jobs, started: order.extend(s[-1][-1] for s in stages))
    monkeypatch.setattr(run, "_plots", lambda root: None)
    monkeypatch.setattr("midibert.report.load_runs", lambda roots: [])
    monkeypatch.setattr("midibert.report.table", lambda runs: "")
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        run.run_pipeline(release, command="python -m midibert.run experiment=release")
    names = [str(o).removeprefix("run_dir=").rsplit("/", 1)[-1] for o in order]
    assert names[:2] == ["pretrain-score", "pretrain-performance"] and names[-1] == "melody-bert-then"
    assert len(names) == len(stages) and release.pipeline.jobs > 1
    # resumed with every other stage done, it still runs
    for name, entry, _ in run._stages(release, Path(release.run_dir)):
        if not name.endswith(run.THEN):
            done = Path(release.run_dir) / name / ("bundle" if entry == "pretrain" else "results.json")
            done.parent.mkdir(parents=True, exist_ok=True)
            done.mkdir() if entry == "pretrain" else done.write_text("{}")
    order.clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        run.run_pipeline(release, command="python -m midibert.run experiment=release")
    assert [str(o).rsplit("/", 1)[-1] for o in order] == ["melody-bert-then"]
