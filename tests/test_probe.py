"""The linear probe runs end to end on the generated corpus (no data needed) and compares three
probes on the same test pieces."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from midibert.bundle import load_bundle
from midibert.probe import linear_probe, random_twin, table
from tests.factories import make_encoder


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    return make_encoder(tmp_path_factory.mktemp("probe") / "bundle", seed=1)


def test_probe_on_the_sample_corpus(encoder, tmp_path):
    r = linear_probe("sample", tmp_path / "sample", encoder=encoder, label_key="style")
    assert {"encoder", "random encoder", "note statistics"} <= set(r) and r["skipped"] == 0
    ns = {r[p]["n"] for p in ("encoder", "random encoder", "note statistics")}
    assert ns == {20}  # the same 20 test pieces for every probe
    for p in ("encoder", "random encoder", "note statistics"):
        assert 0 <= r[p]["accuracy"] <= 1
    assert r["note statistics"]["accuracy"] > 0.5  # the generated styles differ in density and register
    assert "| sample | 20 |" in table({"sample": r})


def test_random_twin_keeps_the_shape_not_the_weights(encoder):
    b = load_bundle(encoder)
    twin = random_twin(b, seed=3)
    assert twin.state_dict.keys() == b.state_dict.keys()
    assert not all(torch.equal(twin.state_dict[k], b.state_dict[k]) for k in b.state_dict)
    assert all(twin.state_dict[k].shape == v.shape for k, v in b.state_dict.items())
    np.testing.assert_array_equal(  # reproducible
        random_twin(b, seed=3).state_dict["embed.proj.weight"].numpy(), twin.state_dict["embed.proj.weight"].numpy()
    )
