"""What a task is, as data every part reads: fine-tuning, the main job's baselines, evaluation,
`midibert classify`, the model cards and the release gate.

    from midibert.tasks import get_task
    get_task("melody").level        # "note"
    get_task("emotion").baselines   # ("majority", "features")

Adding a task is one `register(Task(...))` here (and, for training, its Hydra file in
conf/task/); a task fine-tuned on a user's own labels is a `Task` built from the data
(`custom_task`), stored in its bundle, so nothing else needs to know it by name.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

LEVELS = ("note", "piece")
# configs and bundles written before the registry said "token" / "sequence"
_OLD_LEVELS = {"token": "note", "sequence": "piece"}
WRITES = ("tracks", "velocity", "marker")


@dataclass(frozen=True)
class Task:
    """One classification task.

    level: "note" (a label per note) or "piece" (one per file). classes: the model's classes,
    in output order. dataset / label: what it is fine-tuned and tested on (a per-note label array
    for note tasks, a piece label key otherwise). baselines: the rule baselines a model must beat
    to be shipped. summary / limits: the model card's words. paper: MidiBERT-Piano's test accuracy
    in % per architecture, on `dataset`. writes: how a prediction goes into MIDI ("tracks": one
    track per class, "velocity": predicted velocities, "marker": a marker naming the label).
    answer: classes a user is given -> the model classes whose probabilities add up to it (empty:
    the model's own classes); `family`: the task a model of this one answers too.
    """

    name: str
    level: str
    classes: tuple[str, ...]
    dataset: str = ""
    label: str = ""
    baselines: tuple[str, ...] = ()
    summary: str = ""
    limits: str = ""
    paper: dict[str, float] = field(default_factory=dict)
    writes: str = "marker"
    answer: dict[str, tuple[str, ...]] = field(default_factory=dict)
    family: str = ""

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"task {self.name}: level must be one of {LEVELS}, got {self.level!r}")
        if self.writes not in WRITES:
            raise ValueError(f"task {self.name}: writes must be one of {WRITES}, got {self.writes!r}")
        if len(self.classes) < 2:
            raise ValueError(f"task {self.name}: needs at least two classes, got {list(self.classes)}")
        unknown = {c for parts in self.answer.values() for c in parts} - set(self.classes)
        if unknown:
            raise ValueError(f"task {self.name}: answer names classes it does not have: {sorted(unknown)}")

    @property
    def answer_classes(self) -> list[str]:
        """The classes a user is given: `answer`'s, else the model's own."""
        return list(self.answer) or list(self.classes)

    def to_dict(self) -> dict:
        """The task as plain JSON-able data (tuples as lists), as a bundle may store it."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


REGISTRY: dict[str, Task] = {}


def register(task: Task) -> Task:
    REGISTRY[task.name] = task
    return task


def get_task(name: str) -> Task:
    """The built-in task `name`, or a ValueError listing them."""
    if name not in REGISTRY:
        raise ValueError(f"unknown task {name!r}; built in: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def level(value: str) -> str:
    """A level as the registry says it ("note" / "piece"), from any config or bundle."""
    value = _OLD_LEVELS.get(value, value)
    if value not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {value!r}")
    return value


def writes_of(name: str, level: str) -> str:
    """How a result of task `name` is written to MIDI: the registry's say, else by its level (a
    label per note: a track per class; per piece: a marker)."""
    task = REGISTRY.get(name)
    return task.writes if task else ("tracks" if level == "note" else "marker")


def of_bundle(task: dict, class_names: list[str]) -> Task:
    """The Task a bundle's stored `task` dict describes: the registry's, for a built-in task with the
    same classes; else one built from the bundle itself (a custom task, or a bundle of old)."""
    builtin = REGISTRY.get(task.get("name", ""))
    if builtin is not None and list(builtin.classes) == list(class_names):
        return builtin
    stored, level_ = task.get("spec") or {}, level(task["level"])
    return Task(
        name=task.get("name", "custom"),
        level=level_,
        classes=tuple(class_names),
        dataset=stored.get("dataset", ""),
        label=stored.get("label", ""),
        baselines=tuple(stored.get("baselines", ())),
        summary=stored.get("summary", ""),
        limits=stored.get("limits", ""),
        writes=stored.get("writes") or writes_of("", level_),
    )


MELODY_LIMITS = (
    "Learned from POP909's MELODY / BRIDGE / PIANO tracks of Chinese pop songs arranged for piano: "
    "melody is the sung lead line, bridge the instrumental line that carries the tune between vocal "
    "phrases; both are the tune, and `midibert classify --task melody` answers tune (melody or bridge) "
    "against accompaniment (`--task melody3` keeps the three classes). Other genres (classical, jazz, "
    "folk) are outside its training data."
)

register(
    Task(
        name="melody",
        level="note",
        classes=("melody", "bridge", "accompaniment"),
        dataset="pop909",
        label="melody3",
        baselines=("skyline", "majority"),
        summary="melody extraction: each note is melody, bridge (the tune between vocal phrases) or accompaniment",
        limits=MELODY_LIMITS,
        paper={"bert": 96.37, "rnn": 88.66},
        writes="tracks",
        answer={"melody": ("melody", "bridge"), "accompaniment": ("accompaniment",)},
    )
)
register(
    Task(
        name="melody3",
        level="note",
        classes=("melody", "bridge", "accompaniment"),
        dataset="pop909",
        label="melody3",
        baselines=("skyline", "majority"),
        summary="melody extraction with POP909's three classes: melody, bridge or accompaniment",
        limits=MELODY_LIMITS,
        writes="tracks",
        family="melody",
    )
)
register(
    Task(
        name="melody2",
        level="note",
        classes=("melody", "accompaniment"),
        dataset="pop909",
        label="melody2",
        baselines=("skyline", "majority"),
        summary="melody extraction: each note is melody or accompaniment (POP909's bridge counted as accompaniment)",
        limits=MELODY_LIMITS,
        writes="tracks",
        family="melody",
    )
)
register(
    Task(
        name="velocity",
        level="note",
        classes=("0-31", "32-47", "48-63", "64-79", "80-95", "96-127"),
        dataset="pop909",
        label="velocity",
        baselines=("majority",),
        summary="velocity prediction: each note's loudness bin (0-31, 32-47, 48-63, 64-79, 80-95, 96-127) "
        "from the notes alone",
        limits="A score carries no dynamics, so the model guesses loudness from pitch, rhythm and texture; each "
        "song's overall level is not predictable from its notes, which caps what any model reaches here.",
        paper={"bert": 51.63, "rnn": 43.77},
        writes="velocity",
    )
)
register(
    Task(
        name="style",
        level="piece",
        classes=("Bethel", "Clayderman", "Einaudi", "Hancock", "Hillsong", "Hisaishi", "Ryuichi", "Yiruma"),
        dataset="pianist8",
        label="composer",
        baselines=("majority", "features"),
        summary="style (pianist) classification of the whole piece",
        limits="Every piece is given one of the eight Pianist8 pianists, even if played by someone else; "
        "read it as 'sounds most like', never as identification.",
        paper={"bert": 78.57, "rnn": 60.32},
    )
)
register(
    Task(
        name="emotion",
        level="piece",
        classes=("Q1", "Q2", "Q3", "Q4"),
        dataset="emopia",
        label="emotion",
        baselines=("majority", "features"),
        summary="emotion classification of the whole piece: quadrant of valence x arousal (Q1 happy, Q2 tense, "
        "Q3 sad, Q4 calm)",
        limits="Every piece is given one of four quadrants, averaged over the whole piece; EMOPIA's clips are "
        "about 30 s of pop piano, so long pieces whose mood changes get one averaged answer. Made for performed "
        "piano: a file entered at a few fixed velocities, not played, gets its arousal from that loudness; on "
        "VGMIDI's hand-sequenced video-game phrases it did no better than always answering the commonest quadrant.",
        paper={"bert": 67.89, "rnn": 54.13},
    )
)


def answers(model_task: str, asked: str) -> bool:
    """Whether a model fine-tuned for `model_task` answers `asked` (a melody2 model is a melody one)."""
    if model_task == asked:
        return True
    m, a = REGISTRY.get(model_task), REGISTRY.get(asked)
    family = (m.family or m.name) if m else model_task
    return a is not None and (a.family or a.name) == family
