"""Data tables for causal checks: validation, matching graph nodes to columns, reading CSV files.

Example:
    >>> match_columns(["age"], pd.DataFrame({"Age": [1]}))
    Traceback (most recent call last):
    ...
    causal.errors.CausalError: variable 'age' is not a column of the data; did you mean 'Age'?
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import networkx as nx
import pandas as pd

from causal.errors import CausalError, did_you_mean

MIN_ROWS = 10


# --------------------------------------------------------------------------- validation
def validate_data(data: Any, allow_categorical: bool = False, min_rows: int = MIN_ROWS) -> pd.DataFrame:
    """Raise :class:`CausalError` for data a test cannot use: not a table, too few rows, missing
    values, non-numeric columns (unless ``allow_categorical``).

    Returns:
        the data unchanged.

    Example:
        >>> validate_data(pd.DataFrame({"a": [1.0, None] * 10}))
        Traceback (most recent call last):
        ...
        causal.errors.CausalError: column 'a' has 10 missing values: drop or impute them first
    """
    if not isinstance(data, pd.DataFrame):
        raise CausalError("data must be a pandas DataFrame (one column per variable)")
    if data.shape[1] == 0:
        raise CausalError("data has no columns")
    for col in data.columns:
        missing = int(data[col].isna().sum())
        if missing:
            raise CausalError(f"column '{col}' has {missing} missing values: drop or impute them first")
    if not allow_categorical:
        for col in data.columns:
            if not pd.api.types.is_numeric_dtype(data[col]) or pd.api.types.is_bool_dtype(data[col]):
                if pd.api.types.is_bool_dtype(data[col]):
                    continue
                raise CausalError(
                    f"column '{col}' is not numeric ({data[col].dtype}): encode it as numbers, "
                    "or use test='chi2' for discrete data"
                )
    if len(data) < min_rows:
        raise CausalError(f"data has {len(data)} rows: need at least {min_rows}")
    return data


def match_nodes(graph: nx.DiGraph, data: pd.DataFrame) -> None:
    cols = [str(c) for c in data.columns]
    for n in graph.nodes:
        if n not in cols:
            raise CausalError(f"graph node '{n}' is not a column of the data{did_you_mean(n, cols)}")


def match_columns(variables: Sequence[str], data: pd.DataFrame) -> None:
    """Raise :class:`CausalError` unless every variable is a data column (exact match).

    Returns:
        None.

    Example:
        >>> match_columns(["age"], pd.DataFrame({"Age": [1]}))
        Traceback (most recent call last):
        ...
        causal.errors.CausalError: variable 'age' is not a column of the data; did you mean 'Age'?
    """
    cols = [str(c) for c in data.columns]
    for v in variables:
        if v not in cols:
            raise CausalError(f"variable '{v}' is not a column of the data{did_you_mean(v, cols)}")


def load_csv(path: str | os.PathLike) -> Any:
    """Read a CSV data file.

    Returns:
        a pandas DataFrame.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise CausalError(f"data file not found: {p}")
    try:
        return pd.read_csv(p)
    except Exception as exc:  # noqa: BLE001 - pandas raises several types
        raise CausalError(f"cannot read CSV {p}: {str(exc).splitlines()[0][:160]}") from None
