"""evaluate_judge: a backend's orientation accuracy on the shipped Tübingen pairs, checked against
fake judges whose answers (and so whose accuracy) are known from the CSV read here independently."""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

import causal
from causal.errors import CausalError
from causal.judge import JudgeResult, evaluate_judge, known_judge, wilson_interval

CSV = Path(causal.__file__).parent / "data_files" / "tuebingen_pairs.csv"
PAIR = re.compile(r"^A\. changing (.+) causes a change in (.+)\.$", re.M)


def _rows(usable=True):
    """The CSV's rows; ``usable``: without the two pairs whose variables share one name."""
    with CSV.open(encoding="utf-8") as fh:
        rows = [{k: (v or "").strip() for k, v in r.items()} for r in csv.DictReader(fh)]
    return [r for r in rows if not usable or r["var1"] != r["var2"]]


def _wilson(k, n, z=1.959963984540054):  # the textbook formula, by hand
    p = k / n
    mid = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return mid - half, mid + half


class Truthful:
    """Knows every Tübingen direction; P(true direction) = ``sure`` whatever the order."""

    name, model = "truthful", "csv"

    def __init__(self, sure=0.9, cache=None):
        self.causes = {(r["var1"], r["var2"]) if r["ground_truth"] == "R" else (r["var2"], r["var1"]) for r in _rows()}
        self.sure, self.calls = sure, 0
        if cache is not None:
            self.cache = cache

    def choose(self, prompt, options):
        self.calls += 1
        x, y = PAIR.search(prompt).groups()
        pa = self.sure if (x, y) in self.causes else 1 - self.sure
        return int(pa < 0.5), np.array([pa, 1 - pa])


class AlwaysA(Truthful):
    name = "always-a"

    def choose(self, prompt, options):
        return 0, np.array([0.8, 0.2])


def test_csv_is_shipped_with_its_licence():
    rows = _rows(usable=False)
    assert len(rows) == 108 and sum(r["ground_truth"] == "R" for r in rows) == 80
    assert len(_rows()) == 106
    assert "MIT License" in (CSV.parent / "LICENSE-tuebingen").read_text()


def test_truthful_judge_scores_all_pairs_with_wilson_interval():
    llm = Truthful()
    res = evaluate_judge(llm, progress=False, use_cache=False)
    assert (res.accuracy, res.n, res.raw_accuracy) == (1.0, 106, 1.0)
    lo, hi = _wilson(106, 106)
    assert res.ci_low == pytest.approx(lo) and res.ci_high == pytest.approx(hi)
    distinct = {frozenset((r["var1"], r["var2"])) for r in _rows()}  # a few pairs repeat their names
    assert llm.calls == 2 * len(distinct) == 2 * 99  # both orders of every pair, each asked once
    assert all(a["correct"] == 1 for a in res.answers)
    assert res.skill == pytest.approx(2 * lo - 1) and not res.is_guessing


def test_position_bias_is_balanced_away():
    res = evaluate_judge(AlwaysA(), progress=False, use_cache=False)
    assert res.accuracy == 0.5  # every pair a tie once both orders are averaged
    assert res.raw_accuracy == pytest.approx(80 / 106)  # asked once, "A" looks like 75%
    assert res.is_guessing and res.calibrate(0.99) == 0.5
    assert "its arrows are guesses" in res.in_words()
    assert "always answering A would score 75%" in res.summary()


def test_wilson_matches_the_formula():
    for k, n in [(57, 108), (0, 10), (10, 10), (54.5, 108)]:
        assert wilson_interval(k, n) == pytest.approx(_wilson(k, n))


def test_subset_is_seeded_and_checked():
    a = evaluate_judge(Truthful(), n_pairs=10, seed=1, progress=False, use_cache=False)
    b = evaluate_judge(Truthful(), n_pairs=10, seed=1, progress=False, use_cache=False)
    c = evaluate_judge(Truthful(), n_pairs=10, seed=2, progress=False, use_cache=False)
    assert a.n == 10 and [x["pair"] for x in a.answers] == [x["pair"] for x in b.answers]
    assert [x["pair"] for x in a.answers] != [x["pair"] for x in c.answers]
    for bad in (0, -1, 2.5, "x"):
        with pytest.raises(CausalError, match="n_pairs must be"):
            evaluate_judge(Truthful(), n_pairs=bad, use_cache=False)


def test_figure_is_cached_per_backend_and_a_corrupt_entry_is_replaced(tmp_path):
    class Cache:
        path = str(tmp_path / "llm-cache.sqlite")

    first = Truthful(cache=Cache())
    res = evaluate_judge(first, progress=False)
    assert res.source == "measured" and first.calls == 198
    again = Truthful(cache=Cache())
    cached = evaluate_judge(again, progress=False)
    assert again.calls == 0 and cached.source == "cache" and cached.accuracy == 1.0
    assert known_judge(again).accuracy == 1.0
    other = AlwaysA(cache=Cache())  # another backend name: its own entry
    assert evaluate_judge(other, progress=False).accuracy == 0.5
    files = list((tmp_path / "judge").glob("*.json"))
    assert len(files) == 2
    for f in files:
        f.write_text("{not json")
    fresh = Truthful(cache=Cache())
    assert evaluate_judge(fresh, progress=False).source == "measured" and fresh.calls == 198


def test_embedded_model_figure_ships_as_data():
    class Embedded:  # the embedded model's label and settings, without loading it
        name, model = "local", "SmolLM2-135M-Instruct"

        def settings(self):
            return {"chat": True, "scoring": "option-logprob"}

        def choose(self, prompt, options):  # pragma: no cover - must not be asked
            raise AssertionError("the shipped figure needs no question")

    res = known_judge(Embedded())
    assert res.source == "shipped" and res.n == 106
    truth = {r[""]: r["ground_truth"] for r in _rows()}
    assert sorted(a["pair"] for a in res.answers) == sorted(truth)
    credit = [0.5 if a["p_var1_causes"] == 0.5 else float((a["p_var1_causes"] > 0.5) == (truth[a["pair"]] == "R"))
              for a in res.answers]
    assert res.accuracy == pytest.approx(np.mean(credit))
    assert res.accuracy == pytest.approx(57 / 106)
    assert res.in_words().startswith("this model orients 54% [44, 63] of benchmark pairs right")
    assert evaluate_judge(Embedded()).source == "shipped"


def test_round_trip_and_errors():
    res = evaluate_judge(Truthful(), n_pairs=5, progress=False, use_cache=False)
    back = JudgeResult.from_json(res.to_json())
    assert back.to_dict() == res.to_dict()
    nan = JudgeResult(llm="x", accuracy=0.5, ci_low=0.4, ci_high=0.6, n=10)
    assert "NaN" not in nan.to_json() and math.isnan(JudgeResult.from_json(nan.to_json()).raw_accuracy)
    with pytest.raises(CausalError, match="not a judge result"):
        JudgeResult.from_dict({"llm": "x"})
    assert "&lt;b&gt;" in JudgeResult(llm="<b>x</b>", accuracy=1, ci_low=1, ci_high=1, n=1)._repr_html_()


def test_judge_cost_guard():
    from explain.errors import WhylmError

    class Remote(Truthful):
        base_url = "http://127.0.0.1:1/v1"

    with pytest.raises(WhylmError, match="212 questions.*n_pairs="):
        evaluate_judge(Remote(), max_seconds=10, use_cache=False)


def test_cli_judge_with_a_recorded_truthful_backend(tmp_path, capsys):
    from causal.ask import pair_prompt
    from causal.cli import add_parser

    rec = {}
    for r in _rows():
        cause = r["var1"] if r["ground_truth"] == "R" else r["var2"]
        for x, y in [(r["var1"], r["var2"]), (r["var2"], r["var1"])]:
            rec[pair_prompt(x, y)] = "A" if x == cause else "B"
    path = tmp_path / "answers.json"
    path.write_text(json.dumps(rec))
    p = argparse.ArgumentParser(prog="whylm")
    add_parser(p.add_subparsers(dest="command"))
    out = tmp_path / "judge.json"
    args = p.parse_args(["causal", "judge", "--llm", f"replay:{path}", "--json", str(out), "--no-progress"])
    assert args.func(args) == 0
    text = capsys.readouterr().out
    assert "orients 100% [97, 100] of benchmark pairs right" in text
    d = json.loads(out.read_text())
    assert d["n"] == 106 and len(d["answers"]) == 106
    with pytest.raises(SystemExit):
        p.parse_args(["causal", "judge", "--help"])
    assert "whylm causal judge --llm" in capsys.readouterr().out
