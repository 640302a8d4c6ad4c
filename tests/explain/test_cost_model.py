"""The cost model: estimate_cost replays the engine's plan, the speed model corrects itself from
timed runs, and a cut key/value cache equals one computed afresh."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from explain import attribute, estimate_cost
from explain.budget import _SPEEDS, _speed_key, record_run, speed

import fake_machine  # noqa: E402  (tests/ is on sys.path)

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


def test_record_run_moves_the_estimate_toward_measured_time(tiny_lm, speed_file, machine) -> None:
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


# ---------------------------------------------------------------- the machine as it is now
@pytest.fixture()
def machine(monkeypatch, speed_file):
    return fake_machine.install(monkeypatch)


def _new_process(lm) -> None:
    _SPEEDS.pop(_speed_key(lm), None)


def test_a_probe_taken_busy_does_not_inflate_later_estimates(tiny_lm, machine) -> None:
    machine.pace = 8.0  # the first probe ran while the machine was busy
    speed(tiny_lm)
    _new_process(tiny_lm)
    machine.pace = 1.0  # a later process on a quiet machine
    predicted = speed(tiny_lm).seconds(4000, 4000 * 200, 30)
    truth = machine.true_seconds(4000, 4000 * 200, 30)
    # the stored probe alone said 8x; the re-check follows the machine as it is
    assert predicted / truth == pytest.approx(1.0, rel=0.05)


def test_a_probe_taken_quiet_follows_the_load_when_it_rises(tiny_lm, machine) -> None:
    speed(tiny_lm)
    quiet = speed(tiny_lm).seconds(4000, 4000 * 200, 30)
    forwards = machine.forwards
    assert speed(tiny_lm).seconds(4000, 4000 * 200, 30) == quiet  # nothing changed: no re-check
    assert machine.forwards == forwards
    machine.pace, machine.load = 6.0, 1.0  # two busy processes on the cores
    busy = speed(tiny_lm)
    assert busy.seconds(4000, 4000 * 200, 30) / machine.true_seconds(4000, 4000 * 200, 30) == pytest.approx(1.0, rel=0.05)
    assert machine.forwards > forwards  # a cheap re-check, not a new full probe
    assert busy.spread >= 2.0  # on a loaded machine the estimate says it may be off
    cost = estimate_cost(tiny_lm, TEXT, TARGET, sources="words")
    assert "could be" in cost.summary() and "on this machine now" in cost.summary()


def test_a_run_refused_near_the_budget_states_the_uncertainty(tiny_lm, machine) -> None:
    from explain.errors import ExplainError

    machine.load = 1.0  # busy: the range is worth saying
    speed(tiny_lm)
    machine.pace, machine.load = 3.0, 2.0
    cost = estimate_cost(tiny_lm, TEXT, TARGET, sources="words")
    with pytest.raises(ExplainError, match=r"could be .* on this machine now"):
        attribute(tiny_lm, TEXT, TARGET, sources="words", max_seconds=cost.seconds / 1.2, progress=False)


def test_the_re_check_is_shared_by_every_method(tiny_lm, machine) -> None:
    speed(tiny_lm)
    before = {m: estimate_cost(tiny_lm, TEXT, TARGET, method=m).seconds for m in ("ablation", "integrated_gradients")}
    machine.pace, machine.load = 4.0, 1.0
    for m, seconds in before.items():  # no run of either method was needed to correct it
        assert estimate_cost(tiny_lm, TEXT, TARGET, method=m).seconds / seconds == pytest.approx(4.0, rel=0.05)


def test_a_window_of_64_tokens_does_not_break_the_probe(tiny_lm, speed_file) -> None:
    import copy

    from explain.model import LanguageModel

    model = copy.deepcopy(tiny_lm.model)
    model.config.max_position_embeddings = 64  # the probe's two lengths used to coincide here
    lm = LanguageModel(model, tiny_lm.tokenizer, name="tiny-window-64")
    pace = speed(lm)
    assert pace.per_position > 0 and pace.per_pair >= 0 and not pace.note
    res = attribute(lm, "The code is 41.", " 72", progress=False)
    assert res.token_attr.shape[0] == len(res.output_tokens)


def test_a_probe_that_fails_gives_a_rough_estimate_with_a_note(tiny_lm, speed_file, monkeypatch) -> None:
    from explain import budget

    def broken(*args, **kwargs):
        raise RuntimeError("out of memory\nsecond line")

    monkeypatch.setattr(budget, "_timed", broken)
    cost = estimate_cost(tiny_lm, TEXT, TARGET, sources="words")
    assert cost.seconds > 0 and "rough estimate from the model size" in cost.note
    assert "out of memory" in cost.summary() and "second line" not in cost.summary()
    res = attribute(tiny_lm, TEXT, TARGET, sources="sentences", progress=False)  # the run goes ahead
    assert np.isfinite(res.seq_attr).all()
    _new_process(tiny_lm)


@pytest.mark.parametrize("predicted, measured", [(float("nan"), 10.0), (10.0, float("nan")), (10.0, float("inf")),
                                                 (float("inf"), 10.0), (10.0, -5.0)])
def test_record_run_never_writes_a_non_finite_factor(tiny_lm, machine, speed_file, predicted, measured) -> None:
    assert record_run(tiny_lm, "ablation", predicted=10.0, measured=20.0) == pytest.approx(2 ** 0.5)
    assert record_run(tiny_lm, "ablation", predicted=predicted, measured=measured) == pytest.approx(2 ** 0.5)
    stored = json.loads(speed_file.read_text(), parse_constant=lambda c: pytest.fail(f"{c} written"))
    assert stored[_speed_key(tiny_lm)[0]]["scales"] == {"ablation": pytest.approx(2 ** 0.5)}


def test_threads_run_restores_torch_setting_and_estimates_per_thread_count(tiny_lm, machine) -> None:
    from explain.threads import threads

    before = torch.get_num_threads()
    with threads(1):
        one = _speed_key(tiny_lm)
        speed(tiny_lm)
    assert torch.get_num_threads() == before
    # the speed is kept per thread count: a run given one thread is estimated for one thread
    assert one in _SPEEDS and (before == 1 or _speed_key(tiny_lm) != one)
    _SPEEDS.pop(one, None)


def test_a_run_uses_the_threads_it_was_given_and_restores_them(tiny_lm, machine) -> None:
    from explain import register_signal, signals
    from explain.signals.registry import unregister_signal

    before = torch.get_num_threads()
    seen = []

    @register_signal("thread_count", aggregate="max")
    def thread_count(ctx):
        seen.append(torch.get_num_threads())
        return [0.0] * len(ctx.tokens)

    try:
        signals(tiny_lm, "Who wrote Hamlet?", response=" Shakespeare.", threads=1)
    finally:
        unregister_signal("thread_count")
    assert seen == [1] and torch.get_num_threads() == before
    res = attribute(tiny_lm, TEXT, TARGET, sources="sentences", progress=False, threads=1)
    assert torch.get_num_threads() == before and res.token_attr.shape[1] == len(res.input_tokens)
    with torch_threads_at(1):  # the estimate inside the run was made for one thread
        assert _speed_key(tiny_lm) in _SPEEDS
    from explain.errors import ExplainError

    with pytest.raises(ExplainError, match="threads must be a whole number >= 1"):
        attribute(tiny_lm, TEXT, TARGET, threads=0)


def torch_threads_at(n):
    from explain.threads import threads

    return threads(n)


def test_signals_cli_states_the_sampling_cost_before_it_starts(tiny_dir, capsys) -> None:
    from dashboard.cli import main

    assert main(["signals", "Who wrote Hamlet?", "--n-samples", "2", "--model", tiny_dir, "--threads", "1"]) == 0
    err = capsys.readouterr().err
    assert "estimate: signals with 2 samples: about" in err, err
    assert err.index("loading") < err.index("estimate: signals with 2 samples")
