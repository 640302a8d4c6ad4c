"""Dashboard tests with Streamlit's AppTest: every page's widgets, runs on a tiny random model,
errors shown as one-line messages, History rows, the audit store and the ``whylm`` CLI."""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from dashboard.store import REDACTED, AuditStore, scrub  # noqa: E402
from explain.errors import WhylmError  # noqa: E402
from reference import leave_one_out, token_features  # noqa: E402

TIMEOUT = 60
XSS = "<img src=x onerror=alert(1)>"


def page(module: str) -> AppTest:
    """An AppTest that renders one page module's ``render()``."""
    return AppTest.from_string(
        f"from dashboard.pages import {module}\n{module}.render()\n", default_timeout=TIMEOUT
    )


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def no_traceback(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def htmls(at: AppTest) -> list[str]:
    return [h.proto.body for h in at.get("html")]


def plotly_array(value) -> np.ndarray:
    """A plotly JSON array: a list, or plotly 6's ``{"dtype", "bdata", "shape"}`` typed array."""
    if isinstance(value, dict) and "bdata" in value:
        import base64

        flat = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        shape = value.get("shape")
        if isinstance(shape, str):
            shape = [int(x) for x in shape.split(",")]
        return flat.reshape(shape) if shape else flat
    return np.array(value, dtype=float)


def use_local_model(at: AppTest, prefix: str, folder: str) -> None:
    box = at.selectbox(key=f"{prefix}_model_choice")
    assert Path(folder).name in box.options, box.options  # options show the folder's name
    box.set_value(folder)


# ------------------------------------------------------------------------- store
def test_store_roundtrip_search_delete_export(tmp_path):
    store = AuditStore(tmp_path / "a" / "audits.sqlite")
    a = store.save("explain", {"prompt": "capital of France", "model": None}, {"x": np.float32(1.5)},
                   model="tiny", method="ablation")
    b = store.save("signals", {"prompt": "who wrote it"}, {"scores": {"risk": 0.2}}, model="tiny")
    assert [r.id for r in store.list()] == [b, a]
    assert [r.id for r in store.list("france")] == [a]
    assert [r.id for r in store.list(kind="signals")] == [b]
    assert store.list("50%_") == []
    assert store.get(a).result == {"x": 1.5}
    exported = json.loads(store.export())
    assert [r["id"] for r in exported["runs"]] == [a, b]
    assert store.delete(a) and not store.delete(a)
    assert store.count() == 1
    mode = sqlite3.connect(store.path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_store_survives_reopen_and_scrubs_keys(tmp_path):
    path = tmp_path / "audits.sqlite"
    key = "sk-" + "A1b2C3d4" * 4
    AuditStore(path).save(
        "causal", {"variables": ["a", "b"], "api_key": key, "url": f"http://h/v1?key={key}",
                   "note": f"Authorization: Bearer {key}"},
        {"graph": {}}, model=f"openai:{key}",
    )
    again = AuditStore(path)  # a new process would see the same
    (run,) = again.list()
    raw = Path(path).read_bytes() + (Path(str(path) + "-wal").read_bytes()
                                      if Path(str(path) + "-wal").exists() else b"")
    assert key.encode() not in raw
    assert "api_key" not in run.inputs
    assert REDACTED in run.inputs["url"] and REDACTED in run.model
    assert scrub({"token_key": "x", "prompt": "hi"}) == {"prompt": "hi"}


def test_store_rejects_unknown_kind(tmp_path):
    with pytest.raises(ValueError, match="unknown run kind"):
        AuditStore(tmp_path / "s.sqlite").save("other", {}, {})


# ------------------------------------------------------------------------- app shell
def test_app_navigation_has_every_page(data_dir):
    at = AppTest.from_file(str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py"),
                           default_timeout=TIMEOUT).run()
    no_traceback(at)
    assert at.title[0].value == "Explain"
    at.text_area(key="ex_prompt").set_value("kept across pages").run()
    for name, title in (("signals", "Signals"), ("causal", "Causal"), ("history", "History")):
        at.switch_page(f"pages/{name}_page.py").run()
        no_traceback(at)
        assert at.title[0].value == title
    at.switch_page("pages/explain_page.py").run()
    assert at.text_area(key="ex_prompt").value == "kept across pages"


def test_page_errors_are_one_line_user_or_internal(data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("WHYLM_LOG_DIR", str(tmp_path / "logs"))
    at = AppTest.from_string(
        "from dashboard.common import run_safely\n"
        "from explain.errors import WhylmError\n"
        "def bad_input():\n    raise WhylmError('column x not found\\nsecond line')\n"
        "def bug():\n    raise ValueError('operands could not be broadcast together')\n"
        "assert run_safely('Check', bad_input) is None\n"
        "assert run_safely('Check', bug) is None\n", default_timeout=TIMEOUT).run()
    no_traceback(at)
    user, internal = errors(at)
    assert user == "column x not found"
    # a ValueError from a library is not the user's fault: one line, the traceback in a log file
    internal = internal.replace("\\", "")  # md_escape'd
    head = "internal error in dashboard: Check (ValueError: operands could not be broadcast together)"
    assert internal.startswith(head) and "\n" not in internal
    (log,) = (tmp_path / "logs").iterdir()
    assert internal.endswith(f"the traceback is in {log}")
    assert "Traceback (most recent call last)" in log.read_text() and "def bug" not in internal


# ------------------------------------------------------------------------- explain
def test_explain_widgets_present(data_dir):
    at = page("explain_page").run()
    no_traceback(at)
    assert at.selectbox(key="ex_model_choice").value.startswith("Embedded")
    assert "ablation" in at.selectbox(key="ex_method").options
    assert at.caption  # the method's note
    assert at.button(key="ex_run").label == "Explain"


def test_explain_empty_prompt_shows_message(data_dir):
    at = page("explain_page").run()
    at.button(key="ex_run").click().run()
    no_traceback(at)
    assert errors(at) and "prompt is empty" in errors(at)[0]
    assert "\n" not in errors(at)[0]


def test_model_picker_offers_only_the_started_folders(data_dir, models, tmp_path):
    at = page("explain_page").run()
    no_traceback(at)
    assert at.selectbox(key="ex_model_choice").options == [
        "Embedded SmolLM2-135M-Instruct", Path(models).name]
    # a reopened run (or a forged session) naming a server path gets the embedded model, no read
    for forged in ("/etc/shadow", str(tmp_path / "no-such-model"), "gpt2"):
        at = page("explain_page")
        at.session_state["ex_model_choice"] = "Local folder"
        at.session_state["ex_model_path"] = forged
        at.run()
        no_traceback(at)
        assert at.selectbox(key="ex_model_choice").value.startswith("Embedded")
        assert at.warning and "not among this dashboard's model folders" in at.warning[0].value


def test_model_paths_outside_the_roots_cannot_be_loaded(models, tmp_path):
    from dashboard.models import load_model

    not_a_model = Path(models) / "config.json"  # exists, inside the root, not a model folder
    paths = ["/etc/shadow", "/etc", str(tmp_path / "missing"), str(not_a_model),
             models + "/../" + Path(models).name, "HuggingFaceTB/SmolLM2-135M"]
    messages = []
    for path in paths:
        with pytest.raises(WhylmError) as info:
            load_model(path)
        messages.append(str(info.value).replace(path, "PATH"))
    # one message for an existing file, folder, missing path or hub id: existence is not revealed
    assert set(messages) == {messages[0]}
    assert "not one of this dashboard's model folders" in messages[0]
    assert "no such" not in messages[0] and "JSON" not in messages[0]


def test_explain_run_on_tiny_model(data_dir, models):
    at = page("explain_page").run()
    use_local_model(at, "ex", models)
    at.text_area(key="ex_prompt").set_value(f"The capital of {XSS} is")
    at.slider(key="ex_max_new").set_value(3)
    at.run()
    at.button(key="ex_run").click().run()
    no_traceback(at)
    assert not errors(at), errors(at)
    charts = at.get("plotly_chart")
    assert charts, "no heatmap"
    heat = json.loads(charts[0].proto.spec)["data"][0]
    assert heat["type"] == "heatmap"
    # the heatmap shows the stored attributions (checked against a brute-force loop below)
    (stored,) = AuditStore(data_dir / "audits.sqlite").list()
    res = stored.result["results"][0]
    z = plotly_array(heat["z"])
    assert z.shape == (3, len(res["input_tokens"]))
    np.testing.assert_allclose(z, np.array(res["token_attr"], dtype=float), atol=1e-6)
    bodies = htmls(at)
    assert any("whylm-highlight" in b for b in bodies)
    joined = "".join(bodies)
    assert "&lt;" in joined and "<img" not in joined
    # drill-down to another output token
    box = at.selectbox(key="ex_token")
    assert len(box.options) >= 1
    box.set_value(box.options[-1]).run()
    no_traceback(at)
    assert any("answer token" in b for b in htmls(at))
    assert at.get("download_button")
    # saved to History
    runs = AuditStore(data_dir / "audits.sqlite").list()
    assert len(runs) == 1 and runs[0].kind == "explain" and XSS in runs[0].inputs["prompt"]


def test_explain_compare_two_methods(data_dir, models, tiny_lm):
    from dashboard.pages.explain_page import method_notes
    from explain.attribution.inputs import default_baseline

    names = list(method_notes())
    if len(names) < 2:
        pytest.skip("only one attribution method registered")
    second = "attention" if "attention" in names else names[1]
    at = page("explain_page").run()
    use_local_model(at, "ex", models)
    at.text_area(key="ex_prompt").set_value("The capital of France is")
    at.text_input(key="ex_target").set_value(" Paris")
    at.toggle(key="ex_compare").set_value(True).run()
    at.selectbox(key="ex_method2").set_value(second).run()
    at.button(key="ex_run").click().run()
    no_traceback(at)
    assert not errors(at), errors(at)
    assert len(at.get("plotly_chart")) == 3  # main heatmap + one per method
    assert at.subheader[-1].value == "Comparison"
    # the first method's heatmap equals a brute-force loop: one plain forward pass per ablation
    baseline, _ = default_baseline(tiny_lm)  # the page runs with the per-tokenizer default
    ids, features = token_features(tiny_lm.tokenizer, "The capital of France is")
    target = tiny_lm.tokenizer(" Paris", add_special_tokens=False)["input_ids"]
    ref = leave_one_out(tiny_lm.model, ids, target, features, baseline)
    heat = json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]
    np.testing.assert_allclose(plotly_array(heat["z"]), ref, atol=2e-4)


# ------------------------------------------------------------------------- signals
def test_signals_widgets_and_errors(data_dir):
    at = page("signals_page").run()
    no_traceback(at)
    for key in ("sg_prompt", "sg_context", "sg_response"):
        assert at.text_area(key=key) is not None
    assert at.slider(key="sg_samples").value == 0
    at.button(key="sg_run").click().run()
    no_traceback(at)
    assert errors(at) and "prompt is empty" in errors(at)[0]


def test_signals_run_on_tiny_model(data_dir, models):
    at = page("signals_page").run()
    use_local_model(at, "sg", models)
    at.text_area(key="sg_prompt").set_value(f"What is {XSS}?")
    at.text_area(key="sg_response").set_value(" Paris is the capital.")
    at.text_area(key="sg_context").set_value("The capital of France is Paris.")
    at.run()
    at.button(key="sg_run").click().run()
    no_traceback(at)
    assert not errors(at), errors(at)
    assert at.get("plotly_chart")
    assert any("whylm-highlight" in b for b in htmls(at))
    assert "<img" not in "".join(htmls(at))
    at.radio(key="sg_view").set_value("entropy").run()
    no_traceback(at)
    (run,) = AuditStore(data_dir / "audits.sqlite").list()
    assert run.kind == "signals"
    assert_reopens("signals_page", run.id)


def assert_reopens(module: str, run_id: int) -> AppTest:
    """A fresh session of the page shows the stored run when History asks it to."""
    from dashboard.common import REOPEN_KEY

    at = page(module)
    at.session_state[REOPEN_KEY] = {"kind": module.split("_")[0], "id": run_id}
    at.run()
    no_traceback(at)
    assert not errors(at), errors(at)
    assert any(f"Reopened run {run_id}" in i.value for i in at.info)
    assert at.get("plotly_chart")
    return at


# ------------------------------------------------------------------------- causal
def local_markov_violations(g, df, alpha: float) -> tuple[int, int]:
    """Brute force: every node against each non-descendant non-parent given its parents, by a
    Fisher z test on the partial correlation. Returns: (violations, tests)."""
    import networkx as nx
    from scipy import stats

    def residual(col, given):
        y = df[col].to_numpy(float)
        if not given:
            return y - y.mean()
        x = np.column_stack([np.ones(len(df))] + [df[c].to_numpy(float) for c in given])
        return y - x @ np.linalg.lstsq(x, y, rcond=None)[0]

    k = n = 0
    for node in g:
        parents = sorted(g.predecessors(node))
        others = set(g) - nx.descendants(g, node) - set(parents) - {node}
        for other in sorted(others):
            r = np.corrcoef(residual(node, parents), residual(other, parents))[0, 1]
            z = np.arctanh(np.clip(r, -0.999999, 0.999999)) * np.sqrt(len(df) - len(parents) - 3)
            n += 1
            k += 2 * stats.norm.sf(abs(z)) < alpha
    return k, n


def _chain_csv(n: int = 300) -> bytes:
    rng = np.random.default_rng(0)
    a = rng.normal(size=n)
    b = 2 * a + rng.normal(size=n)
    c = -b + rng.normal(size=n)
    buf = io.StringIO()
    buf.write("a,b,c\n")
    for row in zip(a, b, c):
        buf.write(",".join(f"{x:.5f}" for x in row) + "\n")
    return buf.getvalue().encode()


def test_causal_widgets_and_errors(data_dir):
    at = page("causal_page").run()
    no_traceback(at)
    assert at.text_area(key="cz_vars").value
    assert at.radio(key="cz_backend").options[:2] == ["Embedded SmolLM2-135M-Instruct", "Local model folder"]
    # no field for an API key anywhere
    assert not [t for t in at.text_input if "key" in (t.label or "").lower()]
    at.text_area(key="cz_vars").set_value("only one")
    at.button(key="cz_propose").click().run()
    no_traceback(at)
    assert errors(at) and "at least two" in errors(at)[0]


def test_causal_backend_down_shows_message(data_dir, monkeypatch):
    monkeypatch.setenv("WHYLM_LLM_ENDPOINTS", '[{"url": "http://127.0.0.1:9/v1"}]')  # --llm-endpoint
    at = page("causal_page").run()
    at.text_area(key="cz_vars").set_value("a\nb")
    at.radio(key="cz_backend").set_value("Server http://127.0.0.1:9/v1").run()
    at.text_input(key="cz_llm_model").set_value("m")
    at.run()
    at.button(key="cz_propose").click().run()
    no_traceback(at)
    assert errors(at) and "127.0.0.1:9" in errors(at)[0], errors(at)


def test_causal_propose_check_effect_on_tiny_model(data_dir, models):
    at = page("causal_page").run()
    at.text_area(key="cz_vars").set_value("a: the first\nb\nc")
    at.radio(key="cz_backend").set_value("Local model folder").run()
    assert at.selectbox(key="cz_folder").options == [Path(models).name]
    at.selectbox(key="cz_folder").set_value(models)
    at.selectbox(key="cz_judge").set_value("none: the model's own probabilities")  # a random model
    at.number_input(key="cz_threshold").set_value(0.51)
    at.run()
    at.button(key="cz_propose").click().run()
    no_traceback(at)
    assert not errors(at), errors(at)
    assert at.get("plotly_chart"), "no graph drawn"
    assert [d.label for d in at.get("download_button")][:2] == ["Download GML", "Download JSON"]
    # a CSV whose columns don't match the variables
    at.file_uploader(key="cz_csv").set_value(("x.csv", b"p,q\n1,2\n3,4\n", "text/csv"))
    at.run()
    at.button(key="cz_check").click().run()
    no_traceback(at)
    assert errors(at) and "is not a column of the data" in errors(at)[0], errors(at)
    # the right data
    at.file_uploader(key="cz_csv").set_value(("chain.csv", _chain_csv(), "text/csv"))
    at.run()
    at.button(key="cz_check").click().run()
    no_traceback(at)
    assert at.metric[0].label == "violation rate"
    # the rate shown equals our own local-Markov count: partial-correlation tests at alpha 0.05
    import networkx as nx

    graph = AuditStore(data_dir / "audits.sqlite").list(kind="causal")[0].result["graph"]
    g = nx.DiGraph()
    g.add_nodes_from(n if isinstance(n, str) else n["id"] for n in graph["nodes"])
    g.add_edges_from((e["source"], e["target"]) for e in graph["edges"])
    k, n = local_markov_violations(g, pd.read_csv(io.BytesIO(_chain_csv())), alpha=0.05)
    assert at.metric[0].value == f"{100 * k / n if n else 0:.1f}%", (at.metric[0].value, k, n, graph)
    if k == 0:  # no violated condition: the graph must not be rejected
        assert not errors(at), errors(at)
    # an effect along a directed path of the (random) proposed graph
    import networkx as nx

    graph = AuditStore(data_dir / "audits.sqlite").list(kind="causal")[-1].result["graph"]
    g = nx.DiGraph([(e["source"], e["target"]) for e in graph["edges"]])
    pairs = [(u, v) for u in g for v in g if u != v and nx.has_path(g, u, v)]
    if not pairs:
        pytest.skip("the tiny model proposed no edge")
    t, o = pairs[0]
    at.selectbox(key="cz_treatment").set_value(t)
    at.selectbox(key="cz_outcome").set_value(o)
    at.run()
    at.button(key="cz_effect").click().run()
    no_traceback(at)
    assert any(m.label.startswith(f"effect of {t} on {o}") for m in at.metric), errors(at)
    runs = AuditStore(data_dir / "audits.sqlite").list()
    assert [r.method for r in runs] == ["effect", "check (fisher_z)", "propose (auto)"]
    again = assert_reopens("causal_page", runs[0].id)
    assert any(m.label.startswith(f"effect of {t} on {o}") for m in again.metric)


# ------------------------------------------------------------------------- history
def test_history_lists_searches_reopens_deletes(data_dir):
    store = AuditStore(data_dir / "audits.sqlite")
    res = {"input_tokens": ["a", XSS], "output_tokens": [" b"], "token_attr": [[0.5, -0.2]],
           "seq_attr": [0.5, -0.2], "target_logprobs": [-1.0], "method": "ablation"}
    a = store.save("explain", {"prompt": f"a {XSS}", "model": None, "methods": ["ablation"],
                               "chat": False, "target": " b", "max_new_tokens": 8},
                   {"results": [res]}, model="tiny", method="ablation")
    store.save("signals", {"prompt": "who wrote Faust?", "model": None}, {}, model="tiny")

    app = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
    at = AppTest.from_file(app, default_timeout=TIMEOUT).run()
    at.switch_page("pages/history_page.py").run()
    no_traceback(at)
    assert at.title[0].value == "History"
    table = at.dataframe[0].value
    assert len(table) == 2
    at.text_input(key="hi_query").set_value("faust").run()
    assert len(at.dataframe[0].value) == 1
    at.text_input(key="hi_query").set_value("").run()
    assert at.get("download_button")
    assert "<img" not in "".join(htmls(at))
    # reopen the explain run in its page
    box = at.selectbox(key="hi_run")
    box.set_value([o for o in box.options if o.startswith(f"{a} ")][0]).run()
    at.button(key="hi_reopen").click().run()
    no_traceback(at)
    assert at.title[0].value == "Explain"
    assert at.text_area(key="ex_prompt").value == f"a {XSS}"
    assert at.get("plotly_chart")
    # delete it
    at.switch_page("pages/history_page.py").run()
    box = at.selectbox(key="hi_run")
    box.set_value([o for o in box.options if o.startswith(f"{a} ")][0]).run()
    at.checkbox(key="hi_confirm").check().run()
    at.button(key="hi_delete").click().run()
    no_traceback(at)
    assert store.get(a) is None
    assert len(at.dataframe[0].value) == 1


def test_browser_screenshots_go_to_the_docs_only_when_asked(tmp_path):
    from test_dashboard_browser import ROOT, screenshot_dirs

    docs = ROOT / "docs" / "screenshots"
    assert screenshot_dirs(tmp_path, {}) == [tmp_path]
    assert screenshot_dirs(tmp_path, {"WHYLM_UPDATE_SCREENSHOTS": "0"}) == [tmp_path]
    assert screenshot_dirs(tmp_path, {"WHYLM_UPDATE_SCREENSHOTS": "1"}) == [tmp_path, docs]
    assert screenshot_dirs(tmp_path, {"WHYLM_ARTIFACTS": "/a"}) == [tmp_path, Path("/a/screenshots")]


# ------------------------------------------------------------------------- cli
def test_cli_help_and_errors(capsys, monkeypatch):
    from dashboard import cli

    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    assert "dashboard" in out and "example" in out
    with pytest.raises(SystemExit):
        cli.main(["dashboard", "--help"])
    assert "--port" in capsys.readouterr().out
    assert cli.main(["dashboard", "--port", "70000"]) == 2
    assert "error: port 70000" in capsys.readouterr().err
    assert cli.main([]) == 2


def test_cli_dashboard_command_line(monkeypatch, tmp_path, tiny_dir, capsys):
    import os

    from dashboard import cli

    seen = {}

    def fake_call(cmd, env):
        seen["cmd"], seen["env"] = cmd, env
        return 0

    monkeypatch.setattr(cli, "run_child", fake_call)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert cli.main(["dashboard", "--port", "8765", "--data-dir", str(tmp_path / "d"),
                     "--model", tiny_dir, "--model-dir", str(tmp_path), "--model-dir", tiny_dir]) == 0
    cmd = seen["cmd"]
    assert cmd[1:4] == ["-m", "streamlit", "run"] and cmd[4].endswith("app.py")
    assert cmd[cmd.index("--server.address") + 1] == "127.0.0.1"
    assert cmd[cmd.index("--server.port") + 1] == "8765"
    assert seen["env"]["WHYLM_DATA_DIR"] == str((tmp_path / "d").resolve())
    assert seen["env"]["WHYLM_MODEL"] == str(Path(tiny_dir).resolve())
    assert seen["env"]["HF_HUB_OFFLINE"] == "1"
    assert seen["env"]["WHYLM_MODEL_DIRS"].split(os.pathsep) == [
        str(tmp_path.resolve()), str(Path(tiny_dir).resolve())]
    assert "warning" not in capsys.readouterr().err  # loopback: no warning
    assert cli.main(["dashboard", "--host", "0.0.0.0"]) == 0
    assert "no login: anyone who reaches this port" in capsys.readouterr().err
    # a hub id or a folder without a model is refused before the server starts
    seen.clear()
    assert cli.main(["dashboard", "--model", "HuggingFaceTB/SmolLM2-135M"]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert cli.main(["dashboard", "--model", str(tmp_path / "d")]) == 2
    assert "no config.json" in capsys.readouterr().err
    assert cli.main(["dashboard", "--model-dir", str(tmp_path / "nope")]) == 2
    assert "--model-dir" in capsys.readouterr().err and not seen
