"""Compose the project's Hydra configs in tests, with outputs and caches in temporary folders."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from midibert.training import CONF_DIR


def config(name: str, overrides: list[str], out: Path) -> DictConfig:
    """`conf/<name>.yaml` with `overrides`, writing under `out` (runs and the preparation cache)."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(
            name, overrides=[f"paths.output_dir={out / 'runs'}", f"paths.cache_dir={out / 'cache'}", *overrides]
        )


EXPERIMENTS = {p.stem: p.read_text() for p in (Path(CONF_DIR) / "experiment").glob("*.yaml")}
