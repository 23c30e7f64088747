"""Export a main-job run's fine-tuned BERT models, and a pre-training's encoder, as the bundles
midibert ships, each with a model card, and list them in the models index (`midibert models`):

    python -m midibert.run experiment=release
    midibert release export runs/run/release midibert/models
    midibert release encoder runs/run/release/pretrain-score midibert/models

For each task's pre-trained BERT run (its results.json says so; of several seeds the lowest): the
weights are stored compactly (int8 by default; encoders int4, so the task models and the encoders
fit the package's 20 MB budget); the shipped model is measured again on the test split through
`midibert.classify`, as users run it, and compared with the fp32 original (a note-level model
whose stored weights, computed in fp32, agree on fewer than 99.5 % of the test notes is refused);
a model that does not beat every rule baseline of its task on its test split is refused; its
licence comes from every dataset it learned from, pre-training included (refused where one
states no terms we can repeat); a result of benchmarks/melody_cross_domain.py given for a run's
bundle (`--cross-domain`) joins its card; and MODEL_CARD.md says all of it, with the commands. Bundles are
written whole before the index names them.
"""

from __future__ import annotations

from midibert.errors import require_extra

require_extra("train")

import json
import os
import shutil
from pathlib import Path

from omegaconf import OmegaConf

from midibert.bundle import CARD_FILE, WEIGHTS_FILE, load_bundle, save_bundle, weights_digest
from midibert.fsutil import publish_dir, write_atomic
from midibert.model import BertConfig
from midibert.pretrained import INDEX_FILE
from midibert.tasks import REGISTRY, Task, level, of_bundle

MIN_AGREEMENT = 0.995  # of test notes, compact weights vs fp32
SPLITS = {  # how the fine-tuning dataset is split, where it is not a seeded group-disjoint split
    "pop909": "MidiBERT-Piano's published split of the 865 songs in 4/4",
    "pianist8": "MidiBERT-Piano's published split",
}
GRIDS = {  # what a tokenizer kind keeps of a file, for the card's limits
    "score": "onsets and durations on a sixteenth-note grid, velocities and tempo ignored",
    "performance": "onsets and durations on a 48th-note grid (sixteenths and triplets), velocities and tempo kept",
}


def licence_terms(datasets: list[str]) -> tuple[str, dict[str, str]]:
    """(short terms for the table, dataset -> its licence) of a model trained on `datasets`, pre-training
    included: a model inherits the terms of every dataset it learned from, so the strictest ones
    apply. Refuses a dataset whose terms are unknown: such a model cannot be shipped."""
    from midibert.datasets import get_info
    from midibert.datasets.download import load_manifest

    manifest = load_manifest()
    licences = {}
    for name in dict.fromkeys(datasets):
        if get_info(name).licence:
            lic = get_info(name).licence
        elif name in manifest and manifest[name].get("license"):
            lic = manifest[name]["license"]
        else:
            raise ValueError(
                f"{name}: no licence recorded in midibert/data/datasets.json; "
                f"a model trained on it cannot be shipped with stated terms"
            )
        licences[name] = lic
    terms = " ".join(licences.values())
    limits = [
        word
        for word, applies in (
            ("research use only", "not stated" in terms),
            ("non-commercial", "NC" in terms),
            ("share-alike", "SA" in terms),
        )
        if applies
    ]
    return (", ".join(limits) if limits else "MIT"), licences


def _preset(cfg: BertConfig) -> str:
    """The preset a model config was made from, else its shape."""
    for name, (layers, hidden, heads, ffn, emb) in BertConfig.PRESETS.items():
        if (cfg.layers, cfg.hidden, cfg.heads, cfg.ffn, cfg.emb_size) == (layers, hidden, heads, ffn, emb):
            return name
    return f"{cfg.layers}x{cfg.hidden}"


def _command(run_dir: Path, *stages: Path) -> str:
    """The main-job commands that made `stages` of `run_dir` (a model's lineage: its pre-training,
    the fine-tuning it went on from, its own), as Markdown: every invocation that ran one of them
    (run.py's record in each stage), else every one that ran a stage of the run (runs made before
    the stages kept one), else Hydra's record of the last one's overrides (runs made before either)."""
    from midibert.run import COMMANDS_FILE, command_line  # the main job's module pulls in Lightning

    def recorded(folder: Path) -> list[str]:
        record = folder / COMMANDS_FILE
        return [c for c in record.read_text(encoding="utf-8").splitlines() if c.strip()] if record.is_file() else []

    commands = list(dict.fromkeys(c for stage in stages for c in recorded(stage))) or recorded(run_dir)
    if not commands:
        overrides = run_dir / ".hydra" / "overrides.yaml"
        if not overrides.is_file():
            return f"(not recorded: {overrides} is missing)"
        commands = [command_line(OmegaConf.load(overrides))]
    first, *resumed = (_portable(c) for c in commands)
    return f"`{first}`" + "".join(f", resumed by `{c}`" for c in resumed)


def _portable(command: str) -> str:
    """A recorded command without the overrides that name folders of the machine that ran it
    (`paths.*`, `run_dir=`): what a card may print."""
    import shlex

    kept = [w for w in shlex.split(command) if not w.startswith(("paths.", "run_dir="))]
    return shlex.join(kept)


def _config(run: Path) -> dict:
    """A run's config.yaml."""
    return OmegaConf.to_container(OmegaConf.load(run / "config.yaml"))


def _source(cfg: dict, run_dir: Path) -> Path | None:
    """The stage folder whose bundle a run started from (`pretrained`; None: from scratch). A
    run whose source cannot be found is refused: its pre-training's data is part of the licence."""
    if not cfg.get("pretrained"):
        return None
    written = Path(cfg["pretrained"]).parent
    # the path is as the main job wrote it, maybe relative to where it ran; the layout is run.py's
    for folder in (written, run_dir / written.name, run_dir / "pretrain"):
        if (folder / "config.yaml").is_file():
            return folder
    raise ValueError(
        f"{cfg['run_dir']}: fine-tuned from {cfg['pretrained']}, whose config.yaml (what it was "
        f"pre-trained on, hence part of the licence) is not found"
    )


def _lineage(run: Path, run_dir: Path) -> list[tuple[Path, dict]]:
    """(stage folder, config) of the stages a fine-tuned model came from, first to last: its
    pre-training (none for a model trained from scratch), the fine-tuning it went on from
    (pipeline.then), if any, and `run`."""
    chain = [(run, _config(run))]
    while (source := _source(chain[0][1], run_dir)) is not None and all(source != f for f, _ in chain):
        chain.insert(0, (source, _config(source)))
    return chain


def _split_seed(cfg: dict) -> int:
    """The seed a run's dataset split was drawn with (runs older than `split_seed` used their seed)."""
    return cfg.get("split_seed", cfg["seed"])


def _same_test_split(baseline_run: Path, ft: dict) -> bool:
    """Whether a baseline run was tested on the pieces `ft` was: read with the same test options
    (EMOPIA's held-out share, refit or not), and of a seeded split under the same split seed."""
    baseline = _config(baseline_run)
    same_reading = _test_reading(baseline["task"]["data"]) == _test_reading(ft["task"]["data"])
    return same_reading and (ft["task"]["data"]["dataset"] in SPLITS or _split_seed(baseline) == _split_seed(ft))


def _refit(cfg: dict) -> bool:
    """Whether a fine-tuning trained on every piece outside its dataset's held-out share and tested on those."""
    return bool((cfg["task"]["data"].get("options") or {}).get("refit"))


def _pretraining_datasets(pre: dict | None) -> list[str]:
    """Names of the datasets a pre-training config read (none for a model trained from scratch)."""
    return [d["name"] for d in pre["data"]["datasets"]] if pre else []


def _level_metrics(results: dict) -> dict:
    """Note- or piece-level test metrics of a results.json (what the paper reports)."""
    levels = results["levels"]
    return levels.get("note") or levels.get("piece") or levels["window"]


def _test_reading(data: dict) -> dict:
    """The reader options that make the benchmark's test split (EMOPIA's held-out share, ...):
    fine-tuning's, less POP909's timing, which the benchmark fixes, and the extra training data,
    which the test split never holds."""
    return {k: v for k, v in (data.get("options") or {}).items() if k != "timing" and not k.startswith("extra_")}


def _extra_datasets(ft: dict) -> list[str]:
    """Datasets whose pieces joined the fine-tuning dataset's training split (POP909's `extra_train`)."""
    extra = (ft["task"]["data"].get("options") or {}).get("extra_train")
    return [extra] if extra else []


def _measure(run_bundle: Path, shipped: Path, ft: dict) -> dict:
    """The shipped model's test metrics through midibert.classify as users run it (its CPU
    default path), in the model's own classes, on the dataset's benchmark reading; its agreement
    with the fp32 original computed in fp32, and the agreement of its stored weights alone
    (computed in fp32), which decides whether they may ship. Where the benchmark reads the files
    otherwise than a user's file is read (POP909, realigned to beat annotations), the same
    figures on the raw test files too, beside the skyline's on them ("raw"). Where the dataset kept
    a share of its songs out of every split (EMOPIA's holdout), the shipped model on those, beside
    the note statistics fitted to its training split ("holdout")."""
    from midibert.classify import Classifier
    from midibert.datasets import get_info
    from midibert.datasets.emopia import HOLDOUT
    from midibert.evaluate import agreement, score_predictions, skyline_metrics, split_sources, statistics_metrics
    from midibert.tokenize.windows import evaluation_overlap

    clf = Classifier.from_pretrained(shipped, device="cpu", answer=False)
    # fp32 on overlapping windows, as fine-tuning evaluated the model
    exact = dict(device="cpu", quantize=False, overlap=evaluation_overlap(clf.seq_len), answer=False)
    reference, stored = Classifier.from_pretrained(run_bundle, **exact), Classifier.from_pretrained(shipped, **exact)
    data = ft["task"]["data"]
    options = _test_reading(data)

    def sources(**reading):
        return split_sources(
            data["dataset"],
            data["path"],
            kind=clf.tokenizer.config.kind,
            split_seed=_split_seed(ft),
            **options,
            **reading,
        )

    pieces, files = sources()
    preds, fp32 = clf.predict_batch(files), reference.predict_batch(files)
    m = score_predictions(preds, pieces, data.get("label_key"))
    # rounded once, here, so that the card and the index print the very same figures
    out = {
        "accuracy": round(m["accuracy"], 6),
        "macro_f1": round(m["macro_f1"], 6),
        "n": m["n"],
        "agreement": round(agreement(preds, fp32), 6),
        "weights_agreement": round(agreement(stored.predict_batch(files), fp32), 6),
        "engine": clf.engine,
        "overlap": clf.overlap if clf.level == "note" else None,
    }
    raw = get_info(data["dataset"]).raw_reading
    if raw and clf.tokenizer.config.kind == "score":
        pieces, files = sources(**raw)
        preds = clf.predict_batch(files)
        m = score_predictions(preds, pieces, data.get("label_key"))
        out["raw"] = {"accuracy": round(m["accuracy"], 6), "macro_f1": round(m["macro_f1"], 6), "n": m["n"]}
        if "skyline" in clf.spec.baselines:
            out["raw"]["skyline"] = round(skyline_metrics(preds, pieces)["accuracy"], 6)
    if options.get("holdout") and not _refit(ft):
        # the songs no split held, beside the note statistics fitted to this model's training pieces
        held = sources(split=HOLDOUT)
        m = score_predictions(clf.predict_batch(held[1]), held[0], data["label_key"])
        stats = statistics_metrics(
            sources(split="train"), held, clf.tokenizer, data["label_key"], ft["task"]["class_names"]
        )
        out["holdout"] = {
            "accuracy": round(m["accuracy"], 6),
            "macro_f1": round(m["macro_f1"], 6),
            "n": m["n"],
            "songs": len({p.group for p in held[0]}),
            "statistics": round(stats["accuracy"], 6),
            "statistics_macro_f1": round(stats["macro_f1"], 6),
        }
    return out


def _cross_f1(scored: dict) -> dict[str, float]:
    """The F1s a card shows of one row of a cross-domain result: the model as it answers and as one
    line (`--line`), the skyline and top-line rules."""
    keys = {"f1": "model", "line_f1": "line", "skyline_f1": "skyline", "top_line_f1": "top_line"}
    return {k: round(scored[v]["f1"], 4) for k, v in keys.items()}


def _cross_domain(files: list[Path]) -> dict[str, tuple[Path, dict]]:
    """Weights digest -> (file, what a card and the index say of it) for each result of
    benchmarks/melody_cross_domain.py: a model scored on music no stage of its training saw."""
    out: dict[str, tuple[Path, dict]] = {}
    for file in map(Path, files):
        try:
            r = json.loads(file.read_text())
            every = r["genres"]["all"]
            out[r["weights_sha256"]] = (
                file,
                {
                    **_cross_f1(every),
                    "files": every["files"],
                    "notes": every["notes"],
                    "corpus": r["corpus"],
                    "genres": {
                        g: {"source": r["sources"][g], "files": s["files"], **_cross_f1(s)}
                        for g, s in r["genres"].items()
                        if g != "all"
                    },
                    "skipped": len(r["skipped"]),
                },
            )
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValueError(
                f"{file}: not a result of benchmarks/melody_cross_domain.py ({type(e).__name__}: {e})"
            ) from e
    return out


def _augmentation(task) -> str:
    """How the fine-tuning moved its windows, as the card's recipe line ends: a user re-training the
    model needs it, and a key-moved model reads files the same way."""
    parts = []
    if task.get("key_to_c"):
        parts.append(
            "every window moved so that its most used pitch class is C, as `midibert.classify` reads a file "
            "too (the key itself is not seen)"
        )
    if task.get("transpose"):
        parts.append(f"each training window transposed at random by up to {task['transpose']} semitones")
    if (task.get("data") or {}).get("jitter"):
        parts.append(f"each training window moved by up to {task['data']['jitter']} tokens, anew each pass")
    if task.get("piece_features"):
        parts.append(
            "the piece's note statistics (the features baseline's numbers, standardized on the training split) "
            "joined to each window's pooled encoding, in training and in `midibert.classify`"
        )
    if task.get("note_features"):
        parts.append(
            f"for each note, the answer of the rule{'s' * (len(task['note_features']) > 1)} "
            f"{', '.join(task['note_features'])} (1 or 0, computed from the tokens) joined to its token's encoding "
            "before the head, in training and in `midibert.classify`"
        )
    timing = ((task.get("data") or {}).get("options") or {}).get("timing")
    if timing == "both":
        parts.append("every training song read twice: realigned to its beat annotations, and as the raw file")
    return "".join(f"; {p}" for p in parts)


def _cpu_path(measured: dict) -> str:
    """How `midibert.classify` runs the model on CPU by default, as its test scores were measured."""
    parts = [f"linear layers run as dynamic int8 ({measured['engine']})"] if measured["engine"] else []
    if measured.get("overlap") == 0:
        parts.append("a piece is read in windows that do not overlap")
    return f"; on CPU, by default, {' and '.join(parts)}" if parts else ""


def _card(
    name: str,
    task: Task,
    size: str,
    spec: str,
    arch: BertConfig,
    ft: dict,
    pre: dict | None,
    first: dict | None,
    results: dict,
    measured: dict,
    baselines: dict[str, dict],
    licence: str,
    licences: dict[str, str],
    command: str,
    export: str,
    weights: str,
    commit: str | None,
    below: str = "",
) -> str:
    """MODEL_CARD.md: what it does, data and split, recipe and commands, test scores, limits, licence."""
    data, unit = ft["task"]["data"], "notes" if level(ft["task"]["level"]) == "note" else "pieces"
    dataset = data["dataset"]
    split = SPLITS.get(
        dataset, f"split by song, every clip of a song on one side, drawn with split seed {_split_seed(ft)}"
    )
    holdout = (data.get("options") or {}).get("holdout")
    if _refit(ft):
        split = (
            f"every song outside a held-out share of {holdout:.0%} (fixed by the songs' ids), a tenth of them "
            f"validating early stopping, drawn with split seed {_split_seed(ft)}; the held-out songs are the test split"
        )
    train = results.get("scale", {})
    lines = [
        f"# {name}",
        "",
        f"{task.summary or task.name}. {size}.",
        "",
        "```bash",
        f"midibert classify song.mid --task {task.name}"
        if task.name in REGISTRY
        else f"midibert classify song.mid --model {name}",
        "```",
        "",
        "```python",
        "from midibert.classify import Classifier",
        "",  # as ruff formats Markdown's code blocks
        f'res = Classifier.from_pretrained("{name}").predict("song.mid")',
        "```",
        "",
        "## Data",
        "",
        f"- Fine-tuned on **{dataset}** ({split}); tested on its test split, which no stage of "
        f"training saw ({measured['n']:,} {unit}). Classes: {', '.join(ft['task']['class_names'])}.",
    ]
    for extra in _extra_datasets(ft):
        copies, augmented = data["options"].get("extra_copies", 1), data["options"].get("extra_augment")
        how = f"half of them through `{'`, `'.join(augmented)}` (`midibert.augment`)" if augmented else "as its file is"
        lines.append(
            f"- Its training split also held **{extra}**, every piece {copies} time{'s' * (copies > 1)} "
            f"(read {how}), with validation and test still the first dataset's only."
        )
    if _refit(ft):
        lines.append(
            "- The recipe was measured first on seeded song-disjoint splits of the other songs (the main job's "
            f"{task.name}-bert-seed<n> stages); this model is the same recipe trained once more, and its test "
            "songs were in none of those splits: no training or early stopping saw them."
        )
    elif holdout:
        lines.append(
            f"- A share of {holdout:.0%} of the songs (fixed by their ids) is held out of every split: no training, "
            "early stopping or choice of seed saw them (scored below; `benchmarks/emotion_holdout.py` scores "
            "every seed's model on them)."
        )
    if pre is not None:
        names = ", ".join(_pretraining_datasets(pre))
        lines.append(f"- Pre-trained (masked language model) on {names}: train splits only, so no test piece is seen.")
    lines += ["", "## Recipe", ""]
    if pre is not None:
        lines.append(
            f"- Pre-training: {pre['trainer']['max_steps']} steps of {pre['data']['batch_size']} x "
            f"{pre['data']['seq_len']} {pre['data']['tokenizer']} tokens, lr {pre['optim']['lr']}, "
            f"positions {arch.position}, {'pre' if arch.pre_norm else 'post'}-LN, "
            f"mask {pre['mask']['mode']}, families weighted {pre['mask'].get('loss_weighting', 'vocab')} in the loss."
        )
    if first is not None:
        lines.append(
            f"- First fine-tuning: up to {first['trainer']['max_steps']} steps of {first['task']['data']['batch_size']} "
            f"x {first['task']['data']['seq_len']} tokens, lr {first['optim']['lr']}; then fine-tuned on from that "
            "model's encoder with a new head:"
        )
    lines += [
        f"- Fine-tuning: up to {ft['trainer']['max_steps']} steps of {data['batch_size']} x {data['seq_len']} tokens, "
        f"lr {ft['optim']['lr']}, best validation checkpoint (step {train.get('steps', '?')} reached); "
        f"{train.get('train_windows', '?')} training windows{_augmentation(ft['task'])}.",
        f"- Shipped weights: {weights} (stored compactly, computed in fp32{_cpu_path(measured)}).",
        f"- Made by: {command}"
        + (f" at midibert commit {commit}" if commit else " (the midibert commit was not recorded)")
        + f", then `{export}`.",
        "",
        "## Test scores",
        "",
        f"| model | accuracy | macro-F1 | {unit} |",
        "| --- | ---: | ---: | ---: |",
        f"| **this model as shipped**, via `midibert.classify` | {measured['accuracy']:.2%} | "
        f"{measured['macro_f1']:.4f} | {measured['n']:,} |",
    ]
    fp32 = _level_metrics(results)
    lines.append(
        f"| fp32 original, in fine-tuning's evaluation | {fp32['accuracy']:.2%} | {fp32['macro_f1']:.4f} | "
        f"{fp32['n']:,} |"
    )
    for arch, r in sorted(baselines.items()):
        b = _level_metrics(r)
        lines.append(f"| {arch} baseline | {b['accuracy']:.2%} | {b['macro_f1']:.4f} | {b['n']:,} |")
    lines += [
        "",
        f"The rule baselines ran on the test {unit} of the fine-tuning's evaluation; "
        "`midibert release export` ships no model that fails to beat every one of them there"
        + (
            f" unless told to: **this one was exported below a baseline** ({below.split(': ', 1)[1]})."
            if below
            else "."
        ),
    ]
    raw = measured.get("raw")
    if raw:
        lines += [
            "",
            f"**Files read as they are.** The benchmark reads {dataset} realigned to its beat annotations; a "
            f"user's file has none. The same test files read raw, as `midibert classify` reads any file: "
            f"{raw['accuracy']:.2%} of {raw['n']:,} {unit} (macro-F1 {raw['macro_f1']:.4f})"
            + (f"; the skyline rule on the same notes: {raw['skyline']:.2%}." if "skyline" in raw else "."),
        ]
    cross = measured.get("cross_domain")
    if cross:
        genres = "; ".join(
            f"{g['source']}: {g['files']} files, {g['f1']:.3f} (skyline {g['skyline_f1']:.3f}, top line "
            f"{g['top_line_f1']:.3f}; as one line {g['line_f1']:.3f})"
            for g in cross["genres"].values()
        )
        lines += [
            "",
            f"**Music it never saw.** On {cross['files']:,} files of {cross['corpus']} ({cross['notes']:,} notes), "
            f"which no stage of training or model selection read, each file's parts merged into one track: "
            f"melody F1 {cross['f1']:.3f} (the tune, melody or bridge, as `midibert classify` answers), the "
            f"skyline rule {cross['skyline_f1']:.3f} ({cross['f1'] - cross['skyline_f1']:+.3f}), the top-line rule "
            f"(the highest note sounding) {cross['top_line_f1']:.3f}; answered as one line (`midibert classify "
            f"--line`) {cross['line_f1']:.3f}. Per genre, "
            f"F1: {genres}. Measured on the original weights, read as `midibert classify` reads a file, by "
            f"`{cross['command']}`" + (f" ({cross['skipped']} files skipped)." if cross["skipped"] else "."),
        ]
    held = measured.get("holdout")
    if held:
        lines += [
            "",
            f"**Songs no choice saw.** On the {held['n']:,} {unit} of the {held['songs']} songs held out of every "
            f"split, which no training, early stopping or choice of seed saw: {held['accuracy']:.2%} (macro-F1 "
            f"{held['macro_f1']:.4f}) as shipped, via `midibert.classify`; the note-statistics baseline fitted to "
            f"this model's training {unit}: {held['statistics']:.2%} (macro-F1 {held['statistics_macro_f1']:.4f}), "
            f"{100 * (held['accuracy'] - held['statistics']):+.2f} points to the model.",
        ]
    lines += [
        "",
        f"The shipped model labels {measured['agreement']:.2%} of the test {unit} as the fp32 original does"
        f"{', read with overlapping windows' if unit == 'notes' else ''} "
        f"({measured['weights_agreement']:.2%} with its stored weights computed in fp32). "
        f"Measured by `{export}` (the first row and the agreement) and by {command} (the others, in "
        f"`results.json`).",
        "",
        "## Limits",
        "",
        f"- {task.limits or 'See the task description above.'}",
        f"- Input is read as {spec} tokens ({GRIDS[spec.split('-')[1]]}), timed by the file's own beats. Scores "
        "fit best; performances recorded without a beat grid (free tempo) are quantized against whatever "
        "tempo the file claims, and lose accuracy.",
        "- Drum tracks are ignored. All other tracks, whatever their instrument, merge into one piano stream: "
        "multi-instrument (non-piano) MIDI is read as if one pianist played everything.",
        "- Pieces of any length work: long ones are read in windows, "
        + (
            "each note labelled once (on CPU, by default, windows that do not overlap: a note at a window's "
            "edge then sees context on one side only)."
            if unit == "notes"
            else "whose predictions are averaged."
        ),
        "",
        "## Licence",
        "",
        f"**{licence}.** A model inherits the terms of the data it learned from:",
        "",
    ]
    roles = dict.fromkeys(_pretraining_datasets(pre), "pre-training")
    for d in (dataset, *_extra_datasets(ft)):
        roles[d] = "fine-tuning" + (", pre-training" if d in roles else "")
    lines += [f"- {d} ({roles[d]}): {lic}" for d, lic in licences.items()]
    if "non-commercial" in licence:
        lines += [
            "",
            "This model may not be used commercially, and what you make from it must be shared under "
            "the same terms (CC BY-NC-SA 4.0)."
            if "share-alike" in licence
            else "This model may not be used commercially.",
        ]
    if "research use" in licence:
        lines += ["", "Some of its data states no licence; use the model for research only."]
    return "\n".join(lines) + "\n"


def _run_results(run_dir: Path) -> dict[Path, dict]:
    """Each stage folder of a main-job run -> its results.json, read once for the whole export."""
    return {path.parent: json.loads(path.read_text()) for path in sorted(run_dir.glob("*/results.json"))}


def _bert_runs(run_dir: Path, results: dict[Path, dict]) -> list[Path]:
    """One fine-tuned, pre-trained BERT run per task (its results.json says so, and it has a bundle):
    its refit on every piece outside a held-out share where there is one (the main job's
    pipeline.refit), else of several seeds the lowest (chosen before looking at any score, so the
    shipped model is not picked on its test split)."""
    configs = {
        run: _config(run) for run, r in results.items() if r.get("model") == "bert" and (run / "bundle").is_dir()
    }
    # a model another run went on from (the main job's pipeline.then) is a step, not the result
    went_on = {Path(str(cfg.get("pretrained"))).parent.name for cfg in configs.values()}
    found = [
        (results[run]["task"], not _refit(cfg), results[run].get("seed", 0), run)
        for run, cfg in configs.items()
        if run.name not in went_on
    ]
    runs: dict[str, Path] = {}
    for task, *_, run in sorted(found):
        runs.setdefault(task, run)
    if not runs:
        raise FileNotFoundError(f"no fine-tuned BERT runs (results.json of model bert, and bundle/) in {run_dir}")
    return [runs[t] for t in sorted(runs)]


def _shown_run(run_dir: Path, *inside: str) -> str:
    """A main-job run (or a path inside it) as the main job lays it out, never a folder of the machine."""
    return "/".join(("runs/run", run_dir.name, *inside))


def _shown(folder: Path) -> str:
    """A folder as a card may name it: relative as given, else its last two parts (no machine's path)."""
    return str(folder) if not folder.is_absolute() else str(Path(*folder.parts[-2:]))


def _baselines(results: dict[Path, dict], task: Task, ft: dict) -> dict[str, dict]:
    """Rule baseline -> its results, of the runs of a main job that tested `task` on the pieces
    `ft` was tested on (their results.json say what they are)."""
    return {
        r["model"]: r
        for run, r in results.items()
        if r["task"] == task.name and (r.get("scale") or {}).get("rule") and _same_test_split(run, ft)
    }


def _gate(name: str, task: Task, results: dict, baselines: dict[str, dict], run_dir: Path) -> str:
    """Why a model may not ship ("" when it may): a rule baseline of its task did not run on its test
    split, or did as well as the model there (fine-tuning's evaluation, the same pieces)."""
    missing = [b for b in task.baselines if b not in baselines]
    if missing:
        return (
            f"{name}: no {', '.join(missing)} baseline run on its test split under {run_dir}; a model is "
            f"shipped only beside every rule baseline of its task ({', '.join(task.baselines)})"
        )
    ours = _level_metrics(results)["accuracy"]
    rules = {a: _level_metrics(r)["accuracy"] for a, r in baselines.items()}
    beaten = {a: acc for a, acc in rules.items() if acc >= ours}
    if beaten:
        rules = ", ".join(f"{a} {acc:.2%}" for a, acc in sorted(beaten.items()))
        return f"{name}: {ours:.2%} on its test split does not beat every rule baseline ({rules}); not shipped"
    return ""


def _stage(
    run: Path,
    run_dir: Path,
    to: Path,
    *,
    weights: str,
    prefix: str,
    commit: str | None,
    export_cmd: str,
    run_results: dict[Path, dict],
    allow_below: bool = False,
    cross_domain: dict | None = None,
) -> tuple[str, Path, dict]:
    """One run as a checked bundle with its card in a hidden folder of `to`: (name, folder, index entry)."""
    results = run_results[run]
    lineage = _lineage(run, run_dir)
    *before, ft = [config for _, config in lineage]
    pre = next((c for c in before if "task" not in c), None)  # the pre-training, else from scratch
    first = before[-1] if before and "task" in before[-1] else None  # the fine-tuning it went on from
    source = load_bundle(run / "bundle")
    task = of_bundle(source.task, [source.id2label[i] for i in range(len(source.id2label))])
    preset = _preset(source.model_config)
    name = f"{prefix}-{preset.removeprefix('bert-')}-{task.name}"
    licence, licences = licence_terms([results["dataset"], *_extra_datasets(ft), *_pretraining_datasets(pre)])
    staged = save_bundle(
        to / f".{name}.unchecked",
        source.state_dict,
        source.model_config,
        source.tokenizer,
        task=source.task,
        id2label=source.id2label,
        weights=weights,
    )
    measured = _measure(run / "bundle", staged, ft)
    if cross_domain:
        script = "python benchmarks/melody_cross_domain.py"
        measured["cross_domain"] = {
            **cross_domain,
            "command": f"{script} --model {_shown_run(run_dir, run.name, 'bundle')}",
        }
    if results["levels"].get("note") and measured["weights_agreement"] < MIN_AGREEMENT:
        raise ValueError(
            f"{name}: {weights} weights agree with fp32 on only {measured['weights_agreement']:.2%} of "
            f"the test notes (< {MIN_AGREEMENT:.1%}); export with --weights fp16"
        )
    params = sum(t.numel() for t in source.state_dict.values())
    mb = (staged / WEIGHTS_FILE).stat().st_size / 1e6
    size = f"{preset}, {params / 1e6:.1f} M parameters, {mb:.1f} MB ({weights})"
    baselines = _baselines(run_results, task, ft)
    below = _gate(name, task, results, baselines, run_dir)
    if below and not allow_below:
        raise ValueError(below)
    write_atomic(
        staged / CARD_FILE,
        _card(
            name,
            task,
            size,
            source.tokenizer.spec,
            source.model_config,
            ft,
            pre,
            first,
            results,
            measured,
            baselines,
            licence,
            licences,
            _command(run_dir, *(stage for stage, _ in lineage)),
            export_cmd,
            weights,
            commit,
            below,
        ),
    )
    entry = {
        "task": task.name,
        "default": True,
        "path": name,
        "size": size,
        "dataset": results["dataset"],
        "data": " + ".join([results["dataset"], *_extra_datasets(ft)])
        + (f" (pre-training: {', '.join(_pretraining_datasets(pre))})" if pre else ""),
        "licence": licence,
        "test": {
            "accuracy": measured["accuracy"],
            "macro_f1": measured["macro_f1"],
            "n": measured["n"],
            "unit": "notes" if results["levels"].get("note") else "pieces",
            "split": f"{results['dataset']} test",
            "split_seed": _split_seed(ft),
            **({"options": _test_reading(ft["task"]["data"])} if _test_reading(ft["task"]["data"]) else {}),
        },
        # the rule baselines on the test pieces of fine-tuning's evaluation, and the raw-file figure
        "baselines": {a: round(_level_metrics(r)["accuracy"], 6) for a, r in sorted(baselines.items())},
        **({"raw": measured["raw"]} if "raw" in measured else {}),
        **({"cross_domain": measured["cross_domain"]} if "cross_domain" in measured else {}),
        **({"holdout": measured["holdout"]} if "holdout" in measured else {}),
        "agreement_fp32": measured["agreement"],
        "weights_agreement_fp32": measured["weights_agreement"],
    }
    print(
        f"{name}: {size}; test accuracy {measured['accuracy']:.2%}, macro-F1 {measured['macro_f1']:.4f}, "
        f"agreement with fp32 {measured['agreement']:.2%}; {licence}"
    )
    return name, staged, entry


def export(
    run_dir: str | os.PathLike,
    to: str | os.PathLike,
    *,
    weights: str = "int8",
    prefix: str = "midibert",
    commit: str | None = None,
    allow_below_baselines: bool = False,
    cross_domain: list[str | os.PathLike] = (),
) -> list[Path]:
    """Each task's BERT run under `run_dir` as a packaged bundle in `to`, listed in its index. All
    or nothing: every model is checked before any replaces what `to` held. A model that does not
    beat every rule baseline of its task on its test split is refused, unless
    `allow_below_baselines` (then its card says so). `cross_domain`: results of
    benchmarks/melody_cross_domain.py, each shown on the card of the run whose weights it scored
    (refused where it scored none of them)."""
    run_dir, to = Path(run_dir), Path(to)
    run_results = _run_results(run_dir)
    runs = _bert_runs(run_dir, run_results)
    digests = {weights_digest(run / "bundle"): run for run in runs}
    evaluations = _cross_domain(list(cross_domain))
    for digest, (file, _) in evaluations.items():
        if digest not in digests:
            raise ValueError(
                f"{file}: scored a model that is none of the bundles under {run_dir} (weights sha256 {digest[:12]}); "
                f"run the benchmark on the run's bundle (--model {run_dir}/<task>-bert/bundle)"
            )
    by_run = {run: evaluations[d][1] for d, run in digests.items() if d in evaluations}
    # the card names the run as the main job lays it out, never a folder of the machine that made it
    export_cmd = (
        f"midibert release export {_shown_run(run_dir)} {_shown(to)} --weights {weights}"
        + (f" --commit {commit}" if commit else "")
        + "".join(f" --cross-domain {file.name if file.is_absolute() else file}" for file, _ in evaluations.values())
    )
    staged: list[tuple[str, Path, dict]] = []
    try:
        for run in runs:
            staged.append(
                _stage(
                    run,
                    run_dir,
                    to,
                    weights=weights,
                    prefix=prefix,
                    commit=commit,
                    export_cmd=export_cmd,
                    run_results=run_results,
                    allow_below=allow_below_baselines,
                    cross_domain=by_run.get(run),
                )
            )
    except BaseException:  # nothing unchecked is left behind to be mistaken for a model
        for folder in to.glob(".*.unchecked"):  # those staged, and the one that failed
            shutil.rmtree(folder, ignore_errors=True)
        raise
    for name, folder, _ in staged:
        publish_dir(folder, to / name)
    _list(to, {name: entry for name, _, entry in staged})
    return [to / name for name, _, _ in staged]


def _list(to: Path, entries: dict[str, dict]) -> None:
    """Name published bundles in `to`'s index; the newest of a task (and token kind) becomes its default."""
    index_path = to / INDEX_FILE
    index = json.loads(index_path.read_text()) if index_path.is_file() else {"format_version": 1, "models": {}}
    for name, entry in entries.items():
        for other in index["models"].values():
            if (other["task"], other.get("kind")) == (entry["task"], entry.get("kind")):
                other["default"] = False
        index["models"][name] = entry
    write_atomic(index_path, json.dumps(index, indent=1) + "\n")


ENCODER_NAMES = {"score": "score", "performance": "performance"}  # tokenizer kind -> the name's ending


def _pretrain_command(pretrain_dir: Path) -> str:
    """The command that pre-trained `pretrain_dir`: the main job's, where it was a stage of one, else
    `midibert.pretrain` with Hydra's record of its overrides (its run_dir left out: a machine's path)."""
    import shlex

    if (pretrain_dir.parent / "commands.txt").is_file() and pretrain_dir.name.startswith("pretrain"):
        return _command(pretrain_dir.parent, pretrain_dir)
    overrides = pretrain_dir / ".hydra" / "overrides.yaml"
    if not overrides.is_file():
        return f"(not recorded: {overrides.name} is missing)"
    return (
        "`" + _portable(shlex.join(["python", "-m", "midibert.pretrain", *map(str, OmegaConf.load(overrides))])) + "`"
    )


def _masked_scores(pretrain_dir: Path) -> dict[str, dict[str, float]]:
    """Family -> masked accuracy and the best trivial baseline (copy the previous / next token, the
    most common value) at the pre-training's last validation, from its metrics.csv."""
    import csv

    rows = [
        r for r in csv.DictReader(open(pretrain_dir / "logs" / "metrics.csv", encoding="utf-8")) if r.get("val/loss")
    ]
    if not rows:
        raise ValueError(f"{pretrain_dir}: no validation in logs/metrics.csv; the encoder's card needs its scores")
    last = rows[-1]
    families = [k.removeprefix("val/acc_") for k in last if k.startswith("val/acc_") and last[k]]
    return {
        f: {
            "masked": round(float(last[f"val/acc_{f}"]), 4),
            "baseline": round(
                max(float(last[k]) for k in last if k.startswith("val/base_") and k.endswith(f"_{f}") and last[k]), 4
            ),
        }
        for f in sorted(families)
    }


def _embedding_agreement(original: Path, shipped: Path, sources: list) -> float:
    """Lowest cosine similarity, over `sources`, of the shipped encoder's piece embedding to the
    fp32 original's (both computed in fp32): what storing the weights compactly costs."""
    import numpy as np

    from midibert.embedding import Embedder

    a, b = (Embedder.from_pretrained(p, device="cpu", quantize=False).embed(sources) for p in (original, shipped))
    cos = [float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y))) for x, y in zip(a, b)]
    return round(min(cos), 4)


def export_encoder(
    pretrain_dir: str | os.PathLike,
    to: str | os.PathLike,
    *,
    weights: str = "int4",
    prefix: str = "midibert",
    commit: str | None = None,
    check: list | None = None,
) -> Path:
    """A pre-training run's encoder (with its masked-LM head, so pre-training can go on from it) as a
    packaged encoder in `to`, named `<prefix>-<size>-<score|performance>`, with its card, listed in
    the index as task "encoder". `check`: MIDI sources on which the shipped weights' embeddings
    are compared with the fp32 original's (the card gives the lowest cosine similarity)."""
    from midibert.bundle import load_mlm_head
    from midibert.pretrained import ENCODER

    pretrain_dir, to = Path(pretrain_dir), Path(to)
    source = load_bundle(pretrain_dir / "bundle")
    if source.task is not None:
        raise ValueError(f"{pretrain_dir}/bundle: a fine-tuned model, not a pre-trained encoder")
    pre = _config(pretrain_dir)
    kind = source.tokenizer.config.kind
    preset = _preset(source.model_config)
    name = f"{prefix}-{preset.removeprefix('bert-')}-{ENCODER_NAMES[kind]}"
    datasets = _pretraining_datasets(pre)
    licence, licences = licence_terms(datasets)
    staged = save_bundle(
        to / f".{name}.unchecked",
        source.state_dict,
        source.model_config,
        source.tokenizer,
        weights=weights,
        mlm_head=load_mlm_head(pretrain_dir / "bundle"),
    )
    try:
        scores = _masked_scores(pretrain_dir)
        agreement = _embedding_agreement(pretrain_dir / "bundle", staged, check) if check else None
        params = sum(t.numel() for t in source.state_dict.values())
        size = f"{preset}, {params / 1e6:.1f} M parameters, {(staged / WEIGHTS_FILE).stat().st_size / 1e6:.1f} MB ({weights})"
        arch = source.model_config
        lines = [
            f"# {name}",
            "",
            f"The pre-trained {kind} encoder ({size}) that midibert's packaged {kind}-token task models were "
            "fine-tuned from: start your own task from it, or embed MIDI with it.",
            "",
            "```bash",
            f"python -m midibert.finetune task=folder task.data.path=my_midis pretrained={name}",
            f"midibert embed song.mid --model {name} --out emb.npz",
            "```",
            "",
            "## Data",
            "",
            f"- Pre-trained (masked language model) on {', '.join(datasets)}: their train splits only.",
            "",
            "## Recipe",
            "",
            f"- {pre['trainer']['max_steps']} steps of {pre['data']['batch_size']} x {pre['data']['seq_len']} "
            f"{pre['data']['tokenizer']} tokens, lr {pre['optim']['lr']}, positions {arch.position}, "
            f"{'pre' if arch.pre_norm else 'post'}-LN, mask {pre['mask']['mode']} at {pre['mask']['rate']}, families "
            f"weighted {pre['mask'].get('loss_weighting', 'vocab')} in the loss; seed {pre['seed']}.",
            f"- Shipped weights: {weights}, the masked-LM head too (so `python -m midibert.pretrain "
            f"init_from={name}` goes on pre-training)"
            + (
                f"; piece embeddings from them agree with the fp32 original's to a cosine similarity of at least "
                f"{agreement:.4f} on midibert's shipped test MIDI."
                if agreement is not None
                else "."
            ),
            f"- Made by: {_pretrain_command(pretrain_dir)}"
            + (f" at midibert commit {commit}" if commit else "")
            + f", then `midibert release encoder {_shown(pretrain_dir)} {_shown(to)}`.",
            "",
            "## Masked-token accuracy (validation, last step)",
            "",
            "| family | this encoder | best trivial baseline (copy a neighbour, most common value) |",
            "| --- | ---: | ---: |",
            *(f"| {f} | {s['masked']:.2%} | {s['baseline']:.2%} |" for f, s in scores.items()),
            "",
            "## Licence",
            "",
            f"**{licence}.** An encoder inherits the terms of the data it learned from:",
            "",
            *(f"- {d}: {lic}" for d, lic in licences.items()),
        ]
        write_atomic(staged / CARD_FILE, "\n".join(lines) + "\n")
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    publish_dir(staged, to / name)
    entry = {
        "task": ENCODER,
        "kind": kind,
        "default": True,
        "path": name,
        "size": size,
        "dataset": datasets[0] if datasets else "",
        "data": ", ".join(datasets),
        "licence": licence,
        "masked": scores,
        "embedding_agreement_fp32": agreement,
    }
    _list(to, {name: entry})
    return to / name
