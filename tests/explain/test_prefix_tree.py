"""The prefix-tree engine against plain batched forwards and a brute-force loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_models import ARCHS, make_tiny_lm

from explain.attribution import build_input
from explain.attribution.batched_forward import BatchedForward
from explain.attribution.prefix_tree import PrefixTreeForward, distinct_prefixes, plan

PROMPT = "The capital of France is Paris, and the capital of Italy"
TARGET = " is Rome."


def shapley_masks(n: int, perms: int, seed: int = 0) -> torch.Tensor:
    """Every keep-mask of ``perms`` random permutations: none kept, then one more feature each step."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(perms):
        keep = np.zeros(n, dtype=bool)
        rows.append(keep.copy())
        for f in rng.permutation(n):
            keep[f] = True
            rows.append(keep.copy())
    return torch.as_tensor(np.unique(np.array(rows), axis=0))


def brute_force(lm, inp, keep: torch.Tensor) -> np.ndarray:
    """One unbatched teacher-forced pass per mask (baseline id 0 for dropped features)."""
    out = []
    for row in keep.numpy():
        ids = list(inp.prompt_ids)
        for f in np.flatnonzero(~row):
            for p in inp.features[f]:
                ids[p] = 0
        out.append(lm.continuation_logprobs([ids], [inp.target_ids])[0])
    return np.array(out, dtype=np.float64)


@pytest.mark.parametrize("arch", ARCHS)
def test_tree_equals_brute_force_on_shapley_and_random_masks(arch: str) -> None:
    lm = make_tiny_lm(arch)
    inp = build_input(lm, PROMPT, TARGET)
    masks = torch.cat([shapley_masks(inp.n, 2), torch.as_tensor(np.random.default_rng(1).random((12, inp.n)) < 0.5)])
    tree = PrefixTreeForward(BatchedForward(lm, inp), max_rows=16, pass_cost=0.0)  # many levels, several trees
    got = tree(masks).numpy()
    assert tree.levels > 3 and tree.info["prefix_tree"]
    plain = BatchedForward(lm, inp, use_cache=False)(masks).numpy()
    np.testing.assert_allclose(got, plain, atol=1e-4)
    some = [0, len(masks) // 2, len(masks) - 1]
    np.testing.assert_allclose(got[some], brute_force(lm, inp, masks[some]), atol=1e-4)


def test_tree_computes_fewer_positions_than_plain_on_shapley_masks(tiny_lm) -> None:
    inp = build_input(tiny_lm, PROMPT, TARGET)
    masks = shapley_masks(inp.n, 3)
    plain = BatchedForward(tiny_lm, inp, use_cache=False)
    tree = PrefixTreeForward(BatchedForward(tiny_lm, inp), pass_cost=0.0)
    np.testing.assert_allclose(tree(masks).numpy(), plain(masks).numpy(), atol=1e-4)
    assert tree.fwd.positions < 0.75 * plain.positions


def test_distinct_prefixes_and_plan_by_hand() -> None:
    keep = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [1, 1, 1]], dtype=bool)  # one permutation
    assert distinct_prefixes(keep).tolist() == [1, 2, 3, 4]
    bounds = np.array([0, 10, 20, 30])
    # free passes: caching at boundaries 1 and 2 costs 2*10 + 3*10 + 4*15 = 110 < 4*35 = 140 in one go
    # (a cache at boundary 3 would hold 4 rows as the last level does: no gain)
    assert plan(distinct_prefixes(keep), bounds, 35, pass_cost=0.0, kv_cost=0.0) == [0, 1, 2]
    # an expensive pass: one pass over everything
    assert plan(distinct_prefixes(keep), bounds, 35, pass_cost=1000.0, kv_cost=0.0) == [0]


def test_tree_falls_back_when_the_cache_is_wrong(tiny_lm, monkeypatch) -> None:
    inp = build_input(tiny_lm, PROMPT, TARGET)
    masks = shapley_masks(inp.n, 1)
    tree = PrefixTreeForward(BatchedForward(tiny_lm, inp), pass_cost=0.0)
    real = tree._tree
    monkeypatch.setattr(tree, "_tree", lambda bits: real(bits) + 1.0)
    with pytest.warns(UserWarning, match="prefix-tree cache reuse disagrees"):
        got = tree(masks).numpy()
    assert not tree.info["prefix_tree"]
    np.testing.assert_allclose(got, BatchedForward(tiny_lm, inp, use_cache=False)(masks).numpy(), atol=1e-4)
