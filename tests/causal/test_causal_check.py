"""Checking graphs against data (DoWhy falsification + our report) and effect estimation."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from causal import CausalError, check_graph, estimate_effect
from causal.graph import compelled_edges
from causal.citests import FisherZ, chi2, fisher_z, skeleton


def _collider_data(n=1500, seed=0):
    # truth: x -> z <- y, z -> w
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=n), rng.normal(size=n)
    z = x + y + rng.normal(size=n)
    w = 0.8 * z + rng.normal(size=n)
    return pd.DataFrame({"x": x, "y": y, "z": z, "w": w})


TRUE = nx.DiGraph([("x", "z"), ("y", "z"), ("z", "w")])


def _residual_fisher_z(x, y, z):
    """Independent reference: correlate least-squares residuals of x and y on [1, z], then
    Fisher's z with n - |z| - 3 degrees of freedom, a two-sided normal p-value."""
    from scipy import stats as sps

    n = len(x)
    design = np.column_stack([np.ones(n)] + ([] if z is None else [np.asarray(z, float).reshape(n, -1)]))
    rx = x - design @ np.linalg.lstsq(design, x, rcond=None)[0]
    ry = y - design @ np.linalg.lstsq(design, y, rcond=None)[0]
    r = float(rx @ ry / np.sqrt((rx @ rx) * (ry @ ry)))
    k = design.shape[1] - 1
    return 2 * sps.norm.sf(np.sqrt(n - k - 3) * abs(np.arctanh(r)))


def test_fisher_z_matches_partial_correlation_from_residuals():
    df = _collider_data(n=400, seed=3)
    t = FisherZ(df)
    f = t.frame
    cases = [("x", "y", None), ("x", "y", ["z"]), ("x", "w", ["z"]), ("y", "w", ["x", "z"]), ("x", "w", None)]
    for a, b, cond in cases:
        ref = _residual_fisher_z(df[a].to_numpy(), df[b].to_numpy(), None if cond is None else df[cond].to_numpy())
        fast = t(f[a].values, f[b].values, None if cond is None else f[cond].values)
        plain = fisher_z(df[a].values, df[b].values, None if cond is None else df[cond].values)
        assert fast == pytest.approx(ref, rel=1e-6, abs=1e-12), (a, b, cond)
        assert plain == pytest.approx(ref, rel=1e-6, abs=1e-12), (a, b, cond)
    assert t(f["x"].values, f["y"].values, None) > 0.01  # marginally independent
    assert t(f["x"].values, f["y"].values, f[["z"]].values) < 1e-6  # dependent given the collider


def test_holm_adjust_matches_a_hand_computation():
    from causal.check import holm_adjust

    # sorted p: 0.001, 0.01, 0.02, 0.04 -> 4*0.001, 3*0.01, max(0.03, 2*0.02), max(0.04, 0.04)
    got = holm_adjust({"a": 0.02, "b": 0.001, "c": 0.04, "d": 0.01})
    assert got == pytest.approx({"b": 0.004, "d": 0.03, "a": 0.04, "c": 0.04})
    assert holm_adjust({"a": 0.5, "b": 0.9}) == {"a": 1.0, "b": 1.0}


def test_true_graph_passes():
    chk = check_graph(TRUE, _collider_data())
    assert not chk.falsified and chk.n_tests > 0
    assert chk.violation_rate <= 0.25 and not chk.unsupported_edges
    assert "not rejected" in chk.summary()
    assert "rejected in at most 5% of data sets (Holm's correction" in chk.summary()
    assert set(chk.per_node["z"]["parents"]) == {"x", "y"}


def test_missing_edge_is_flagged_with_suggestion():
    wrong = nx.DiGraph([("x", "z"), ("y", "z")])
    wrong.add_node("w")  # z -> w missing
    chk = check_graph(wrong, _collider_data())
    assert chk.falsified and chk.strong_violations >= 1
    assert any(v["statement"].startswith(("w _||_ z", "z _||_ w")) for v in chk.violations)
    # w -> z would make a second collider at z that the data reject; x -> z - w orients z -> w (Meek 1)
    assert chk.suggestions[0].startswith("add edge z -> w (the data orient it"), chk.suggestions
    assert "REJECTED" in chk.summary()
    from causal.plot import graph_figure

    fig = graph_figure(wrong, check=chk)  # violated dependences drawn as dotted red lines
    assert any(getattr(t, "line", None) is not None and t.line.dash == "dot" for t in fig.data)
    assert chk.to_dict()["falsified"] is True


def test_untested_direction_is_not_named():
    from causal.check import _connect_suggestions

    wrong = nx.DiGraph([("x", "z"), ("y", "z")])
    wrong.add_node("w")
    viol = [{"node": "w", "independent_of": "z", "p_value": 1e-50}]
    # z -> w and w -> z differ in v-structures, but with no test run (kernel: most=0) none is named
    (text,) = _connect_suggestions(wrong, viol, fn=None, frame=None, alpha=0.05, most=0)
    assert text.startswith("connect z and w; the two directions imply different independences"), text
    assert "->" not in text.split(":")[0]


def test_suggestion_never_names_a_direction_the_data_cannot_tell():
    rng = np.random.default_rng(0)
    smoking = rng.normal(size=600)
    df = pd.DataFrame({"smoking": smoking, "lung cancer": 0.7 * smoking + rng.normal(size=600)})
    empty = nx.DiGraph()
    empty.add_nodes_from(["smoking", "lung cancer"])
    chk = check_graph(empty, df, permutation_test=False)
    assert chk.falsified
    assert len(chk.suggestions) == 1
    first = chk.suggestions[0]
    assert first.startswith("connect ") and "the data alone can't tell the direction" in first
    assert "->" not in first


def test_reversed_collider_is_flagged():
    wrong = nx.DiGraph([("z", "x"), ("z", "y"), ("z", "w")])  # collider turned into a fork
    chk = check_graph(wrong, _collider_data())
    assert chk.falsified
    assert any({v["node"], v["independent_of"]} == {"x", "y"} for v in chk.violations)


def test_spurious_edge_is_reported_unsupported():
    extra = TRUE.copy()
    extra.add_edge("x", "w")
    chk = check_graph(extra, _collider_data())
    assert ("x", "w") in [(u, v) for u, v, _ in chk.unsupported_edges]
    assert any(s.startswith("remove edge x -> w") for s in chk.suggestions)


def test_reversed_chain_is_reported_untestable():
    rng = np.random.default_rng(1)
    a = rng.normal(size=800)
    b = a + rng.normal(size=800)
    c = b + rng.normal(size=800)
    df = pd.DataFrame({"a": a, "b": b, "c": c})
    chk = check_graph(nx.DiGraph([("c", "b"), ("b", "a")]), df)
    # Markov equivalent to the truth: no test can see it, and the report says so
    assert set(chk.untestable_edges) == {("c", "b"), ("b", "a")}
    assert "cannot confirm their direction" in chk.summary()


def test_compelled_edges_hand_example():
    # a -> c <- b is a v-structure (compelled); c -> d follows by Meek rule 1; d -> e too.
    g = nx.DiGraph([("a", "c"), ("b", "c"), ("c", "d"), ("d", "e"), ("f", "a")])
    assert compelled_edges(g) == {("a", "c"), ("b", "c"), ("c", "d"), ("d", "e")}


def test_chi2_on_discrete_data():
    rng = np.random.default_rng(0)
    n = 3000
    a = rng.integers(0, 3, n)
    b = (a + (rng.random(n) < 0.2)) % 3
    c = np.where(rng.random(n) < 0.8, b, rng.integers(0, 3, n))
    df = pd.DataFrame({"a": [f"l{v}" for v in a], "b": b, "c": c})
    assert chi2(df.a.values, df.c.values) < 1e-6
    assert chi2(df.a.values, df.c.values, df[["b"]].values) > 0.01
    chk = check_graph(nx.DiGraph([("a", "b"), ("b", "c")]), df, test="chi2")
    assert not chk.falsified
    chk2 = check_graph(nx.DiGraph([("a", "b"), ("a", "c")]), df, test="auto")
    assert chk2.falsified and chk2.test == "chi2"
    with pytest.raises(CausalError, match="not numeric.*chi2"):
        check_graph(nx.DiGraph([("a", "b")]), df, test="fisher_z")


def test_skeleton_and_colliders():
    g, sep, coll = skeleton(_collider_data(), alpha=0.01)
    assert {frozenset(e) for e in g.edges} == {frozenset(e) for e in TRUE.edges}
    assert coll == {("x", "z"), ("y", "z")}
    assert sep[frozenset(("x", "y"))] == ()


def test_check_errors():
    df = _collider_data(100)
    with pytest.raises(CausalError, match="cycle: x -> z -> x"):
        check_graph(nx.DiGraph([("x", "z"), ("z", "x")]), df)
    with pytest.raises(CausalError, match="'W' is not a column of the data; did you mean 'w'"):
        check_graph(nx.DiGraph([("x", "W")]), df)
    bad = df.copy()
    bad.loc[5, "z"] = np.nan
    with pytest.raises(CausalError, match="'z' has 1 missing"):
        check_graph(TRUE, bad)
    with pytest.raises(CausalError, match="rows"):
        check_graph(TRUE, df.head(5))
    with pytest.raises(CausalError, match="unknown test"):
        check_graph(TRUE, df, test="magic")
    with pytest.raises(CausalError, match="column 'w' is constant \\(1.5 in every row\\)"):
        check_graph(TRUE, df.assign(w=1.5))


def _effect_data(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=n)
    x = 1.5 * z + rng.normal(size=n)
    y = 2.0 * x - 3.0 * z + rng.normal(size=n)
    return pd.DataFrame({"z": z, "x": x, "y": y})


def test_estimate_effect_with_refutations():
    g = nx.DiGraph([("z", "x"), ("z", "y"), ("x", "y")])
    eff = estimate_effect(g, _effect_data(), "x", "y", simulations=5)
    assert eff.value == pytest.approx(2.0, abs=0.1)
    assert eff.adjustment_set == ["z"]
    assert set(eff.refutations) == {"placebo", "random_common_cause", "data_subset"}
    assert eff.passed, eff.summary()
    assert "effect of x on y" in eff.summary()
    # the confounder ignored: the estimate is biased, which is why the graph matters
    naive = estimate_effect(nx.DiGraph([("x", "y")]), _effect_data()[["x", "y"]], "x", "y", refuters=())
    assert abs(naive.value - 2.0) > 0.5


def test_estimate_effect_errors():
    g = nx.DiGraph([("z", "x"), ("x", "y")])
    df = _effect_data()
    with pytest.raises(CausalError, match="treatment 'X' is not a node"):
        estimate_effect(g, df, "X", "y")
    with pytest.raises(CausalError, match="must differ"):
        estimate_effect(g, df, "x", "x")
    with pytest.raises(CausalError, match="cycle"):
        estimate_effect(nx.DiGraph([("x", "y"), ("y", "x")]), df, "x", "y")
    txt = df.assign(z=df.z.astype(str))
    with pytest.raises(CausalError, match="not numeric") as err:
        estimate_effect(g, txt, "x", "y")
    assert "test=" not in str(err.value)  # no hint about check_graph's tests here


def test_estimate_effect_without_directed_path_is_a_clear_error():
    g = nx.DiGraph([("z", "x"), ("z", "y")])  # x and y share a cause, x does not cause y
    with pytest.raises(CausalError, match="no directed path from 'x' to 'y'"):
        estimate_effect(g, _effect_data(), "x", "y")


# ------------------------------------------------------------------------- mixed data (issue 10.9)
def _smoking_mixed(n=1000, seed=0):
    """Truth on the observed columns: smoking -> tar -> cancer, tar recorded as "low"/"high"
    (cancer depends on the binned tar, so the chain holds for the columns the test sees)."""
    rng = np.random.default_rng(seed)
    smoking = rng.normal(size=n)
    high = 1.5 * smoking + rng.normal(size=n) > 0
    cancer = 1.0 * high + rng.normal(size=n)
    return pd.DataFrame({"smoking": smoking, "tar": np.where(high, "high", "low"), "cancer": cancer})


CHAIN = nx.DiGraph([("smoking", "tar"), ("tar", "cancer")])
FORK = nx.DiGraph([("smoking", "tar"), ("smoking", "cancer")])


def test_mixed_data_rejects_the_fork_and_accepts_the_chain():
    df = _smoking_mixed()
    chain = check_graph(CHAIN, df)
    fork = check_graph(FORK, df)
    assert chain.test == fork.test == "mixed"
    assert not chain.falsified and chain.n_violations == 0
    assert fork.falsified and fork.local_rejects and fork.n_violations == 2
    # tar _||_ cancer | smoking fails both ways: listed once
    assert len(fork.violations) == 1
    assert {fork.violations[0]["node"], fork.violations[0]["independent_of"]} == {"tar", "cancer"}
    assert len(fork.violations[0]["statements"]) == 2
    assert len([s for s in fork.suggestions if s.startswith(("add edge", "connect"))]) == 1
    # the verdict is one sentence naming the deciding test and DoWhy's part
    for chk in (chain, fork):
        assert "\n" not in chk.verdict and chk.verdict.count(". ") == 0 and chk.verdict.endswith(".")
        assert "mixed-data regression" in chk.verdict and "DoWhy's permutation test" in chk.verdict
        assert chk.summary().splitlines()[0] == chk.verdict
    assert fork.verdict.startswith("REJECTED by the mixed-data regression")
    assert chain.verdict.startswith("not rejected")


def test_chi2_is_never_run_on_continuous_columns():
    df = _smoking_mixed()
    with pytest.raises(CausalError, match="column 'smoking' is continuous .*chi2 needs categorical"):
        check_graph(CHAIN, df, test="chi2")
    with pytest.raises(CausalError, match="column 'tar' is not numeric.*mixed"):
        check_graph(CHAIN, df, test="fisher_z")
    ids = df.assign(tar=[f"id{i}" for i in range(len(df))])
    with pytest.raises(CausalError, match="column 'tar' has 1000 distinct labels in 1000 rows: too many"):
        check_graph(CHAIN, ids)


def test_mixed_test_matches_statsmodels_regressions():
    import statsmodels.api as sm
    from scipy import stats as sps

    from causal.citests import Mixed

    df = _smoking_mixed(400, seed=3)
    m = Mixed(df)
    f = m.frame
    high = (df.tar == "high").to_numpy(float)
    # continuous response: nested OLS F-test, computed by statsmodels
    full = sm.OLS(df.cancer, sm.add_constant(np.column_stack([high, df.smoking]))).fit()
    small = sm.OLS(df.cancer, sm.add_constant(high)).fit()
    p_ref = full.compare_f_test(small)[1]
    assert m(f["cancer"].values, f["smoking"].values, f[["tar"]].values) == pytest.approx(p_ref, rel=1e-6)
    # categorical response with a categorical partner and a continuous condition: logistic LR test
    rng = np.random.default_rng(0)
    grp = np.where(df.smoking + rng.normal(size=400) > 0.3, "a", "b")
    d2 = df.assign(grp=grp)
    m2 = Mixed(d2)
    f2 = m2.frame
    lo = sm.Logit(high, sm.add_constant(df.smoking.to_numpy())).fit(disp=0)
    hi = sm.Logit(high, sm.add_constant(np.column_stack([df.smoking, grp == "b"]).astype(float))).fit(disp=0)
    p_lr = sps.chi2.sf(2 * (hi.llf - lo.llf), 1)
    assert m2(f2["tar"].values, f2["grp"].values, f2[["smoking"]].values) == pytest.approx(p_lr, rel=1e-3)


# ------------------------------------------------------------------------- bad data (issue 9.12)
def test_infinite_values_are_rejected_before_any_test():
    df = _collider_data(300)
    df.loc[7, "w"] = np.inf
    with pytest.raises(CausalError, match="column 'w' has 1 infinite values"):
        check_graph(TRUE, df)
    with pytest.raises(CausalError, match="column 'w' has 1 infinite values"):
        estimate_effect(TRUE, df, "z", "w", refuters=())


def test_integer_column_names_work():
    df = _collider_data(600)
    df.columns = [0, 1, 2, 3]
    g = nx.DiGraph([(0, 2), (1, 2), (2, 3)])
    chk = check_graph(g, df)
    assert not chk.falsified and chk.nodes == ["0", "2", "1", "3"]
    eff = estimate_effect(g, df, 2, 3, refuters=())
    assert eff.value == pytest.approx(0.8, abs=0.1)


def test_newline_in_a_name_is_one_line_error():
    df = _collider_data(100).rename(columns={"w": "w\nx"})
    for g in (nx.DiGraph([("x", "z"), ("z", "w\nx")]), TRUE):
        with pytest.raises(CausalError) as err:
            check_graph(g, df)
        msg = str(err.value)
        assert "\n" not in msg and "'w\\nx'" in msg and "line break" in msg


def test_constant_treatment_is_an_error_not_an_effect():
    df = _effect_data(500)
    g = nx.DiGraph([("z", "x"), ("z", "y"), ("x", "y")])
    with pytest.raises(CausalError, match="treatment 'x' is constant .*all 500 rows"):
        estimate_effect(g, df.assign(x=1.0), "x", "y")
    near = df.assign(x=0.0)
    near.loc[:2, "x"] = 1.0
    with pytest.raises(CausalError, match="nearly constant .*all but 3 of 500"):
        estimate_effect(g, near, "x", "y")
    with pytest.raises(CausalError, match="nearly constant .*spread"):
        estimate_effect(g, df.assign(x=1e6 + 1e-6 * df.x), "x", "y")


def test_mixed_test_sees_a_category_effect_that_number_codes_hide():
    # y depends on which of three labels x has, not on any order of them: coded 0, 1, 2 the
    # linear correlation is zero by construction, the regression on the labels is not fooled
    rng = np.random.default_rng(0)
    x = rng.choice(["a", "b", "c"], size=900)
    y = (x == "b") + 0.5 * rng.normal(size=900)
    df = pd.DataFrame({"x": x, "y": y, "w": rng.normal(size=900)})
    empty = nx.DiGraph()
    empty.add_nodes_from(["x", "y", "w"])
    chk = check_graph(empty, df, permutation_test=False)
    assert chk.test == "mixed" and chk.falsified
    assert {frozenset((v["node"], v["independent_of"])) for v in chk.violations} == {frozenset(("x", "y"))}
    coded = df.assign(x=pd.factorize(df.x, sort=True)[0].astype(float))
    assert fisher_z(coded.x.values, coded.y.values) > 0.05  # the codes hide the dependence


def test_calibration_benchmark_runs_and_writes_json(tmp_path):
    import importlib.util
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "causal_check_calibration.py"
    spec = importlib.util.spec_from_file_location("causal_check_calibration", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "cal.json"
    bench.main(["--seeds", "2", "--only", "continuous", "--json", str(out)])
    (row,) = json.loads(out.read_text())["rows"]
    assert row["seeds"] == 2 and row["n_tests"] == 15 and row["test"] == "fisher_z"
    assert set(row["power"]) == {"a->c reversed (collider gone)", "c->d missing", "d->e reversed (new collider)"}
    assert row["bound"] == pytest.approx(0.05 + 2 * (0.05 * 0.95 / 2) ** 0.5)
