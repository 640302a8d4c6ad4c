"""estimate_effect's identification report and sensitivity: the robustness value against the
published example, statsmodels' OLS and the omitted-variable-bias formula it inverts."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from causal import estimate_effect
from causal.effect import EffectEstimate
from causal.sensitivity import ols_sensitivity, robustness_value, sensitivity_sentence

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
from causal_pipeline import TRUE_GRAPH, simulated_data  # noqa: E402


def test_robustness_value_matches_the_published_darfur_example():
    # Cinelli & Hazlett (2020), Table 1: t = 4.18 on 783 residual degrees of freedom, RV = 13.9%,
    # partial R2 of the treatment with the outcome 2.2%
    assert robustness_value(4.18, 783) == pytest.approx(0.139, abs=5e-4)
    assert robustness_value(-4.18, 783) == robustness_value(4.18, 783)


@pytest.mark.parametrize("t, dof", [(0.5, 50), (2.0, 200), (4.18, 783), (30.0, 1000)])
def test_a_confounder_at_the_robustness_value_removes_exactly_the_estimate(t, dof):
    # omitted-variable bias bound: |bias| = se * sqrt(dof) * sqrt(R2_yu * R2_du / (1 - R2_du)); with both
    # partial R2 at RV it must equal |estimate| = |t| * se, i.e. sqrt(dof) * RV / sqrt(1 - RV) = |t|
    rv = robustness_value(t, dof)
    assert math.sqrt(dof) * rv / math.sqrt(1 - rv) == pytest.approx(abs(t), rel=1e-9)


def _data(n=800, seed=3):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=n)
    grp = rng.choice(["a", "b", "c"], size=n)
    x = 0.7 * z + (grp == "b") + rng.normal(size=n)
    y = 0.25 * x + 0.5 * z - 0.4 * (grp == "c") + rng.normal(size=n)
    return pd.DataFrame({"z": z, "grp": grp, "x": x, "y": y})


def test_ols_sensitivity_matches_statsmodels():
    df = _data()
    s = ols_sensitivity(df, "x", "y", ["z", "grp"])
    design = sm.add_constant(pd.concat([df[["x", "z"]], pd.get_dummies(df["grp"], drop_first=True, dtype=float)], axis=1))
    fit = sm.OLS(df["y"], design).fit()
    assert s["estimate"] == pytest.approx(fit.params["x"], rel=1e-9)
    assert s["t"] == pytest.approx(fit.tvalues["x"], rel=1e-9) and s["dof"] == int(fit.df_resid)
    f = fit.tvalues["x"] / math.sqrt(fit.df_resid)
    assert s["robustness_value"] == pytest.approx(0.5 * (math.sqrt(f ** 4 + 4 * f ** 2) - f ** 2), rel=1e-9)
    assert s["partial_r2"] == pytest.approx(fit.tvalues["x"] ** 2 / (fit.tvalues["x"] ** 2 + fit.df_resid))


def test_what_cannot_be_fitted_says_why():
    df = _data(50)
    assert "not numeric" in ols_sensitivity(df, "grp", "y", [])["unavailable"]
    df["x2"] = 2 * df["x"]
    assert "collinear" in ols_sensitivity(df, "x", "y", ["x2"])["unavailable"]
    assert sensitivity_sentence({"unavailable": "why"}, "x", "y") == \
        "Sensitivity to an unobserved confounder not computed: why."


def test_readme_example_states_its_sensitivity_in_one_sentence():
    df = simulated_data()
    eff = estimate_effect(TRUE_GRAPH, df, "smoking", "cancer", simulations=2)
    assert eff.adjustment_set == ["genotype"] and eff.frontdoor == ["tar"] and eff.instruments == []
    fit = sm.OLS(df["cancer"], sm.add_constant(df[["smoking", "genotype"]])).fit()
    assert eff.value == pytest.approx(fit.params["smoking"], rel=1e-6)
    f = fit.tvalues["smoking"] / math.sqrt(fit.df_resid)
    rv = 0.5 * (math.sqrt(f ** 4 + 4 * f ** 2) - f ** 2)
    sentence = (f"Sensitivity: an unobserved confounder would have to explain at least {100 * rv:.1f}% of the "
                "remaining variance of both smoking and cancer (beyond the adjustment set) to move the estimate "
                "to zero; a weaker one cannot (robustness value, Cinelli & Hazlett 2020).")
    text = eff.summary()
    assert sentence in text.splitlines() and text.count("Sensitivity") == 1
    assert "front-door set {tar}" in text
    d = json.loads(eff.to_json())
    assert d["sensitivity_text"] == sentence == eff.sensitivity_text
    back = EffectEstimate.from_json(eff.to_json())
    assert back.sensitivity["robustness_value"] == pytest.approx(rv) and back.frontdoor == ["tar"]


def test_instruments_are_reported():
    rng = np.random.default_rng(0)
    n = 1000
    z, c = rng.normal(size=(2, n))
    x = z + c + rng.normal(size=n)
    y = 2 * x + c + rng.normal(size=n)
    g = nx.DiGraph([("z", "x"), ("c", "x"), ("c", "y"), ("x", "y")])
    eff = estimate_effect(g, pd.DataFrame({"z": z, "c": c, "x": x, "y": y}), "x", "y", refuters=())
    assert eff.instruments == ["z"] and eff.adjustment_set == ["c"]
    assert "the instruments {z}" in eff.summary()
    iv = estimate_effect(g, pd.DataFrame({"z": z, "c": c, "x": x, "y": y}), "x", "y", refuters=(),
                         method="iv.instrumental_variable")
    assert iv.value == pytest.approx(2.0, abs=0.2)
    assert iv.sensitivity_text.startswith("Sensitivity to an unobserved confounder not computed")
