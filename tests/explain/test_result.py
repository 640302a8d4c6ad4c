"""AttributionResult: JSON round trip, converters, escaped figures."""

from __future__ import annotations

import json

import numpy as np
import pytest

from explain import AttributionResult, attribute


@pytest.fixture(scope="module")
def result(tiny_lm) -> AttributionResult:
    return attribute(tiny_lm, "<img src=x onerror=alert(1)> & the sky", " is blue.", progress=False)


def test_json_round_trip(result) -> None:
    back = AttributionResult.from_json(result.to_json())
    np.testing.assert_array_equal(back.token_attr, result.token_attr)
    np.testing.assert_array_equal(back.seq_attr, result.seq_attr)
    assert back.input_tokens == result.input_tokens and back.output_tokens == result.output_tokens
    assert back.info == json.loads(json.dumps(result.info))


def test_nan_survives_json() -> None:
    r = AttributionResult(["a", "b"], ["c"], [[np.nan, 1.0]], [np.nan, 1.0], [0.0])
    back = AttributionResult.from_json(r.to_json())
    assert np.isnan(back.token_attr[0, 0]) and back.token_attr[0, 1] == 1.0


def test_to_captum_and_shap_and_inseq(result) -> None:
    cap = result.to_captum()
    np.testing.assert_allclose(cap.token_attr.numpy(), result.token_attr, atol=1e-6)
    assert cap.input_tokens == result.input_tokens
    exp = result.to_shap()
    assert exp.values.shape == (len(result.input_tokens), len(result.output_tokens))
    np.testing.assert_allclose(exp.values, result.token_attr.T)
    ins = result.to_inseq_dict()
    assert not hasattr(result, "to_inseq")  # the misleading alias is gone: it never returned an inseq object
    mat = np.array(ins["target_attributions"], dtype=float)
    n, m = len(result.input_tokens), len(result.output_tokens)
    assert mat.shape == (n + m, m)
    np.testing.assert_allclose(mat[:n], result.token_attr.T)
    assert np.isnan(mat[n:]).all()


def test_html_and_figure_escape_markup(result) -> None:
    page = result.html()
    assert "<img" not in page and "&lt;" in page
    fig = result.figure()
    labels = list(fig.layout.xaxis.ticktext)
    assert not any("<" in t.split(": ", 1)[1] for t in labels) and any("&lt;" in t for t in labels)
    assert fig.data[0].z.shape == result.token_attr.shape


def test_shape_is_validated() -> None:
    with pytest.raises(ValueError, match="token_attr has shape"):
        AttributionResult(["a"], ["b"], [[1.0, 2.0]], [1.0], [0.0])


def test_json_round_trip_is_exact_with_nan_and_sources(tiny_lm) -> None:
    res = attribute(tiny_lm, "Sky is blue. Grass <b>is</b> green.", " blue", sources="sentences", progress=False)
    res.token_attr[0, 0] = np.nan
    back = AttributionResult.from_json(res.to_json())
    assert back.to_json() == res.to_json()
    np.testing.assert_array_equal(back.seq_attr, res.seq_attr)
    assert np.isnan(back.token_attr[0, 0]) and "NaN" not in res.to_json()


def test_summary_and_notebook_view_show_sources_escaped(tiny_lm) -> None:
    res = attribute(tiny_lm, "Sky is blue. Grass <b>is</b> green.", " blue", sources="sentences", progress=False)
    assert res.summary().startswith("ablation attribution on") and "sentences" in res.summary()
    page = res._repr_html_()
    assert "<b>is" not in page and "&lt;b&gt;is" in page
    assert "whylm-ranking" in page and page.count("<tr") == 3  # header + two sources
