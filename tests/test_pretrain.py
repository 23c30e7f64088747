"""Masked-LM pre-training: configs compose, smoke runs, loss falls on real MIDI, resume is exact."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from safetensors.numpy import load_file

from midibert.bundle import load_bundle
from midibert.pretrain import pretrain
from midibert.tokenize import Tokenizer
from midibert.training.datamodule import PretrainDataModule
from midibert.training.masked_lm import MaskedLM
from tests.conftest import shared
from tests.hydra_configs import EXPERIMENTS, config

PRIMARY = {
    "smoke": "pretrain",
    "cpu_small": "pretrain",
    "score_bert": "pretrain",
    "performance_bert": "pretrain",
    "finetune_smoke": "finetune",
    "demo": "run",
    "demo_real": "run",
    "cpu_reference": "run",
    "cpu_reference_performance": "run",
    "release": "run",
}


@pytest.mark.parametrize("experiment", sorted(EXPERIMENTS))
def test_every_experiment_composes(experiment, tmp_path):
    assert experiment in PRIMARY, f"conf/experiment/{experiment}.yaml: say which entry point it is for"
    cfg = config(PRIMARY[experiment], [f"experiment={experiment}"], tmp_path)
    assert cfg.name and cfg.run_dir
    if PRIMARY[experiment] == "run":  # each stage of a pipeline composes too
        from midibert.run import _stages

        for _name, entry, overrides in _stages(cfg, tmp_path):
            config(entry, [*cfg.pipeline.common, *overrides], tmp_path)


@pytest.mark.parametrize(
    "group,option",
    [("trainer", t) for t in ("cpu", "gpu", "ddp", "ddp_cpu", "fsdp", "multi_node")]
    + [("logger", lg) for lg in ("csv", "wandb", "tensorboard", "none")],
)
def test_trainer_and_logger_groups_compose(group, option, tmp_path):
    cfg = config("pretrain", [f"{group}={option}"], tmp_path)
    assert (not cfg[group]) == (option == "none")


def metrics(run_dir) -> list[dict]:
    with open(run_dir / "logs" / "metrics.csv") as f:
        return list(csv.DictReader(f))


def test_smoke_runs_end_to_end(tmp_path):
    cfg = config("pretrain", ["experiment=smoke"], tmp_path)
    bundle = load_bundle(pretrain(cfg))
    assert bundle.task is None and bundle.tokenizer.spec == "cp-score"
    rows = metrics(tmp_path / "runs" / "pretrain" / "smoke")
    assert any(r.get("train/loss") for r in rows) and any(r.get("val/loss") for r in rows)
    # one corpus, so its own scores are the overall ones
    last = [r for r in rows if r.get("val/sample/acc_Pitch")][-1]
    assert last["val/sample/acc_Pitch"] == last["val/acc_Pitch"]
    assert last["val/sample/base_prev_Pitch"] == last["val/base_prev_Pitch"]


def test_validation_scores_each_corpus_apart():
    """Per-corpus counts partition the overall ones exactly, copy baselines included."""
    tok = Tokenizer.from_spec("cp-score")
    module = MaskedLM(
        encoder={"preset": "bert-tiny"},
        vocab_sizes=tok.vocab_sizes,
        families=tok.families,
        optim={},
        mask={},
        sources=["pop909", "asap"],
    )
    g = torch.Generator().manual_seed(0)
    ids = torch.stack([torch.randint(4, v, (6, 40), generator=g) for v in tok.vocab_sizes], -1)
    ids[:, :, 0] = torch.randint(4, 6, (6, 40), generator=g)  # few Bar values, so copying sometimes hits
    attention = torch.ones(6, 40, dtype=torch.bool)
    attention[1, 30:] = False
    batch = {"input_ids": ids, "attention_mask": attention, "source": torch.tensor([0, 1, 1, 0, 1, 0])}
    inputs, targets, where = module._masked(batch, g)
    module.on_validation_epoch_start()
    module._count(batch, module.net(inputs, attention), targets, where)
    c = module._counts
    assert torch.equal(c["by_source"].sum(0), torch.stack([c["model"], c["prev"], c["n"]]))
    assert c["by_source"][0, 2, 0] == where[batch["source"] == 0].sum()
    assert c["prev"][0] > 0


def test_corpora_are_named_once_each():
    dm = PretrainDataModule(datasets=[{"name": "asap"}, {"name": "pop909"}, {"name": "asap"}])
    assert dm.source_names == ["asap", "pop909", "asap#2"]


def test_loss_falls_on_real_midi(tmp_path):
    shared("pop909")
    cfg = config(
        "pretrain",
        [
            "experiment=smoke",
            "data=pretrain_score",
            "data.seq_len=128",
            "data.batch_size=8",
            "data.datasets=[{name: pop909, path: '${paths.data_root}/pop909', max_pieces: 6}]",
            "trainer.max_steps=60",
            "trainer.val_check_interval=30",
            "optim.lr=3e-3",
            "optim.warmup_steps=5",
        ],
        tmp_path,
    )
    pretrain(cfg)
    losses = [float(r["train/loss"]) for r in metrics(tmp_path / "runs" / "pretrain" / "smoke") if r.get("train/loss")]
    assert np.mean(losses[-10:]) < 0.8 * np.mean(losses[:5]), losses


class _Killed(Exception):
    pass


class _KillAt(pl.Callback):
    """Stops a run the hard way (an exception, as a crash or a kill would) before a given step."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_start(self, trainer, *args):
        if trainer.global_step == self.step:
            raise _Killed


@pytest.mark.parametrize("objective", ["mlm", "electra"])
def test_resume_gives_the_same_weights(objective, tmp_path):
    args = [
        "experiment=smoke",
        f"objective={objective}",
        "trainer.max_steps=8",
        "trainer.val_check_interval=4",
        "callbacks.checkpoint.every_n_train_steps=4",
    ]
    whole = load_file(str(pretrain(config("pretrain", args, tmp_path / "a")) / "model.safetensors"))
    killed = config("pretrain", args, tmp_path / "b")
    with pytest.raises(_Killed):
        pretrain(killed, callbacks=[_KillAt(5)])
    before = metrics(tmp_path / "b" / "runs" / "pretrain" / "smoke")
    assert before and max(int(r["step"]) for r in before) >= 4  # the kill came after the step-4 checkpoint
    resumed = load_file(
        str(pretrain(config("pretrain", [*args, "ckpt_path=last"], tmp_path / "b")) / "model.safetensors")
    )
    assert whole.keys() == resumed.keys()
    for k in whole:
        np.testing.assert_array_equal(whole[k], resumed[k], err_msg=k)

    # the resumed run's metrics keep every step, as the uninterrupted run's do, each once
    def logged(run: str) -> list[tuple[str, str]]:
        rows = metrics(tmp_path / run / "runs" / "pretrain" / "smoke")
        return sorted((r["step"], k) for r in rows for k, v in r.items() if v and k not in ("step", "epoch"))

    assert logged("b") == logged("a")
    # and the run really was interrupted: a run that stops early ends elsewhere
    short = load_file(
        str(pretrain(config("pretrain", [*args, "trainer.max_steps=4"], tmp_path / "c")) / "model.safetensors")
    )
    assert any(not np.array_equal(whole[k], short[k]) for k in whole)


class _WeightsAtStart(pl.Callback):
    def on_train_start(self, trainer, module):
        self.encoder = {k: v.clone() for k, v in module.net.bert.state_dict().items()}
        self.head = {k: v.clone() for k, v in module.net.head.state_dict().items()}


def test_pretraining_goes_on_from_a_bundle_with_its_head(tmp_path):
    import json
    import shutil

    from midibert.bundle import HEAD_FILE, load_mlm_head

    first = pretrain(config("pretrain", ["experiment=smoke"], tmp_path / "a"))
    saved, head = load_bundle(first).state_dict, load_mlm_head(first)
    assert head and all(k.startswith("heads.") for k in head)
    # the bundle's encoder size wins over the config's (bert-small here)
    args = ["experiment=smoke", "encoder=bert-small", f"init_from={first}"]
    seen = _WeightsAtStart()
    second = load_bundle(pretrain(config("pretrain", args, tmp_path / "b"), callbacks=[seen]))
    for got, want in ((seen.encoder, saved), (seen.head, head)):
        assert got.keys() == want.keys()
        for k in want:
            torch.testing.assert_close(got[k], want[k], rtol=0, atol=0, msg=k)
    assert second.model_config == load_bundle(first).model_config
    assert any(not torch.equal(second.state_dict[k], saved[k]) for k in saved)  # and it trained on

    with pytest.raises(ValueError, match=f"{HEAD_FILE} does not fit .*tie_embeddings=True"):
        pretrain(config("pretrain", [*args, "mask.tie_embeddings=true"], tmp_path / "c"))

    old = tmp_path / "old"  # a bundle from before heads were kept: the head starts afresh
    shutil.copytree(first, old)
    (old / HEAD_FILE).unlink()
    seen = _WeightsAtStart()
    pretrain(config("pretrain", ["experiment=smoke", f"init_from={old}"], tmp_path / "d"), callbacks=[seen])
    assert all(torch.equal(seen.encoder[k], saved[k]) for k in saved)
    assert not torch.equal(seen.head["heads.0.weight"], head["heads.0.weight"])

    task = tmp_path / "task"  # a fine-tuned model is not something to pre-train on from
    shutil.copytree(first, task)
    meta = json.loads((task / "config.json").read_text())
    meta.update(task={"name": "melody", "num_classes": 2}, id2label={"0": "a", "1": "b"})
    (task / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="fine-tuned melody model, not a pre-trained encoder"):
        pretrain(config("pretrain", ["experiment=smoke", f"init_from={task}"], tmp_path / "e"))


def test_distributed_data_parallel_on_cpu(tmp_path):
    """Two gloo processes through Lightning's DDP, launched as a user would from the shell."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "MIDIBERT_RUNS": str(tmp_path / "runs"), "MIDIBERT_CACHE": str(tmp_path / "cache")}
    out = subprocess.run(
        [sys.executable, "-m", "midibert.pretrain", "experiment=smoke", "trainer=ddp_cpu"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    run = tmp_path / "runs" / "pretrain" / "smoke"
    assert load_bundle(run / "bundle").task is None
    assert (run / "train_ddp_process_1.log").is_file()  # the second rank really ran


def test_tiny_pretraining_on_pop909_beats_copying_the_previous_position(tmp_path):
    """The recipe learns token order: within a few hundred steps on real POP909 windows, masked
    Position accuracy passes the copy-previous-token baseline on the very same masked positions."""
    shared("pop909")
    data = [
        "data=pretrain_score",
        "data.datasets=[{name: pop909, path: '${paths.data_root}/pop909', weight: 1.0, max_pieces: 120, options: {}}]",
        "data.seq_len=128",
        "data.batch_size=16",
    ]
    cfg = config(
        "pretrain",
        [
            "experiment=smoke",
            *data,
            "+encoder.hidden=64",
            "+encoder.heads=4",
            "+encoder.ffn=256",
            "+encoder.emb_size=32",
            "trainer.max_steps=300",
            "trainer.val_check_interval=300",
            "optim.warmup_steps=30",
            "optim.lr=2e-3",
            f"paths.data_root={shared()}",
        ],
        tmp_path,
    )
    pretrain(cfg)
    with open(f"{cfg.run_dir}/logs/metrics.csv") as f:
        last = [r for r in csv.DictReader(f) if r.get("val/acc_Position")][-1]
    assert float(last["val/acc_Position"]) > float(last["val/base_prev_Position"]) > 0.2, last


def test_electra_keeps_the_detectors_encoder_and_scores_it_against_guessing(tmp_path):
    mlm = load_bundle(pretrain(config("pretrain", ["experiment=smoke"], tmp_path / "a")))
    run = tmp_path / "b" / "runs" / "pretrain" / "smoke"
    electra = load_bundle(pretrain(config("pretrain", ["experiment=smoke", "objective=electra"], tmp_path / "b")))
    # fine-tuning reads the same encoder either way; the generator is not kept, nor a head
    assert electra.model_config == mlm.model_config
    assert electra.state_dict.keys() == mlm.state_dict.keys()
    assert not (run / "bundle" / "mlm_head.safetensors").exists()
    last = [r for r in metrics(run) if r.get("val/detect_acc_Pitch")][-1]
    # the trivial detector says "original" everywhere: right exactly where nothing was replaced
    assert 0.7 < float(last["val/detect_base_Pitch"]) < 1.0
    assert last["val/acc_Pitch"] and any(r.get("train/detection_loss") for r in metrics(run))
    with pytest.raises(ValueError, match="init_from goes on with masked LM only"):
        pretrain(config("pretrain", ["experiment=smoke", "objective=electra", f"init_from={run}/bundle"], tmp_path))
    with pytest.raises(ValueError, match="objective must be one of"):
        pretrain(config("pretrain", ["experiment=smoke", "objective=gpt"], tmp_path))


def test_electra_labels_a_sample_equal_to_the_original_as_original():
    from midibert.training.electra import Electra

    tok = Tokenizer.from_spec("cp-score")
    module = Electra(
        encoder={"preset": "bert-tiny"}, vocab_sizes=tok.vocab_sizes, families=tok.families, optim={}, mask={}
    )
    g = torch.Generator().manual_seed(0)
    ids = torch.stack([torch.randint(4, v, (2, 30), generator=g) for v in tok.vocab_sizes], -1)
    batch = {"input_ids": ids, "attention_mask": torch.ones(2, 30, dtype=torch.bool)}
    masked = module._masked(batch, g)
    where = masked[2]

    def oracle(inputs, attention):  # a generator certain of every original value
        return [torch.nn.functional.one_hot(ids[..., f], v).float() * 1e4 for f, v in enumerate(tok.vocab_sizes)]

    module.net.generator.forward = oracle
    out, _ = module._losses(batch, masked, g)
    c = out["counts"]
    assert torch.equal(c["detect_kept"], c["detect_n"]) and int(c["detect_n"][0]) == 60

    module.net.generator.forward = lambda inputs, attention: [  # one certain of a wrong value
        torch.nn.functional.one_hot((ids[..., f] - 4 + 1) % (v - 4) + 4, v).float() * 1e4
        for f, v in enumerate(tok.vocab_sizes)
    ]
    out, _ = module._losses(batch, masked, g)
    assert torch.equal(out["counts"]["detect_kept"], torch.full((4,), 60 - int(where.sum())))


def test_init_from_a_packaged_encoder_by_name():
    """`init_from=midibert-small-score` finds the packaged encoder and its masked-LM head."""
    from midibert.bundle import load_mlm_head
    from midibert.pretrain import _start_from
    from midibert.pretrained import ENCODER, packaged

    names = [n for n, m in packaged().items() if m["task"] == ENCODER]
    assert names, "no packaged encoder"
    for name in names:
        start = _start_from(name)
        assert start.task is None and load_mlm_head(start.path)
