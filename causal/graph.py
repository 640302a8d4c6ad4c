"""Causal graphs as whylm holds them: :class:`ProposedGraph`, DAG enforcement, reading graph files,
and the edges whose direction the data can see (compelled edges of the Markov equivalence class).

Examples:
    >>> g = parse_graph("smoking -> tar\\ntar -> cancer")
    >>> sorted(g.edges)
    [('smoking', 'tar'), ('tar', 'cancer')]
    >>> sorted(compelled_edges(nx.DiGraph([("a", "c"), ("b", "c")])))
    [('a', 'c'), ('b', 'c')]
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import networkx as nx
import numpy as np

from causal.errors import CausalError, did_you_mean
from causal.judge import JudgeResult
from causal.plot import graph_figure
from explain.serialize import Result, jsonable


# --------------------------------------------------------------------------- result
_FLOAT_KEYS = ("confidence", "p", "p_raw", "p_value", "p_no_edge")  # None read back as NaN


def _triples(rows: Sequence[tuple[str, str, Mapping[str, Any]]]) -> list[dict[str, Any]]:
    return [{"source": u, "target": v, **jsonable(dict(d))} for u, v, d in rows]


def _read_triples(rows: Any) -> list[tuple[str, str, dict]]:
    out = []
    for e in rows or []:
        e = dict(e)
        u, v = e.pop("source"), e.pop("target")
        for k in _FLOAT_KEYS:
            if k in e and e[k] is None:
                e[k] = float("nan")
        out.append((u, v, e))
    return out


@dataclass
class ProposedGraph(Result):
    """A proposed causal graph and how it was obtained.

    Attributes:
        graph: ``networkx.DiGraph`` of the *committed* edges, always acyclic; edge attributes
            ``confidence`` (calibrated against the judge's measured accuracy, in [0, 1]) and
            ``evidence`` (where the edge came from).
        undecided: pairs the judge could not orient confidently, as ``(a, b, attrs)`` with
            ``attrs["p"]`` the calibrated P(a -> b) and ``attrs["p_raw"]`` the model's own; drawn
            as dashed lines, never as arrows.
        dropped: edges removed to break cycles, as ``(cause, effect, attrs)``.
        flagged: LLM edges removed because the data say the two variables are (conditionally)
            independent, as ``(cause, effect, attrs)`` with the p-value and separating set.
        queries: questions asked to the LLM (cached answers included).
        strategy: the strategy used.
        llm: the backend's ``name:model`` label.
        seconds: wall time.
        judge: the judge's measured orientation accuracy (:class:`causal.judge.JudgeResult`
            without its per-pair answers), or None when the proposal was not calibrated.
        threshold: calibrated confidence an LLM orientation needs to be committed.
        data_orientation: with data, what the data's equivalence class (PC's CPDAG: v-structures
            and Meek rules) says about each pair the LLM left undecided, as ``(a, b, attrs)`` with
            ``attrs["data"]`` one of ``"oriented"`` (the data fix the direction: ``attrs["cause"]``,
            ``attrs["effect"]``), ``"undecidable"`` (adjacent, but observational data cannot tell the
            direction: Markov-equivalent graphs disagree) or ``"not adjacent"`` (the data find them
            independent given some set); empty without data.

    Each committed edge carries an ``origin`` attribute: ``"judge"`` (an LLM orientation the judge's
    measured accuracy made confident), ``"data"`` (oriented by the data) or ``"user"`` (added,
    reversed or confirmed by :meth:`with_edges`). (Not ``source``: node-link JSON, ours and
    networkx's, names an edge's endpoints ``source`` and ``target``.)

    Examples:
        >>> g = ProposedGraph(nx.DiGraph([("a", "b")]), undecided=[("b", "c", {"p": 0.5})])
        >>> ProposedGraph.from_json(g.to_json()).to_dict() == g.to_dict()
        True
    """

    graph: nx.DiGraph
    undecided: list[tuple[str, str, dict]] = field(default_factory=list)
    dropped: list[tuple[str, str, dict]] = field(default_factory=list)
    flagged: list[tuple[str, str, dict]] = field(default_factory=list)
    queries: int = 0
    strategy: str = ""
    llm: str = ""
    seconds: float = 0.0
    judge: Any = None
    threshold: float = float("nan")
    data_orientation: list[tuple[str, str, dict]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Nodes, committed edges, undecided, dropped and flagged pairs, judge and metadata.

        Returns:
            a dict of plain JSON values (NaN and infinities as ``None``) for :meth:`from_dict`.
        """
        return jsonable({
            "nodes": list(self.graph.nodes),
            "edges": _triples([(u, v, {**d, "origin": edge_origin(d)}) for u, v, d in self.graph.edges(data=True)]),
            "undecided": _triples(self.undecided),
            "dropped": _triples(self.dropped),
            "flagged": _triples(self.flagged),
            "queries": self.queries, "strategy": self.strategy, "llm": self.llm,
            "seconds": self.seconds, "threshold": self.threshold,
            "judge": self.judge.to_dict() if self.judge is not None else None,
            "data_orientation": _triples(self.data_orientation),
        })

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ProposedGraph":
        """Rebuild a proposal from :meth:`to_dict` output (older files without ``undecided`` too).

        Returns:
            a :class:`ProposedGraph`.
        """
        try:
            g = nx.DiGraph()
            g.add_nodes_from(d["nodes"])
            for u, v, attrs in _read_triples(d["edges"]):
                attrs["origin"] = edge_origin(attrs)
                g.add_edge(u, v, **attrs)
            judge = JudgeResult.from_dict(d["judge"]) if d.get("judge") else None
            threshold = d.get("threshold")
            return cls(
                graph=g,
                undecided=_read_triples(d.get("undecided")),
                dropped=_read_triples(d.get("dropped")),
                flagged=_read_triples(d.get("flagged")),
                queries=int(d.get("queries", 0)),
                strategy=str(d.get("strategy", "")),
                llm=str(d.get("llm", "")),
                seconds=float("nan") if d.get("seconds", 0.0) is None else float(d.get("seconds", 0.0)),
                judge=judge,
                threshold=float("nan") if threshold is None else float(threshold),
                data_orientation=_read_triples(d.get("data_orientation")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CausalError(f"not a proposed-graph JSON: {exc}") from None

    @classmethod
    def from_json(cls, text: str) -> "ProposedGraph":
        """Read what :meth:`to_json` wrote.

        Returns:
            a :class:`ProposedGraph`.
        """
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CausalError(f"not a proposed-graph JSON: {exc}") from None
        if not isinstance(d, dict):
            raise CausalError("not a proposed-graph JSON: expected an object")
        return cls.from_dict(d)

    def to_json(self, indent: int | None = 1) -> str:
        """The proposal as JSON text (NaN and infinities as ``null``). Returns: the text."""
        return super().to_json(indent=indent)

    def to_gml(self) -> str:
        """The committed graph in GML (edge attributes kept; undecided pairs are not edges).

        Returns:
            GML text.
        """
        g = nx.DiGraph()
        g.add_nodes_from(self.graph.nodes)
        for u, v, d in self.graph.edges(data=True):
            g.add_edge(u, v, **{k: (x if isinstance(x, (int, float, str)) else str(x)) for k, x in d.items()})
        return "\n".join(nx.generate_gml(g))

    def with_edges(
        self,
        add: Sequence[Any] = (),
        remove: Sequence[Any] = (),
        reverse: Sequence[Any] = (),
    ) -> "ProposedGraph":
        """A new proposal with the user's edits; this one is left unchanged.

        Each edit is a pair ``(cause, effect)`` or a string ``"cause -> effect"``. ``add`` draws an
        arrow (an undecided pair turned into an arrow leaves ``undecided``; an arrow already there
        becomes the user's); ``remove`` deletes an arrow, or an undecided pair (then the user says
        there is no direct edge); ``reverse`` turns ``a -> b`` into ``b -> a``. Edges the user
        touches get ``origin="user"``; the others keep theirs (``"judge"`` or ``"data"``).
        Removals run first, then reversals, then additions.

        Returns:
            a new :class:`ProposedGraph`.

        Raises:
            CausalError: an unknown variable (named), an edge to remove or reverse that is not
                there, an arrow and its reverse both asked for, or a cycle (named: ``a -> b -> a``).

        Examples:
            >>> g = ProposedGraph(nx.DiGraph([("a", "b")]), undecided=[("b", "c", {"p": 0.5})])
            >>> g2 = g.with_edges(add=["b -> c"], reverse=[("a", "b")])
            >>> sorted(g2.graph.edges(data="origin")), g2.undecided
            ([('b', 'a', 'user'), ('b', 'c', 'user')], [])
            >>> ProposedGraph(nx.DiGraph([("a", "b"), ("b", "c")])).with_edges(add=["c -> a"])
            Traceback (most recent call last):
            ...
            causal.errors.CausalError: these edits make a cycle: c -> a -> b -> c
        """
        adds, removes, reverses = (parse_edges(x, what) for x, what in
                                   ((add, "add"), (remove, "remove"), (reverse, "reverse")))
        known = set(self.graph.nodes) | {n for a, b, _ in self.undecided for n in (a, b)}
        for what, pairs in (("add", adds), ("remove", removes), ("reverse", reverses)):
            for u, v in pairs:
                for n in (u, v):
                    if n not in known:
                        raise CausalError(f"cannot {what} {u} -> {v}: unknown variable '{n}'"
                                          f"{did_you_mean(n, sorted(known))}")
        g = self.graph.copy()
        g.add_nodes_from(known)
        undecided = [(a, b, dict(d)) for a, b, d in self.undecided]

        def drop_undecided(u: str, v: str) -> bool:
            before = len(undecided)
            undecided[:] = [(a, b, d) for a, b, d in undecided if {a, b} != {u, v}]
            return len(undecided) < before

        for u, v in removes:
            if g.has_edge(u, v):
                g.remove_edge(u, v)
            elif not drop_undecided(u, v):
                hint = f" (the graph has {v} -> {u})" if g.has_edge(v, u) else ""
                raise CausalError(f"cannot remove {u} -> {v}: no such edge{hint}")
        for u, v in reverses:
            if not g.has_edge(u, v):
                hint = f" (the graph has {v} -> {u} already)" if g.has_edge(v, u) else ""
                raise CausalError(f"cannot reverse {u} -> {v}: no such edge{hint}")
            attrs = dict(g.edges[u, v])
            g.remove_edge(u, v)
            g.add_edge(v, u, **_user_attrs(attrs, f"reversed by the user (was {u} -> {v})"))
        for u, v in adds:
            if u == v:
                raise CausalError(f"cannot add {u} -> {v}: a variable cannot cause itself")
            if (v, u) in adds:
                raise CausalError(f"cannot add both {u} -> {v} and {v} -> {u}")
            if g.has_edge(v, u):
                raise CausalError(f"cannot add {u} -> {v}: the graph has {v} -> {u}; reverse it instead")
            was_undecided = drop_undecided(u, v)
            attrs = dict(g.edges[u, v]) if g.has_edge(u, v) else {}
            note = "added by the user" + (" (was undecided)" if was_undecided else "")
            g.add_edge(u, v, **_user_attrs(attrs, "confirmed by the user" if attrs else note))
        if not nx.is_directed_acyclic_graph(g):
            raise CausalError(f"these edits make a cycle: {cycle_text(g, [*adds, *((v, u) for u, v in reverses)])}")
        touched = {frozenset(e) for e in (*adds, *reverses)}
        return replace(
            self, graph=g, undecided=undecided,
            dropped=[(a, b, d) for a, b, d in self.dropped if frozenset((a, b)) not in touched],
            flagged=[(a, b, d) for a, b, d in self.flagged if frozenset((a, b)) not in touched],
            data_orientation=[(a, b, d) for a, b, d in self.data_orientation
                              if any({a, b} == {x, y} for x, y, _ in undecided)],
        )

    def data_orientation_lines(self) -> list[str]:
        """What the data say about the undecided pairs, one line each (empty without data).

        Returns:
            lines such as ``"  data: smoking - cancer stays undecidable: ..."``.

        Examples:
            >>> g = ProposedGraph(nx.DiGraph(), undecided=[("a", "b", {}), ("b", "c", {})],
            ...     data_orientation=[("a", "b", {"data": "undecidable"}),
            ...                       ("b", "c", {"data": "oriented", "cause": "c", "effect": "b"})])
            >>> print("\\n".join(g.data_orientation_lines()))
              data: a - b stays undecidable: observational data can't tell the direction (Markov-equivalent graphs disagree); domain knowledge or an experiment can
              data: the data orient c -> b (v-structure or Meek's rules): add it with with_edges(add=[...]) or 'whylm causal edit --add'
        """
        out = []
        for a, b, d in self.data_orientation:
            status = d.get("data")
            if status == "oriented":
                out.append(f"  data: the data orient {d.get('cause')} -> {d.get('effect')} (v-structure or Meek's rules): "
                           "add it with with_edges(add=[...]) or 'whylm causal edit --add'")
            elif status == "undecidable":
                out.append(f"  data: {a} - {b} stays undecidable: observational data can't tell the direction "
                           "(Markov-equivalent graphs disagree); domain knowledge or an experiment can")
            elif status == "not adjacent":
                out.append(f"  data: {a} - {b} are not adjacent in the data (independent given some set)")
        return out

    def judge_in_words(self) -> str:
        """The judge's measured accuracy as one sentence, or a warning that the proposal is uncalibrated.

        Returns:
            text.
        """
        if self.judge is None:
            return ("this model's orientation accuracy was not measured: the confidences are the "
                    "model's own and are not calibrated")
        return self.judge.in_words()

    def figure(self, check: Any = None, title: str | None = None):
        """A plotly drawing: committed edges as arrows coloured by confidence (or by a
        :class:`GraphCheck`'s result), undecided pairs as dashed lines, with a legend and the
        judge's accuracy in words under the title.

        Returns:
            a ``plotly.graph_objects.Figure``.
        """
        return graph_figure(self.graph, check=check, title=title or f"proposed graph ({self.llm})",
                            undecided=self.undecided, note=self.judge_in_words())

    def summary(self) -> str:
        """A few plain lines: the judge's figure, committed edges, undecided, dropped, flagged.

        Returns:
            text.
        """
        n_pairs = self.graph.number_of_edges() + len(self.undecided)
        how = f" ({self.strategy}, {self.queries} LLM questions, {self.llm})" if self.llm else ""
        lines = [f"{self.graph.number_of_edges()} committed edges and {len(self.undecided)} undecided pairs "
                 f"over {self.graph.number_of_nodes()} variables{how}." if n_pairs or self.graph.number_of_nodes()
                 else "empty proposal."]
        if self.strategy != "file":  # a graph read from a file (whylm causal edit) had no judge to describe
            lines.append(self.judge_in_words()[0].upper() + self.judge_in_words()[1:] + ".")
        for u, v, d in sorted(self.graph.edges(data=True), key=lambda e: -_num(e[2].get("confidence", 2.0))):
            conf = d.get("confidence")
            strength = f"confidence {_num(conf):.2f}" if conf is not None else "drawn by you" \
                if edge_origin(d) == "user" else "no confidence"
            evidence = f" [{d['evidence']}]" if d.get("evidence") else ""
            lines.append(f"  {u} -> {v}  {strength}  ({edge_origin(d)}){evidence}")
        for a, b, d in self.undecided:
            lines.append(f"  undecided {a} - {b}  P({a} -> {b}) {_num(d.get('p')):.2f} after calibration "
                         f"(model's own {_num(d.get('p_raw')):.2f})")
        lines += self.data_orientation_lines()
        for u, v, d in self.dropped:
            lines.append(f"  dropped (cycle) {u} -> {v}  confidence {_num(d.get('confidence')):.2f}")
        for u, v, d in self.flagged:
            lines.append(f"  removed (independent in data, p={_num(d.get('p_value')):.3g}) {u} -> {v}")
        return "\n".join(lines)


ORIGINS = ("judge", "data", "user")  # where a committed edge came from


def edge_origin(attrs: Mapping[str, Any]) -> str:
    """Where an edge came from, also for edges written before the ``origin`` attribute existed.

    Returns:
        ``attrs["origin"]`` when set; else ``"data"`` when its evidence says the data oriented it,
        ``"judge"`` when an LLM did, ``"user"`` otherwise.

    Examples:
        >>> edge_origin({"evidence": "data: oriented by PC"}), edge_origin({"evidence": "llm pairwise: ..."})
        ('data', 'judge')
    """
    if attrs.get("origin") in ORIGINS:
        return str(attrs["origin"])
    ev = str(attrs.get("evidence", ""))
    if "llm" in ev:
        return "judge"
    if ev.startswith("data"):
        return "data"
    return "user"


def _user_attrs(attrs: Mapping[str, Any], note: str) -> dict[str, Any]:
    """The attributes of an edge the user drew: origin "user", the earlier evidence kept after the note."""
    out = {k: v for k, v in attrs.items() if k not in ("confidence", "origin", "evidence")}
    before = attrs.get("evidence")
    out["evidence"] = note + (f"; before: {before}" if before else "")
    out["origin"] = "user"
    return out


def _quoted(text: str) -> bool:
    """True when quotes wrap a name or an arrow (``"x->y" -> z``): quotes are not part of an edge
    list, so the line is not what it seems; an apostrophe inside a name (Crohn's disease) is fine."""
    if '"' in text or re.search(r"'[^']*->[^']*'", text):
        return True
    return any(len(p) > 1 and p[0] == p[-1] == "'" for p in (x.strip() for x in text.split("->")))


def parse_edge(spec: Any, what: str = "edge") -> tuple[str, str]:
    """One edge from ``"a -> b"`` (also ``"a->b"``) or a pair ``("a", "b")``.

    Returns:
        ``(cause, effect)`` with surrounding spaces stripped.

    Raises:
        CausalError: anything else, in one line quoting the spec (``'"x->y" -> z'``, ``"a -> b -> c"``,
            ``"a"``, an empty side).

    Examples:
        >>> parse_edge("smoking ->tar deposits")
        ('smoking', 'tar deposits')
        >>> parse_edge('"x->y" -> z')
        Traceback (most recent call last):
        ...
        causal.errors.CausalError: edge '"x->y" -> z' is not 'cause -> effect': write one arrow between two names
    """
    label = f"edge to {what}" if what != "edge" else "edge"
    if isinstance(spec, (tuple, list)) and len(spec) == 2 and all(isinstance(x, str) for x in spec):
        parts = [spec[0].strip(), spec[1].strip()]
    elif isinstance(spec, str):
        parts = [p.strip() for p in spec.split("->")]
        if len(parts) != 2 or _quoted(spec) or any(c in p for p in parts for c in "<>"):
            raise CausalError(f"{label} {spec!r} is not 'cause -> effect': write one arrow between two names")
    else:
        raise CausalError(f"{label} {spec!r} is not 'cause -> effect' or a (cause, effect) pair")
    if not all(parts):
        raise CausalError(f"{label} {spec!r} is not 'cause -> effect': a name is empty")
    return parts[0], parts[1]


def parse_edges(specs: Any, what: str = "edge") -> list[tuple[str, str]]:
    """Several edges (see :func:`parse_edge`); ``None`` or empty gives ``[]``, a lone string one edge.

    Returns:
        a list of ``(cause, effect)``.

    Examples:
        >>> parse_edges(["a->b", ("c", "d")]), parse_edges("x -> y"), parse_edges(None)
        ([('a', 'b'), ('c', 'd')], [('x', 'y')], [])
    """
    if specs is None:
        return []
    if isinstance(specs, str) or (isinstance(specs, tuple) and len(specs) == 2 and all(isinstance(x, str) for x in specs)):
        specs = [specs]
    return [parse_edge(s, what) for s in specs]


def cycle_text(graph: nx.DiGraph, through: Sequence[tuple[str, str]] = ()) -> str:
    """A cycle of ``graph`` as ``"a -> b -> c -> a"``, through the first of ``through`` that closes one.

    Returns:
        the text, or "" when the graph is acyclic.

    Examples:
        >>> cycle_text(nx.DiGraph([("a", "b"), ("b", "c"), ("c", "a")]), through=[("c", "a")])
        'c -> a -> b -> c'
    """
    for u, v in through:
        if graph.has_edge(u, v) and nx.has_path(graph, v, u):
            return " -> ".join([str(u), *map(str, nx.shortest_path(graph, v, u))])
    try:
        cycle = nx.find_cycle(graph)
    except nx.NetworkXNoCycle:
        return ""
    return " -> ".join([str(u) for u, _ in cycle] + [str(cycle[0][0])])


def _num(x: Any) -> float:
    return float(x) if isinstance(x, (int, float, np.floating, np.integer)) and not isinstance(x, bool) else float("nan")


def to_dag(edges: Sequence[tuple[str, str, dict]], nodes: Sequence[str]) -> tuple[nx.DiGraph, list]:
    """Build a DAG adding edges most-confident first; an edge closing a cycle is dropped.

    Returns:
        (DAG, dropped edges as ``(u, v, attrs)``).

    Examples:
        >>> g, dropped = to_dag([("a", "b", {"confidence": .9}), ("b", "a", {"confidence": .6})], ["a", "b"])
        >>> list(g.edges), [(u, v) for u, v, _ in dropped]
        ([('a', 'b')], [('b', 'a')])
    """
    g = nx.DiGraph()
    g.add_nodes_from(nodes)
    dropped = []
    for u, v, d in sorted(edges, key=lambda e: (-float(e[2].get("confidence", 0.0)), e[0], e[1])):
        if u == v or g.has_edge(u, v):
            continue
        if g.has_node(v) and g.has_node(u) and nx.has_path(g, v, u):
            dropped.append((u, v, dict(d, reason="would close a cycle")))
            continue
        g.add_edge(u, v, **d)
    return g, dropped


# --------------------------------------------------------------------------- strategies
# --------------------------------------------------------------------------- files
def parse_graph(text: str) -> nx.DiGraph:
    """Parse GML, JSON (ours or node-link) or an edge list (``a -> b`` lines, ``#`` comments).

    Returns:
        a ``networkx.DiGraph``.
    """
    s = text.strip()
    if not s:
        raise CausalError("graph file is empty")
    if s.startswith("{"):
        try:
            d = json.loads(s)
        except json.JSONDecodeError as exc:
            raise CausalError(f"graph JSON is invalid: {exc}") from None
        if "edges" in d and "nodes" in d and all(isinstance(n, str) for n in d["nodes"]):
            return ProposedGraph.from_dict(d).graph
        try:
            return nx.node_link_graph(d, directed=True, edges="links" if "links" in d else "edges")
        except Exception as exc:  # noqa: BLE001 - networkx raises several types
            raise CausalError(f"graph JSON is not a node-link graph: {exc}") from None
    if s.startswith("graph") or "\ngraph" in s[:200] or s.startswith("creator"):
        try:
            g = nx.parse_gml(s, label="label")
        except Exception as exc:  # noqa: BLE001
            raise CausalError(f"graph GML is invalid: {str(exc)[:160]}") from None
        if not g.is_directed():
            raise CausalError("graph GML is undirected: add 'directed 1'")
        return nx.DiGraph(g)
    g = nx.DiGraph()
    for num, line in enumerate(s.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if "->" not in line:
            if line:
                g.add_node(line)
            continue
        parts = [p.strip() for p in line.split("->")]
        if any(not p for p in parts) or _quoted(line) or any(c in p for p in parts for c in "<>"):
            raise CausalError(f"graph line {num} is not 'a -> b' (names without quotes): {line!r}")
        for a, b in zip(parts, parts[1:]):
            g.add_edge(a, b)
    if g.number_of_nodes() == 0:
        raise CausalError("graph file has no nodes")
    return g


def load_graph(path: str | os.PathLike | Any) -> nx.DiGraph:
    """Read a graph file (GML, JSON or edge list).

    Returns:
        a ``networkx.DiGraph``.
    """
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CausalError(f"graph file not found: {p}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CausalError(f"cannot read graph file {p}: {exc}") from None
    return parse_graph(text)


def as_digraph(graph: Any) -> nx.DiGraph:
    """Accept a DiGraph, a :class:`ProposedGraph`, or a path to a GML / JSON graph file.

    Returns:
        a ``networkx.DiGraph`` with string node names.

    Raises:
        CausalError: not a directed graph, or a cycle (named).
    """
    if hasattr(graph, "graph") and isinstance(getattr(graph, "graph"), nx.DiGraph):
        graph = graph.graph
    elif isinstance(graph, (str, bytes)) or hasattr(graph, "__fspath__"):
        graph = load_graph(graph)
    if not isinstance(graph, nx.DiGraph):
        raise CausalError(f"graph must be a networkx.DiGraph, got {type(graph).__name__}")
    g = nx.relabel_nodes(graph, {n: str(n) for n in graph.nodes}, copy=True)
    if not nx.is_directed_acyclic_graph(g):
        raise CausalError(f"graph has a cycle: {cycle_text(g)}")
    return g


# --------------------------------------------------------------------------- equivalence
def compelled_edges(graph: nx.DiGraph) -> set[tuple[str, str]]:
    """Edges whose direction is fixed by the graph's independences (v-structures + Meek rules 1-2).

    Returns:
        the set of compelled ``(u, v)`` edges; the others are reversible within the Markov
        equivalence class, so data alone cannot tell their direction.

    Examples:
        >>> sorted(compelled_edges(nx.DiGraph([("a", "c"), ("b", "c"), ("c", "d")])))
        [('a', 'c'), ('b', 'c'), ('c', 'd')]
    """
    und = graph.to_undirected()
    directed: set[tuple[str, str]] = set()
    for v in graph.nodes:
        parents = list(graph.predecessors(v))
        for i, a in enumerate(parents):
            for b in parents[i + 1:]:
                if not und.has_edge(a, b):
                    directed.update({(a, v), (b, v)})
    changed = True
    while changed:
        changed = False
        for u, v in graph.edges:
            if (u, v) in directed:
                continue
            # R1: a -> u - v with a, v not adjacent  =>  u -> v
            if any((a, u) in directed and not und.has_edge(a, v) for a in graph.predecessors(u)):
                directed.add((u, v))
                changed = True
                continue
            # R2: u -> w -> v  =>  u -> v
            if any((u, w) in directed and (w, v) in directed for w in graph.successors(u)):
                directed.add((u, v))
                changed = True
    return directed
