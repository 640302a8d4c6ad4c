"""Figures and HTML shared by the CLI, notebooks and the dashboard.

Every token string passes through :func:`escape` before it reaches HTML or a plotly label:
token strings are model output and can contain markup.

Examples:
    >>> highlight_html(["<b>", " ok"], [1.0, -0.5])[:5]
    '<div '
"""

from __future__ import annotations

import html
from typing import Sequence

import numpy as np

_WHITESPACE = {"\n": "↵", "\t": "⇥", "\r": "␍"}


def escape(text: str) -> str:
    """HTML-escape ``text`` (quotes too) and make newlines/tabs visible.

    Examples:
        >>> escape("<img src=x onerror=alert(1)>")
        '&lt;img src=x onerror=alert(1)&gt;'
    """
    out = html.escape(str(text), quote=True)
    for raw, shown in _WHITESPACE.items():
        out = out.replace(raw, shown)
    return out


def _rgba(value: float, scale: float, mode: str) -> str:
    """Background colour of one token: red/blue diverging, or white-to-red for risk."""
    x = 0.0 if scale <= 0 or not np.isfinite(value) else float(np.clip(value / scale, -1.0, 1.0))
    if mode == "risk":
        return f"rgba(220, 38, 38, {max(x, 0.0) * 0.75:.3f})"
    if x >= 0:
        return f"rgba(220, 38, 38, {x * 0.75:.3f})"
    return f"rgba(37, 99, 235, {-x * 0.75:.3f})"


def highlight_html(
    tokens: Sequence[str],
    values: Sequence[float],
    *,
    mode: str = "diverging",
    title: str | None = None,
    tooltips: Sequence[str] | None = None,
    scale: float | None = None,
) -> str:
    """Return an HTML fragment with each token's background coloured by its value.

    Args:
        tokens: token strings (escaped here).
        values: one number per token.
        mode: ``"diverging"`` (red positive, blue negative) or ``"risk"`` (white to red).
        title: an optional heading (escaped).
        tooltips: optional hover text per token (escaped); defaults to the value.
        scale: the value that gets full colour; defaults to max |value|.

    Returns:
        a ``<div>`` string safe to embed in a page.

    Examples:
        >>> "&lt;script&gt;" in highlight_html(["<script>"], [0.3])
        True
    """
    vals = np.asarray(values, dtype=float)
    if len(tokens) != len(vals):
        raise ValueError(f"{len(tokens)} tokens but {len(vals)} values")
    finite = np.abs(vals[np.isfinite(vals)])
    top = float(scale) if scale else (float(finite.max()) if finite.size else 0.0)
    spans = []
    for i, (tok, val) in enumerate(zip(tokens, vals)):
        tip = tooltips[i] if tooltips is not None else f"{val:+.4f}"
        spans.append(
            f'<span class="whylm-tok" title="{escape(tip)}" style="background:{_rgba(val, top, mode)};'
            f'border-radius:3px;padding:1px 0;white-space:pre-wrap">{escape(tok)}</span>'
        )
    head = f'<div style="font-weight:600;margin-bottom:4px">{escape(title)}</div>' if title else ""
    return (
        '<div class="whylm-highlight" style="font-family:ui-monospace,monospace;line-height:1.9">'
        f"{head}{''.join(spans)}</div>"
    )


def axis_labels(tokens: Sequence[str]) -> list[str]:
    """Escaped, position-numbered labels, so repeated tokens stay separate rows/columns."""
    return [f"{i}: {escape(t)}" for i, t in enumerate(tokens)]


def heatmap(
    matrix: np.ndarray,
    x_tokens: Sequence[str],
    y_tokens: Sequence[str],
    *,
    title: str = "",
    colorbar: str = "attribution",
    diverging: bool = True,
):
    """A plotly heatmap of ``matrix`` (rows ``y_tokens``, columns ``x_tokens``).

    Returns:
        a ``plotly.graph_objects.Figure``.

    Examples:
        >>> fig = heatmap(np.eye(2), ["a", "b"], ["c", "d"])
        >>> fig.data[0].type
        'heatmap'
    """
    import plotly.graph_objects as go

    z = np.asarray(matrix, dtype=float)
    top = float(np.nanmax(np.abs(z))) if z.size and np.isfinite(z).any() else 1.0
    xs, ys = axis_labels(x_tokens), axis_labels(y_tokens)
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=list(range(len(xs))),
            y=list(range(len(ys))),
            customdata=[[f"{ys[r]} ← {xs[c]}" for c in range(len(xs))] for r in range(len(ys))],
            hovertemplate="%{customdata}<br>%{z:.4f}<extra></extra>",
            colorscale="RdBu_r" if diverging else "Reds",
            zmid=0 if diverging else None,
            zmin=-top if diverging else None,
            zmax=top if diverging else None,
            colorbar={"title": {"text": escape(colorbar)}},
        )
    )
    fig.update_layout(
        title={"text": escape(title)},
        xaxis={"tickmode": "array", "tickvals": list(range(len(xs))), "ticktext": xs, "tickangle": -45},
        yaxis={"tickmode": "array", "tickvals": list(range(len(ys))), "ticktext": ys, "autorange": "reversed"},
        height=max(300, 28 * len(ys) + 160),
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
    )
    return fig
