"""Fine-tune and evaluate one task, driven by Hydra:

    python -m midibert.finetune task=melody model=bert pretrained=runs/pretrain/score/bundle
    python -m midibert.finetune task=style model=rnn
    python -m midibert.finetune task=melody model=skyline      # baselines: skyline, majority, features

Trains with early stopping on validation accuracy, restores the best checkpoint, predicts the
test split, writes results.json / results.md / confusion matrices, and saves the model as a
bundle for `midibert.classify`.
"""

from __future__ import annotations

import logging
from pathlib import Path

from midibert.errors import require_extra

require_extra("train", main=__name__ == "__main__")

import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf

from midibert.tasks import REGISTRY, level
from midibert.training import (
    CONF_DIR,
    build_trainer,
    check_entry,
    reports_errors,
    resume_path,
    run_hydra,
    save_config,
    seed_everything,
)

log = logging.getLogger("midibert")


def class_names(cfg: DictConfig, dm) -> list[str]:
    """The task's classes: its config's, or (a task on the user's own labels) those read from the data."""
    return list(cfg.task.class_names or dm.classes)


def _results(cfg: DictConfig, levels: dict, dm, scale: dict) -> dict:
    # a BERT fine-tuned without a pre-trained encoder is the scratch baseline, named as such
    model = "bert-scratch" if cfg.model.arch == "bert" and not scale.get("pretrained") else cfg.model.arch
    return {
        "task": cfg.task.name,
        "model": model,
        "representation": dm.tokenizer.config.representation,
        "dataset": cfg.task.data.dataset,
        "class_names": class_names(cfg, dm),
        "levels": levels,
        "scale": scale,
        "seed": cfg.seed,
        "split_seed": cfg.split_seed,
    }


def concat_batches(predictions: list[dict]) -> dict[str, np.ndarray]:
    """Join predicted batches whose widths differ (batches are cut to their longest window, and
    short pieces such as EMOPIA's clips make narrower ones): pad per-token arrays to the widest
    with what marks "nothing here" (probability 0, label IGNORE, note index -1)."""
    from midibert.tokenize.labels import IGNORE

    fill = {"probs": 0.0, "labels": IGNORE, "note_index": -1}
    out = {}
    for k in predictions[0]:
        arrays = [p[k].numpy() for p in predictions]
        if arrays[0].ndim == (3 if k == "probs" else 2):  # (B, L) or (B, L, C): per token
            width = max(a.shape[1] for a in arrays)
            arrays = [
                np.pad(a, [(0, 0), (0, width - a.shape[1])] + [(0, 0)] * (a.ndim - 2), constant_values=fill[k])
                for a in arrays
            ]
        out[k] = np.concatenate(arrays)
    return out


def evaluate_predictions(cfg: DictConfig, predictions: list[dict], names: list[str]) -> dict:
    """Window-level and note- or piece-level metrics of test predictions."""
    from midibert.evaluate import evaluate_sequence_task, evaluate_token_task

    cat = concat_batches(predictions)
    if level(cfg.task.level) == "note":
        return evaluate_token_task(cat["probs"], cat["labels"], cat["note_index"], cat["piece"], names)
    return evaluate_sequence_task(cat["probs"], cat["labels"], cat["piece"], names)


def _baselines(cfg: DictConfig) -> tuple[str, ...]:
    """The rule baselines the task's registry entry names (a task not in it: those its config lists)."""
    task = REGISTRY.get(cfg.task.name)
    return task.baselines if task else tuple(cfg.task.get("baselines") or ())


def rule_baseline(cfg: DictConfig, dm) -> dict:
    """Skyline (highest sounding pitch is melody), majority class, or (piece tasks) a logistic
    regression on note statistics fitted to the train split, on the test split's notes / pieces."""
    from midibert.baselines import skyline_classes, statistics_classifier, statistics_matrix
    from midibert.evaluate import metrics

    names = class_names(cfg, dm)
    if cfg.model.arch == "majority":
        majority = int(np.argmax(dm.train_class_counts()))
        y = dm.test_targets()  # one label per note (token tasks) or per piece
        return {dm.eval_level: metrics(y, np.full_like(y, majority), names)}
    if cfg.model.arch == "features":
        if dm.eval_level != "piece":
            raise ValueError(f"the note-statistics baseline is for piece-level tasks, not {cfg.task.name!r}")
        # performance tokens carry velocity, score tokens do not
        x = {split: statistics_matrix(dm.encodings(split), dm.tokenizer.config) for split in ("train", "test")}
        clf = statistics_classifier(cfg.model.get("C", 1.0))
        clf.fit(x["train"], dm.piece_labels["train"])
        return {"piece": metrics(dm.test_targets(), clf.predict(x["test"]), names)}
    if "skyline" not in _baselines(cfg):
        raise ValueError(f"the skyline baseline is for melody tasks, not {cfg.task.name!r}")
    y_true, y_pred = [], []
    for enc, labels in dm.test_notes():  # Encoding and true class per note
        keep = enc.notes.tokenized
        y_pred.append(skyline_classes(enc.notes.pitch[keep], enc.notes.onset[keep], len(names)))
        y_true.append(labels[keep])
    return {"note": metrics(np.concatenate(y_true), np.concatenate(y_pred), names)}


def finetune(cfg: DictConfig, callbacks: list | None = None) -> Path:
    """Run one fine-tuning (or rule baseline) job (extra Lightning `callbacks` optional); returns the run directory."""
    import torch

    from midibert.bundle import load_bundle, save_bundle
    from midibert.evaluate import write_results
    from midibert.network import build_network, hidden_families
    from midibert.pretrained import resolve
    from midibert.training.finetuner import FineTuner
    from midibert.training.masked_lm import model_config

    check_entry(cfg, "finetune")
    if cfg.task.get("key_to_c") and cfg.task.get("transpose"):
        raise ValueError(
            f"task.transpose={cfg.task.transpose} does nothing when task.key_to_c moves every window to C "
            "(emotion's default): set task.key_to_c=false to transpose"
        )
    seed_everything(cfg.seed)
    save_config(cfg, cfg.run_dir)
    run_dir = Path(cfg.run_dir)
    arch = cfg.model.arch
    # a bundle directory, a packaged encoder's name (midibert-small-score) or a Hub id
    bundle = load_bundle(resolve(cfg.pretrained)) if cfg.get("pretrained") and arch == "bert" else None
    tokenizer = bundle.tokenizer.spec if bundle else cfg.task.tokenizer
    dm = hydra.utils.instantiate(
        cfg.task.data, tokenizer=tokenizer, seed=cfg.seed, split_seed=cfg.split_seed, _convert_="all"
    )
    dm.prepare_data()
    dm.setup("fit")
    tok = dm.tokenizer

    if arch in ("skyline", "majority", "features"):
        write_results(run_dir, _results(cfg, rule_baseline(cfg, dm), dm, {"rule": arch}))
        return run_dir

    config = bundle.model_config if bundle else model_config(cfg.encoder, tok.vocab_sizes)
    task = {
        "name": cfg.task.name,
        "level": level(cfg.task.level),
        "num_classes": len(class_names(cfg, dm)),
        "arch": arch,
        "head": OmegaConf.to_container(cfg.model.head, resolve=True),
        "seq_len": dm.seq_len,
        "hide_families": [f for f in cfg.task.hide_families if f in tok.families],
        "key_to_c": bool(cfg.task.get("key_to_c", False)),
    }
    if arch == "bert":
        task["head"]["freeze_encoder"] = bool(cfg.model.get("freeze", False))
    if cfg.task.name not in REGISTRY:  # a task of the user's own: the bundle describes it (tasks.of_bundle)
        task["spec"] = {
            "dataset": cfg.task.data.dataset,
            "label": cfg.task.data.get("label_key") or cfg.task.data.get("label") or "",
            "baselines": list(_baselines(cfg)),
        }
    if getattr(dm, "feature_norm", None):  # the piece's note statistics joined to its pooled encoding
        if arch != "bert":
            raise ValueError("task.piece_features: only the BERT head reads piece features (model=bert)")
        task["features"] = dm.feature_norm
        task["head"]["n_features"] = len(dm.feature_norm["mean"])
    if getattr(dm, "note_features", None):  # a rule's answer per note joined to each token's encoding
        if arch != "bert":
            raise ValueError("task.note_features: only the BERT head reads note features (model=bert)")
        task["note_features"] = list(dm.note_features)
        task["head"]["n_features"] = len(dm.note_features)
    net = build_network(task, config, bundle.encoder_state() if bundle else None)
    hide = hidden_families(task, tok.families)
    weights = dm.class_weights() if cfg.task.get("class_weights") else None
    module = FineTuner(
        net,
        level(cfg.task.level),
        task["num_classes"],
        OmegaConf.to_container(cfg.optim, resolve=True),
        seed=cfg.seed,
        class_weights=weights,
        hide_families=hide,
        transpose=cfg.task.get("transpose", 0),
        pitch_ids=tok.pitch_ids(),
        key_to_c=task["key_to_c"],
    )
    trainer = build_trainer(cfg, callbacks)
    trainer.fit(module, datamodule=dm, ckpt_path=resume_path(cfg.get("ckpt_path"), cfg.run_dir))

    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    if best:  # evaluate the best validation checkpoint, not the last step
        state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
        module.load_state_dict(state)
        log.info("restored best checkpoint %s", best)
    predictions = trainer.predict(module, dataloaders=dm.test_dataloader())
    scale = {
        "params_m": round(sum(p.numel() for p in net.parameters()) / 1e6, 2),
        "steps": trainer.global_step,
        "pretrained": str(cfg.get("pretrained")) if bundle else None,
        "train_windows": dm.n_train_windows,
    }
    if trainer.is_global_zero:
        write_results(run_dir, _results(cfg, evaluate_predictions(cfg, predictions, class_names(cfg, dm)), dm, scale))
        id2label = dict(enumerate(class_names(cfg, dm)))
        save_bundle(run_dir / "bundle", net, config, tok, task=task, id2label=id2label)
        log.info("results in %s", run_dir)
    return run_dir


@hydra.main(config_path=CONF_DIR, config_name="finetune", version_base="1.3")
@reports_errors
def main(cfg: DictConfig) -> None:
    finetune(cfg)


if __name__ == "__main__":
    run_hydra(main)
