"""Plotly drawing of a causal graph: layered by causal order, edges coloured by confidence or by a
:class:`causal.check.GraphCheck` result.

Example:
    >>> import networkx as nx
    >>> fig = graph_figure(nx.DiGraph([("a", "b")]))
    >>> len(fig.layout.annotations)
    1
"""

from __future__ import annotations

from typing import Any

import networkx as nx


def _layout(g: nx.DiGraph) -> dict[str, tuple[float, float]]:
    if g.number_of_nodes() == 0:
        return {}
    try:
        gens = list(nx.topological_generations(g))
    except nx.NetworkXUnfeasible:
        return {n: tuple(p) for n, p in nx.circular_layout(g).items()}
    pos = {}
    for depth, layer in enumerate(gens):
        layer = sorted(layer)
        for i, n in enumerate(layer):
            pos[n] = (i - (len(layer) - 1) / 2.0, -float(depth))
    return pos


def _confidence_color(c: float) -> str:
    c = min(1.0, max(0.0, float(c)))
    # light grey-blue (low) to dark blue (high)
    r, g, b = int(200 - 170 * c), int(210 - 150 * c), int(230 - 50 * c)
    return f"rgb({r},{g},{b})"


def graph_figure(graph: nx.DiGraph, check: Any = None, title: str | None = None):
    """Draw ``graph`` with plotly.

    Args:
        graph: a DiGraph; edge attribute ``confidence`` (if any) colours the edges.
        check: an optional :class:`GraphCheck`: unsupported edges red, untestable directions
            dashed, violated (missing) dependences drawn as dotted red lines.
        title: figure title.

    Returns:
        a ``plotly.graph_objects.Figure``.
    """
    import plotly.graph_objects as go

    pos = _layout(graph)
    fig = go.Figure()
    unsupported = {(u, v) for u, v, _ in getattr(check, "unsupported_edges", [])}
    untestable = set(map(tuple, getattr(check, "untestable_edges", [])))
    for u, v, d in graph.edges(data=True):
        x0, y0 = pos[u]
        x1, y1 = pos[v]
        conf = d.get("confidence")
        if check is not None:
            color = "crimson" if (u, v) in unsupported else "seagreen"
            label = "unsupported by data" if (u, v) in unsupported else "supported"
            if (u, v) in untestable:
                label += "; direction not testable"
        else:
            color = _confidence_color(conf if conf is not None else 1.0)
            label = f"confidence {conf:.2f}" if conf is not None else ""
        fig.add_annotation(
            x=x1, y=y1, ax=x0, ay=y0, xref="x", yref="y", axref="x", ayref="y",
            showarrow=True, arrowhead=3, arrowsize=1.2, arrowwidth=2, arrowcolor=color,
            standoff=14, startstandoff=14, hovertext=f"{u} → {v}: {label}",
        )
    if check is not None:
        for viol in getattr(check, "violations", [])[:50]:
            a, b = viol["independent_of"], viol["node"]
            if a in pos and b in pos:
                fig.add_trace(go.Scatter(
                    x=[pos[a][0], pos[b][0]], y=[pos[a][1], pos[b][1]], mode="lines",
                    line=dict(color="crimson", dash="dot", width=1), hoverinfo="text",
                    text=f"violated: {viol['statement']} (p={viol['p_value']:.2g})", showlegend=False,
                ))
    nodes = list(graph.nodes)
    fig.add_trace(go.Scatter(
        x=[pos[n][0] for n in nodes], y=[pos[n][1] for n in nodes], mode="markers+text",
        text=nodes, textposition="top center", hoverinfo="text",
        marker=dict(size=18, color="white", line=dict(color="black", width=1.5)), showlegend=False,
    ))
    fig.update_layout(
        title=title or "causal graph", plot_bgcolor="white",
        xaxis=dict(visible=False), yaxis=dict(visible=False), margin=dict(l=20, r=20, t=50, b=20),
    )
    return fig
