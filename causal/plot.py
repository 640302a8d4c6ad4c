"""Plotly drawing of a causal graph: layered by causal order, committed edges as arrows coloured by
confidence (or by a :class:`causal.check.GraphCheck` result), undecided pairs as dashed lines.

Node names are user or model text: they are HTML-escaped in every label and hover text, so a name
such as ``<a href=...>`` shows as text and never renders as a link. Node labels are boxes drawn above
the edges, and each arrow stops at the edge of its label box, so no arrowhead hides a label. A legend
explains every line style.

Examples:
    >>> import networkx as nx
    >>> fig = graph_figure(nx.DiGraph([("a", "b")]), undecided=[("b", "c", {"p": 0.55})])
    >>> sum(1 for a in fig.layout.annotations if a.showarrow), [t.name for t in fig.data if t.showlegend]
    (1, ['committed edge (darker: more confident)', 'undecided pair: the judge cannot tell the direction'])
"""

from __future__ import annotations

import html
import math
from typing import Any, Sequence

import networkx as nx

PX_PER_X = 190.0  # pixels per layout unit: fixed so that arrows can stop at label boxes
PX_PER_Y = 120.0
CHAR_PX = 7.2  # width of one character of the 12 px label font
BOX_PAD = 8.0
BOX_HALF_HEIGHT = 12.0


def _esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _layout(g: nx.DiGraph) -> dict[str, tuple[float, float]]:
    if g.number_of_nodes() == 0:
        return {}
    try:
        gens = list(nx.topological_generations(g))
    except nx.NetworkXUnfeasible:
        return {n: (2.0 * p[0], 2.0 * p[1]) for n, p in nx.circular_layout(g).items()}
    pos = {}
    for depth, layer in enumerate(gens):
        layer = sorted(layer)
        for i, n in enumerate(layer):
            # a small zig-zag keeps a line between two nodes of a row from running through a third
            pos[n] = (i - (len(layer) - 1) / 2.0, -float(depth) - (0.3 if i % 2 else 0.0))
    return pos


def _confidence_color(c: float) -> str:
    c = min(1.0, max(0.0, float(c)))
    # light grey-blue (low) to dark blue (high)
    r, g, b = int(200 - 170 * c), int(210 - 150 * c), int(230 - 50 * c)
    return f"rgb({r},{g},{b})"


def _half_box(name: str) -> tuple[float, float]:
    return CHAR_PX * len(str(name)) / 2.0 + BOX_PAD, BOX_HALF_HEIGHT


def _standoff(name: str, dx: float, dy: float) -> float:
    """Pixels from the node's centre to its label box's edge along (dx, dy) in pixels, plus a gap."""
    hw, hh = _half_box(name)
    norm = math.hypot(dx, dy) or 1.0
    ux, uy = abs(dx) / norm, abs(dy) / norm
    t = min(hw / ux if ux > 1e-9 else math.inf, hh / uy if uy > 1e-9 else math.inf)
    return t + 3.0


def _legend(fig: Any, name: str, **line: Any) -> None:
    import plotly.graph_objects as go

    fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", line=line, name=name, showlegend=True,
                             hoverinfo="skip"))


def graph_figure(
    graph: nx.DiGraph,
    check: Any = None,
    title: str | None = None,
    undecided: Sequence[tuple[str, str, dict]] = (),
    note: str | None = None,
):
    """Draw ``graph`` with plotly.

    Args:
        graph: a DiGraph; edge attribute ``confidence`` (if any) colours the edges.
        check: an optional :class:`GraphCheck`: unsupported edges red, untestable directions
            noted in the hover text, violated (missing) dependences that survive Holm's correction
            drawn as dotted red lines.
        title: figure title (escaped).
        undecided: pairs ``(a, b, attrs)`` the judge could not orient, drawn as dashed lines
            without arrowheads; ``attrs["p"]`` is the calibrated P(a -> b).
        note: a line of text under the title (escaped), e.g. the judge's accuracy in words.

    Returns:
        a ``plotly.graph_objects.Figure``.
    """
    import plotly.graph_objects as go

    pos = _layout(_with_nodes(graph, [n for a, b, _ in undecided for n in (a, b)]))
    fig = go.Figure()
    unsupported = {(u, v) for u, v, _ in getattr(check, "unsupported_edges", [])}
    untestable = set(map(tuple, getattr(check, "untestable_edges", [])))
    for a, b, d in undecided:
        (x0, y0), (x1, y1) = pos[a], pos[b]
        p = d.get("p")
        hover = f"undecided: {_esc(a)} – {_esc(b)}" + (f"; P({_esc(a)} → {_esc(b)}) = {p:.2f} after calibration"
                                                      if isinstance(p, (int, float)) and math.isfinite(p) else "")
        fig.add_trace(go.Scatter(
            x=[x0, (x0 + x1) / 2, x1], y=[y0, (y0 + y1) / 2, y1], mode="lines",
            line=dict(color="rgb(150,150,150)", dash="dash", width=1.5),
            hoverinfo="text", hovertext=hover, showlegend=False,
        ))
    for u, v, d in graph.edges(data=True):
        (x0, y0), (x1, y1) = pos[u], pos[v]
        conf = d.get("confidence")
        if check is not None:
            color = "crimson" if (u, v) in unsupported else "seagreen"
            label = "unsupported by data" if (u, v) in unsupported else "supported"
            if (u, v) in untestable:
                label += "; direction not testable"
        else:
            color = _confidence_color(conf if conf is not None else 1.0)
            label = f"confidence {conf:.2f}" if isinstance(conf, (int, float)) else ""
        dx, dy = (x1 - x0) * PX_PER_X, (y1 - y0) * PX_PER_Y
        fig.add_annotation(
            x=x1, y=y1, ax=x0, ay=y0, xref="x", yref="y", axref="x", ayref="y", text="",
            showarrow=True, arrowhead=3, arrowsize=1.2, arrowwidth=2, arrowcolor=color,
            standoff=_standoff(v, dx, dy), startstandoff=_standoff(u, dx, dy),
            hovertext=f"{_esc(u)} → {_esc(v)}: {label}",
        )
    # only violations that survive Holm's correction are drawn: the rest are what chance gives a correct graph
    misses = [v for v in getattr(check, "violations", []) if v.get("significant", True)] if check is not None else []
    if misses:
        for viol in misses[:50]:
            a, b = viol["independent_of"], viol["node"]
            if a in pos and b in pos:
                fig.add_trace(go.Scatter(
                    x=[pos[a][0], pos[b][0]], y=[pos[a][1], pos[b][1]], mode="lines",
                    line=dict(color="crimson", dash="dot", width=1), hoverinfo="text",
                    hovertext=f"violated: {_esc(viol['statement'])} (p={viol['p_value']:.2g}"
                              + (f", Holm-adjusted {viol['p_holm']:.2g})" if _finite(viol.get("p_holm")) else ")"),
                    showlegend=False,
                ))
    nodes = list(pos)
    fig.add_trace(go.Scatter(  # invisible markers carry the hover text of each node
        x=[pos[n][0] for n in nodes], y=[pos[n][1] for n in nodes], mode="markers",
        marker=dict(size=22, color="rgba(0,0,0,0)"), hoverinfo="text",
        hovertext=[_esc(n) for n in nodes], showlegend=False,
    ))
    for n in nodes:  # labels last: boxes drawn over any line, arrows stop at their edge
        fig.add_annotation(x=pos[n][0], y=pos[n][1], xref="x", yref="y", text=_esc(n), showarrow=False,
                           bgcolor="white", bordercolor="black", borderwidth=1, borderpad=3,
                           font=dict(size=12, color="black"))
    if graph.number_of_edges():
        _legend(fig, "supported by data" if check is not None else "committed edge (darker: more confident)",
                color="seagreen" if check is not None else _confidence_color(0.8), width=2)
        if check is not None and unsupported:
            _legend(fig, "unsupported by data", color="crimson", width=2)
    if undecided:
        _legend(fig, "undecided pair: the judge cannot tell the direction", color="rgb(150,150,150)", dash="dash", width=1.5)
    if misses:
        _legend(fig, "dependence the graph misses (violated independence)", color="crimson", dash="dot", width=1)
    xs = [p[0] for p in pos.values()] or [0.0]
    ys = [p[1] for p in pos.values()] or [0.0]
    xr = (min(xs) - 0.8, max(xs) + 0.8)
    yr = (min(ys) - 0.6, max(ys) + 0.6)
    head = _esc(title or "causal graph")
    if note:
        head += f"<br><sup>{_esc(note)}</sup>"
    fig.update_layout(
        title=dict(text=head), plot_bgcolor="white", showlegend=True,
        legend=dict(orientation="h", yanchor="top", y=-0.02, xanchor="left", x=0),
        xaxis=dict(visible=False, range=list(xr)), yaxis=dict(visible=False, range=list(yr)),
        width=int((xr[1] - xr[0]) * PX_PER_X) + 40, height=int((yr[1] - yr[0]) * PX_PER_Y) + 170,
        margin=dict(l=20, r=20, t=70 if note else 50, b=100),
    )
    return fig


def _with_nodes(graph: nx.DiGraph, nodes: Any) -> nx.DiGraph:
    g = nx.DiGraph(graph)
    g.add_nodes_from(nodes)
    return g


def _finite(x: Any) -> bool:
    """Whether ``x`` is a finite number (a stored p-value may be missing or NaN)."""
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False
