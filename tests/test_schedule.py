"""The optimizer schedule: warmup then cosine decay to zero, with layer-wise decay keeping both."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch

from midibert.heads import TokenClassifier
from midibert.model import BertConfig, MidiBert
from midibert.training.finetuner import FineTuner


def _lrs(layer_decay: float, steps: int = 100, warmup: int = 10) -> tuple[list[list[float]], list[dict]]:
    cfg = BertConfig.preset("bert-tiny", vocab_sizes=[8, 8])
    net = TokenClassifier(MidiBert(cfg), num_classes=3)
    module = FineTuner(
        net, "token", 3, {"lr": 1e-3, "weight_decay": 0.05, "warmup_steps": warmup, "layer_decay": layer_decay}
    )
    module.trainer = pl.Trainer(max_steps=steps, logger=False, enable_checkpointing=False)
    conf = module.configure_optimizers()
    opt, sched = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    seen = []
    for _ in range(steps):
        seen.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step()
    return seen, opt.param_groups


@pytest.mark.parametrize("layer_decay", [1.0, 0.5])
def test_warmup_decay_and_weight_decay_survive_layer_decay(layer_decay):
    lrs, groups = _lrs(layer_decay)
    top = max(range(len(groups)), key=lambda i: lrs[9][i])  # the head's group has the largest rate
    assert lrs[0][top] == pytest.approx(1e-3 / 10)  # warmup: 1/10 of the peak at step 0
    assert lrs[9][top] == pytest.approx(1e-3)  # the peak at the end of warmup
    assert lrs[55][top] == pytest.approx(1e-3 * 0.5 * (1 + torch.cos(torch.tensor(torch.pi * 45 / 90)).item()))
    assert lrs[-1][top] < 1e-3 * 0.01  # decayed to (nearly) zero at the budget's end
    # every group follows the same schedule: ratios between groups never change
    for step in (0, 9, 55, 99):
        ratios = [lr / lrs[step][top] for lr in lrs[step]]
        assert ratios == pytest.approx([lr / lrs[9][top] for lr in lrs[9]])
    if layer_decay != 1.0:  # lower layers get smaller rates
        assert min(lrs[9]) == pytest.approx(1e-3 * layer_decay**3)
    # the configured weight decay on matrices, none on biases and norms
    assert {g["weight_decay"] for g in groups} == {0.05, 0.0}


def test_a_run_bounded_by_time_alone_decays_to_zero_at_its_time_budget(monkeypatch):
    import pytorch_lightning.callbacks.timer as timer_module

    clock = {"now": 1000.0}
    monkeypatch.setattr(timer_module.time, "monotonic", lambda: clock["now"])
    cfg = BertConfig.preset("bert-tiny", vocab_sizes=[8, 8])
    module = FineTuner(
        TokenClassifier(MidiBert(cfg), num_classes=3), "token", 3, {"lr": 1e-3, "weight_decay": 0.0, "warmup_steps": 10}
    )
    module.trainer = pl.Trainer(max_steps=-1, max_time={"seconds": 100}, logger=False, enable_checkpointing=False)
    conf = module.configure_optimizers()
    opt, sched = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    timer = next(c for c in module.trainer.callbacks if isinstance(c, pl.callbacks.Timer))
    timer.on_train_start(module.trainer, module)
    lr = {}
    for step in range(1, 41):
        clock["now"] += 1 if step <= 10 else 3  # warmup ends 10 s in; then 3 s a step
        opt.step()
        sched.step()
        lr[step] = opt.param_groups[0]["lr"]
    assert lr[9] == pytest.approx(1e-3)  # the step count still drives warmup
    assert lr[10] == pytest.approx(1e-3)  # decay starts when warmup ends, 10 s in
    assert lr[25] == pytest.approx(0.5e-3)  # 55 s: half of the 90 s left after warmup
    assert lr[30] == pytest.approx(1e-3 * 0.5 * (1 + torch.cos(torch.tensor(torch.pi * 60 / 90)).item()))
    assert lr[40] == pytest.approx(0.0, abs=1e-12)  # 100 s: the budget, where the Timer stops the run


@pytest.mark.parametrize(("clip", "precision", "fused"), [(1.0, "bf16-mixed", False), (0.0, "bf16-mixed", None),
                                                           (1.0, "32-true", None)])  # fmt: skip
def test_a_trainer_that_clips_under_mixed_precision_gets_the_unfused_optimizer(monkeypatch, clip, precision, fused):
    """Lightning refuses to clip a fused AdamW's gradients under mixed precision (every GPU run
    failed at its first step): such a trainer gets the unfused kernels; others the default."""
    from types import SimpleNamespace

    from midibert.training import optim

    asked, real = {}, optim.adamw

    def adamw(*args, fused=None, **kwargs):
        asked["fused"] = fused
        return real(*args, fused=fused, **kwargs)

    monkeypatch.setattr(optim, "adamw", adamw)
    param = torch.nn.Parameter(torch.zeros(2))
    trainer = SimpleNamespace(gradient_clip_val=clip, precision=precision, callbacks=[], max_steps=10)
    optim.adamw_with_schedule(SimpleNamespace(trainer=trainer), [{"params": [param]}], lr=1e-3, warmup_steps=1)
    assert asked["fused"] is fused
