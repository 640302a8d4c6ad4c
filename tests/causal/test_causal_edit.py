"""Editing a proposed graph: ProposedGraph.with_edges, edge specs, provenance, cycles named."""

import networkx as nx
import pytest

from causal.errors import CausalError
from causal.graph import ProposedGraph, edge_origin, parse_edge, parse_edges


def _proposal() -> ProposedGraph:
    g = nx.DiGraph()
    g.add_nodes_from(["smoking", "tar", "cancer", "genes"])
    g.add_edge("smoking", "tar", confidence=0.9, evidence="llm pairwise: P(smoking->tar)=0.97", origin="judge")
    g.add_edge("genes", "cancer", confidence=0.95, evidence="data: oriented by PC", origin="data")
    return ProposedGraph(g, undecided=[("tar", "cancer", {"p": 0.55, "p_raw": 0.8})], llm="replay:dict")


def test_add_turns_an_undecided_pair_into_the_users_arrow():
    g = _proposal()
    g2 = g.with_edges(add=["tar -> cancer"])
    assert set(g2.graph.edges) == {("smoking", "tar"), ("genes", "cancer"), ("tar", "cancer")}
    assert g2.undecided == []
    assert g2.graph.edges["tar", "cancer"]["origin"] == "user"
    assert "was undecided" in g2.graph.edges["tar", "cancer"]["evidence"]
    # the others keep their provenance; the original is untouched
    assert g2.graph.edges["smoking", "tar"]["origin"] == "judge"
    assert g2.graph.edges["genes", "cancer"]["origin"] == "data"
    assert not g.graph.has_edge("tar", "cancer") and len(g.undecided) == 1


def test_reverse_and_remove():
    g2 = _proposal().with_edges(reverse=[("genes", "cancer")], remove=["smoking->tar"])
    assert set(g2.graph.edges) == {("cancer", "genes")}
    d = g2.graph.edges["cancer", "genes"]
    assert d["origin"] == "user" and "confidence" not in d
    assert d["evidence"].startswith("reversed by the user (was genes -> cancer); before: data: oriented by PC")
    # removing an undecided pair says "no direct edge": it leaves the undecided list
    g3 = _proposal().with_edges(remove=[("cancer", "tar")])
    assert g3.undecided == [] and g3.graph.number_of_edges() == 2


def test_a_cycle_is_refused_and_named():
    g = _proposal().with_edges(add=["tar -> cancer"])
    with pytest.raises(CausalError, match=r"^these edits make a cycle: cancer -> smoking -> tar -> cancer$"):
        g.with_edges(add=[("cancer", "smoking")])
    with pytest.raises(CausalError, match="cycle: tar -> smoking -> tar|the graph has smoking -> tar"):
        g.with_edges(add=[("tar", "smoking")])


@pytest.mark.parametrize("edits, message", [
    (dict(add=["smoking -> lung cancer"]), "cannot add smoking -> lung cancer: unknown variable 'lung cancer'; did you mean 'cancer'?"),
    (dict(remove=["tar -> smoking"]), "cannot remove tar -> smoking: no such edge (the graph has smoking -> tar)"),
    (dict(reverse=["tar -> genes"]), "cannot reverse tar -> genes: no such edge"),
    (dict(add=["tar -> smoking"]), "cannot add tar -> smoking: the graph has smoking -> tar; reverse it instead"),
    (dict(add=["tar -> tar"]), "cannot add tar -> tar: a variable cannot cause itself"),
    (dict(add=["tar -> cancer", "cancer -> tar"]), "cannot add both tar -> cancer and cancer -> tar"),
    (dict(add=['"x->y" -> z']), "edge to add '\"x->y\" -> z' is not 'cause -> effect'"),
])
def test_bad_edits_name_the_problem_in_one_line(edits, message):
    with pytest.raises(CausalError) as exc:
        _proposal().with_edges(**edits)
    assert str(exc.value).startswith(message) and "\n" not in str(exc.value)


@pytest.mark.parametrize("spec", ['"x->y" -> z', "a -> b -> c", "a", "a -> ", " -> b", "a <- b", "a->>b", 3, ("a",)])
def test_malformed_edge_specs_are_rejected(spec):
    with pytest.raises(CausalError, match="is not 'cause -> effect'"):
        parse_edge(spec)


def test_edge_specs_users_type():
    assert parse_edge("lung cancer->tar deposits") == ("lung cancer", "tar deposits")
    assert parse_edge("  a  ->  b\n") == ("a", "b")  # copied with a trailing newline
    assert parse_edges(("a", "b")) == [("a", "b")]
    assert parse_edges(["a -> b", ["c", "d"]]) == [("a", "b"), ("c", "d")]


def test_provenance_survives_json_and_old_files_get_one():
    g2 = _proposal().with_edges(add=["tar -> cancer"])
    back = ProposedGraph.from_json(g2.to_json())
    assert dict(((u, v), o) for u, v, o in back.graph.edges(data="origin")) == {
        ("smoking", "tar"): "judge", ("genes", "cancer"): "data", ("tar", "cancer"): "user"}
    old = {"nodes": ["a", "b", "c"], "edges": [
        {"source": "a", "target": "b", "confidence": 0.95, "evidence": "data: adjacent (p<=0.001), oriented as a collider"},
        {"source": "c", "target": "b", "confidence": 0.8, "evidence": "llm ordering: P(c directly causes b)=0.7"}]}
    read = ProposedGraph.from_dict(old)
    assert read.graph.edges["a", "b"]["origin"] == "data" and read.graph.edges["c", "b"]["origin"] == "judge"
    assert edge_origin({}) == "user"


def test_summary_says_who_drew_each_edge():
    text = _proposal().with_edges(add=["tar -> cancer"]).summary()
    assert "tar -> cancer  drawn by you  (user)" in text
    assert "smoking -> tar  confidence 0.90  (judge)" in text


@pytest.mark.parametrize("line", ['"x->y" -> z', "'x->y' -> z", "'a' -> b", "a -> b -> >c"])
def test_graph_files_reject_quoted_edge_specs(line):
    from causal.graph import parse_graph

    with pytest.raises(CausalError, match=r"graph line 2 is not 'a -> b' \(names without quotes\)"):
        parse_graph("u -> v\n" + line + "\n")


def test_apostrophes_inside_names_are_fine():
    from causal.graph import parse_graph

    assert parse_edge("Crohn's disease -> diarrhoea") == ("Crohn's disease", "diarrhoea")
    assert set(parse_graph("Crohn's disease -> diarrhoea\nz -> x -> y\n").edges) == {
        ("Crohn's disease", "diarrhoea"), ("z", "x"), ("x", "y")}
