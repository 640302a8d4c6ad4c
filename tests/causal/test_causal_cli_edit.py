"""`whylm causal edit | confounders | critique | effect` through the real entry point: examples in
--help, provenance kept through proposal JSON, one-line errors with exit 2."""

from __future__ import annotations

import json

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from causal.ask import pair_prompt
from causal.graph import ProposedGraph, load_graph
from dashboard.cli import main


@pytest.mark.parametrize("command", ["edit", "confounders", "critique", "effect"])
def test_help_shows_an_example(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["causal", command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "example:" in out and f"whylm causal {command}" in out


def test_edit_a_proposal_keeps_provenance_and_writes_gml(tmp_path, capsys):
    g = nx.DiGraph()
    g.add_nodes_from(["smoking", "tar", "cancer"])
    g.add_edge("smoking", "tar", confidence=0.95, evidence="data: oriented by PC", origin="data")
    proposal = ProposedGraph(g, undecided=[("tar", "cancer", {"p": 0.5, "p_raw": 0.6})], llm="replay:dict",
                             strategy="hybrid")
    src = tmp_path / "proposal.json"
    src.write_text(proposal.to_json())
    out = tmp_path / "edited.json"
    assert main(["causal", "edit", str(src), "--add", "tar->cancer", "--out", str(out)]) == 0
    edited = ProposedGraph.from_json(out.read_text())
    assert edited.undecided == []
    assert dict(((u, v), o) for u, v, o in edited.graph.edges(data="origin")) == {
        ("smoking", "tar"): "data", ("tar", "cancer"): "user"}
    assert "tar -> cancer  drawn by you  (user)" in capsys.readouterr().out
    gml = tmp_path / "edited.gml"
    assert main(["causal", "edit", str(out), "--reverse", "smoking -> tar", "--out", str(gml),
                 "--json", str(tmp_path / "r.json")]) == 0
    assert set(load_graph(gml).edges) == {("tar", "smoking"), ("tar", "cancer")}
    assert json.loads((tmp_path / "r.json").read_text())["edges"][0]["origin"] in ("data", "user")


def test_edit_an_edge_list(tmp_path, capsys):
    src = tmp_path / "g.txt"
    src.write_text("a -> b\nc -> d\nx -> y\n")
    out = tmp_path / "new.gml"
    assert main(["causal", "edit", str(src), "--add", "a -> c", "--reverse", "c -> d", "--remove", "x -> y",
                 "--out", str(out)]) == 0
    assert set(load_graph(out).edges) == {("a", "b"), ("a", "c"), ("d", "c")}


@pytest.mark.parametrize("argv, message", [
    (["--add", '"x->y" -> z'], "error: edge to add '\"x->y\" -> z' is not 'cause -> effect'"),
    (["--add", "b -> a"], "error: cannot add b -> a: the graph has a -> b; reverse it instead"),
    (["--add", "b -> c", "--add", "c -> a"], "error: these edits make a cycle: b -> c -> a -> b"),
    (["--add", "a -> q"], "error: cannot add a -> q: unknown variable 'q'"),
    ([], "error: nothing to edit"),
])
def test_bad_edits_exit_2_with_one_line(argv, message, tmp_path, capsys):
    src = tmp_path / "g.txt"
    src.write_text("a -> b\nc\n")
    code = main(["causal", "edit", str(src), *argv, "--out", str(tmp_path / "o.gml")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(message) and err.count("\n") == 1
    assert not (tmp_path / "o.gml").exists()


def test_confounders_and_critique_from_a_replay(tmp_path, capsys):
    world = nx.DiGraph([("genes", "smoking"), ("genes", "cancer"), ("smoking", "cancer")])
    answers = {}
    for x in world:
        for y in world:
            if x != y:
                answers[pair_prompt(x, y, none_option=True)] = "A" if world.has_edge(x, y) else "B"
    replay = tmp_path / "answers.json"
    replay.write_text(json.dumps(answers))
    code = main(["causal", "confounders", "smoking", "cancer", "--candidates", "genes", "--llm", f"replay:{replay}",
                 "--no-judge", "--no-progress", "--json", str(tmp_path / "c.json")])
    out = capsys.readouterr().out
    assert code == 0 and "genes: causes both" in out and "uncalibrated" in out
    assert [c["name"] for c in json.loads((tmp_path / "c.json").read_text())["confounders"]] == ["genes"]
    graph = tmp_path / "g.txt"
    graph.write_text("cancer -> smoking\n")
    code = main(["causal", "critique", str(graph), "--nodes", "genes", "--llm", f"replay:{replay}", "--no-judge",
                 "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0 and "doubtful cancer -> smoking" in out and "missing confounder genes" in out
    # no candidates and no descriptions: one line, exit 2
    assert main(["causal", "confounders", "smoking", "cancer", "--llm", f"replay:{replay}"]) == 2
    assert capsys.readouterr().err.startswith("error: name the candidate confounders")


def test_effect_prints_the_sensitivity_sentence(tmp_path, capsys):
    rng = np.random.default_rng(0)
    z = rng.normal(size=600)
    x = z + rng.normal(size=600)
    y = 0.5 * x + z + rng.normal(size=600)
    csv = tmp_path / "d.csv"
    pd.DataFrame({"z": z, "x": x, "y": y}).to_csv(csv, index=False)
    graph = tmp_path / "g.txt"
    graph.write_text("z -> x\nz -> y\nx -> y\n")
    assert main(["causal", "effect", str(graph), str(csv), "--treatment", "x", "--outcome", "y"]) == 0
    out = capsys.readouterr().out
    assert "Sensitivity: an unobserved confounder would have to explain at least" in out
