"""The cost model: estimate_cost replays the engine's plan, the speed model corrects itself from
timed runs, and a cut key/value cache equals one computed afresh."""

from __future__ import annotations

import json

import pytest
import torch

from explain import attribute, estimate_cost
from explain.budget import _SPEEDS, _speed_key, record_run, speed

TEXT = ("The harbour reopened in spring. The museum closed early after the storm. The code for the blue "
        "vault is 4172. A paper mill planted trees at dawn. The night train was crowded on most Sundays.")
TARGET = " 4172"


@pytest.fixture()
def speed_file(tmp_path, monkeypatch, tiny_lm):
    """A fresh speed file and no speed kept in memory for the tiny model."""
    path = tmp_path / "speed.json"
    monkeypatch.setenv("WHYLM_SPEED_CACHE", str(path))
    _SPEEDS.pop(_speed_key(tiny_lm), None)
    yield path
    _SPEEDS.pop(_speed_key(tiny_lm), None)


@pytest.mark.parametrize("sources, options", [
    ("tokens", {}), ("words", {}), ("sentences", {}),
    ("tokens", {"use_cache": False}), ("sentences", {"use_cache": False}), ("words", {"max_rows": 5}),
])
def test_estimate_counts_what_the_engine_runs(tiny_lm, sources, options) -> None:
    est = estimate_cost(tiny_lm, TEXT, TARGET, sources=sources, **options)
    res = attribute(tiny_lm, TEXT, TARGET, sources=sources, progress=False, **options)
    # the engine counts each model call and the positions it computes; the estimate never runs it
    assert est.passes == res.info["forward_passes"]
    assert est.positions == res.info["token_positions"]


def test_sentence_ablation_computes_each_prefix_once(tiny_lm) -> None:
    res = attribute(tiny_lm, TEXT, TARGET, sources="sentences", progress=False, max_rows=1)
    n_seq = len(tiny_lm.encode(TEXT)) + len(tiny_lm.encode(TARGET, special=False)) - 1
    from explain.attribution import build_input

    inp = build_input(tiny_lm, TEXT, TARGET, sources="sentences")
    # one pass per removed sentence over the rest after it, plus the whole input three times
    # (the plain check, the gathered-head check, and the one cache every batch is cut from)
    # a row recomputes from its removed sentence on, and at least the m positions that predict the target
    suffixes = sum(max(n_seq - len(f) - f[0], inp.m) for f in inp.features[2:])
    first = n_seq - len(inp.features[0])  # nothing before the first sentence to reuse
    # the first cached pass also carries the unperturbed row: both rows padded to its length
    probe = 2 * (n_seq - inp.features[1][0])
    assert res.info["token_positions"] == 3 * n_seq + first + suffixes + probe


def test_record_run_moves_the_estimate_toward_measured_time(tiny_lm, speed_file) -> None:
    base = speed(tiny_lm)
    before = estimate_cost(tiny_lm, TEXT, TARGET, sources="words").seconds
    # a run predicted at 10 s that took 40 s: the factor moves halfway in log terms, to 2
    assert record_run(tiny_lm, "ablation", predicted=10.0, measured=40.0) == pytest.approx(2.0)
    assert estimate_cost(tiny_lm, TEXT, TARGET, sources="words").seconds == pytest.approx(2 * before)
    assert estimate_cost(tiny_lm, TEXT, TARGET, method="lime", n_samples=8).seconds > 0  # other methods: 1.0
    stored = json.loads(speed_file.read_text())[_speed_key(tiny_lm)[0]]
    assert stored["scales"] == {"ablation": pytest.approx(2.0)}
    assert stored["per_position"] == pytest.approx(base.per_position)
    # short runs are overheads, not speed: they leave the factor alone
    assert record_run(tiny_lm, "ablation", predicted=0.5, measured=50.0) == pytest.approx(2.0)
    # the factor is bounded, whatever one odd run says
    for _ in range(20):
        record_run(tiny_lm, "ablation", predicted=10.0, measured=1e6)
    assert speed(tiny_lm).scales["ablation"] == pytest.approx(10.0)


def test_cache_prefix_equals_a_fresh_prefix_and_leaves_the_cache_alone(tiny_lm) -> None:
    ids = torch.tensor([tiny_lm.encode(TEXT)])
    full = tiny_lm.extend_cache(ids)
    keys_before = full.layers[0].keys.clone()
    cut = tiny_lm.cache_prefix(full, 7, rows=3)
    fresh = tiny_lm.extend_cache(ids[:, :7])
    for a, b in zip(cut.layers, fresh.layers):
        assert a.keys.shape[0] == 3 and a.keys.shape[-2] == 7
        torch.testing.assert_close(a.keys, b.keys.expand(3, -1, -1, -1), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(a.values, b.values.expand(3, -1, -1, -1), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(full.layers[0].keys, keys_before)
    assert full.get_seq_length() == ids.shape[1]
    # growing the cut copy does not grow the original
    tiny_lm.forward_logits(ids[:, 7:9].repeat(3, 1), 1, past_key_values=cut)
    assert full.get_seq_length() == ids.shape[1] and cut.get_seq_length() == 9
