"""A method registers its cost plan, defaults and option checks with itself; estimate_cost and
attribute read them from the registry (a toy method's estimate is checked against the forwards it
really runs, counted with a hook on the model)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from explain import ExplainError, attribute, estimate_cost
from explain.attribution import METHODS, PlanInput, Work, register, unregister
from explain.budget import check_budget

PROMPT, TARGET = "The capital of France is", " Paris"


def _toy(lm, inp, *, baseline: int, progress: bool, k: int = 3) -> tuple[np.ndarray, dict[str, Any]]:
    """Runs k plain teacher-forced forwards over the whole sequence; attributions are zeros."""
    ids = torch.tensor([inp.sequence])
    with torch.no_grad():
        for _ in range(k):
            logits = lm.model(input_ids=ids).logits[0, -inp.m:]
    logp = torch.log_softmax(logits.double(), -1)[torch.arange(inp.m), torch.tensor(inp.target_ids)]
    return np.zeros((inp.m, inp.n)), {"target_logprobs": logp.numpy()}


def _check_k(options) -> None:
    if not isinstance(options["k"], int) or options["k"] < 1:
        raise ExplainError(f"k must be an integer >= 1, got {options['k']!r}")


@pytest.fixture()
def toy_methods():
    """'toy' (k passes, with a plan and a check) and 'toy_unplanned' (no plan), removed afterwards."""
    register("toy", family="perturbation", cost="k forward passes", note="a test method",
             plan=lambda p: Work.forwards(p.options["k"], p.n_seq), check=_check_k)(_toy)
    register("toy_unplanned", family="perturbation", cost="k forward passes", note="no plan")(_toy)
    try:
        yield
    finally:
        unregister("toy")
        unregister("toy_unplanned")
    assert "toy" not in METHODS and "toy_unplanned" not in METHODS


class ForwardCounter:
    """Counts the model's forward calls and the token positions they compute."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.passes = self.positions = 0
        self.handle = model.register_forward_pre_hook(self._count, with_kwargs=True)

    def _count(self, module, args, kwargs) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        self.passes += 1
        self.positions += int(ids.numel())


@pytest.mark.parametrize("given", [{}, {"k": 1}, {"k": 5}])
def test_estimate_prices_exactly_the_forwards_the_method_runs(tiny_lm, toy_methods, given) -> None:
    est = estimate_cost(tiny_lm, PROMPT, TARGET, method="toy", **given)
    counter = ForwardCounter(tiny_lm.model)
    try:
        res = attribute(tiny_lm, PROMPT, TARGET, method="toy", progress=False, **given)
    finally:
        counter.handle.remove()
    k = given.get("k", 3)  # the registered default fills in a missing option
    n_seq = len(tiny_lm.encode(PROMPT)) + len(tiny_lm.encode(TARGET, special=False)) - 1
    assert (counter.passes, counter.positions) == (k, k * n_seq)
    assert (est.passes, est.positions) == (counter.passes, counter.positions)
    assert est.note == "" and res.token_attr.shape == (len(res.output_tokens), len(res.input_tokens))


def test_registered_defaults_and_checks_are_applied(tiny_lm, toy_methods) -> None:
    info = METHODS["toy"]
    assert info.defaults == {"k": 3} and info.shown == ("k",)  # read from the function's signature
    assert info.options({"k": None}) == {"k": 3}
    for call in (lambda: attribute(tiny_lm, PROMPT, TARGET, method="toy", k=0, progress=False),
                 lambda: estimate_cost(tiny_lm, PROMPT, TARGET, method="toy", k=0)):
        with pytest.raises(ExplainError, match=r"^k must be an integer >= 1, got 0$"):
            call()
    with pytest.raises(ExplainError, match=r"^method 'toy' takes no option 'n_samples' \(it takes k\)$"):
        estimate_cost(tiny_lm, PROMPT, TARGET, method="toy", n_samples=3)


def test_method_without_a_plan_is_flagged_as_a_lower_bound(tiny_lm, toy_methods) -> None:
    est = estimate_cost(tiny_lm, PROMPT, TARGET, method="toy_unplanned", k=4)
    note = "no cost plan registered for method toy_unplanned: the estimate is a lower bound"
    assert est.note == note
    assert est.summary().endswith(f"; {note})")
    n_seq = len(tiny_lm.encode(PROMPT)) + len(tiny_lm.encode(TARGET, special=False)) - 1
    assert (est.passes, est.positions) == (1, n_seq)  # one pass: it really runs four
    with pytest.raises(ExplainError, match="lower bound") as err:
        check_budget(est, max_seconds=1e-9)
    assert "\n" not in str(err.value)


def test_every_builtin_method_registers_a_plan_defaults_and_a_check() -> None:
    for name in ("ablation", "shapley", "kernelshap", "lime", "integrated_gradients", "input_x_gradient",
                 "attention", "shap"):
        info = METHODS[name]
        assert info.plan is not None and info.check is not None, name
        assert all(k in info.defaults for k in info.shown), name
    assert METHODS["shapley"].defaults["n_samples"] == 5
    assert METHODS["kernelshap"].defaults["n_samples"] == 200
    assert METHODS["integrated_gradients"].defaults["n_steps"] == 20


def test_a_plan_sees_the_options_with_defaults_filled_in(tiny_lm) -> None:
    seen: list[PlanInput] = []

    def plan(p: PlanInput) -> Work:
        seen.append(p)
        return Work.forwards(2, p.n_seq)

    register("toy_seen", family="perturbation", cost="", note="", plan=plan)(_toy)
    try:
        estimate_cost(tiny_lm, PROMPT, TARGET, method="toy_seen", sources="words")
    finally:
        unregister("toy_seen")
    (p,) = seen
    assert p.options == {"k": 3} and p.m == len(tiny_lm.encode(TARGET, special=False))
    assert p.prompt.sources == "words" and p.n == len(PROMPT.split())
