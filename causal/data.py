"""Data tables for causal checks: validation, matching graph nodes to columns, reading CSV files.

Examples:
    >>> match_columns(["age"], pd.DataFrame({"Age": [1]}))
    Traceback (most recent call last):
    ...
    causal.errors.CausalError: variable 'age' is not a column of the data; did you mean 'Age'?
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from causal.errors import CausalError, did_you_mean

MIN_ROWS = 10


# --------------------------------------------------------------------------- validation
NUMERIC_HINT = "or use test='mixed' (mixed data) or test='chi2' (all columns discrete)"


def validate_data(data: Any, allow_categorical: bool = False, min_rows: int = MIN_ROWS,
                  hint: str = NUMERIC_HINT) -> pd.DataFrame:
    """Raise :class:`CausalError` for data a test cannot use: not a table, too few rows, missing
    or infinite values, non-numeric columns (unless ``allow_categorical``; ``hint`` ends that
    message with what else the caller can do).

    Returns:
        the data unchanged.

    Examples:
        >>> validate_data(pd.DataFrame({"a": [1.0, None] * 10}))
        Traceback (most recent call last):
        ...
        causal.errors.CausalError: column 'a' has 10 missing values: drop or impute them first
        >>> validate_data(pd.DataFrame({"a": [1.0, float("inf")] * 10}))
        Traceback (most recent call last):
        ...
        causal.errors.CausalError: column 'a' has 10 infinite values: drop or replace them first
    """
    if not isinstance(data, pd.DataFrame):
        raise CausalError("data must be a pandas DataFrame (one column per variable)")
    if data.shape[1] == 0:
        raise CausalError("data has no columns")
    for col in data.columns:
        missing = int(data[col].isna().sum())
        if missing:
            raise CausalError(f"column {quote(col)} has {missing} missing values: drop or impute them first")
        if pd.api.types.is_numeric_dtype(data[col]) and not pd.api.types.is_bool_dtype(data[col]):
            infinite = int(np.isinf(data[col].to_numpy(dtype=float)).sum())
            if infinite:
                raise CausalError(
                    f"column {quote(col)} has {infinite} infinite values: drop or replace them first"
                )
    if not allow_categorical:
        for col in data.columns:
            if pd.api.types.is_bool_dtype(data[col]):
                continue
            if not pd.api.types.is_numeric_dtype(data[col]):
                raise CausalError(
                    f"column {quote(col)} is not numeric ({data[col].dtype}): encode it as numbers, {hint}"
                )
    if len(data) < min_rows:
        raise CausalError(f"data has {len(data)} rows: need at least {min_rows}")
    return data


def quote(name: Any) -> str:
    """A variable name quoted for a one-line message: ``'name'``, or its escaped ``repr`` when it
    holds a line break, a quote or another control character.

    Returns:
        the quoted name, always on one line.

    Examples:
        >>> quote("age")
        "'age'"
        >>> print(quote("a\\nb"))
        'a\\nb'
    """
    text = str(name)
    if text.isprintable() and "'" not in text:
        return f"'{text}'"
    return repr(text)


def match_columns(variables: Sequence[Any], data: pd.DataFrame, what: str = "variable") -> pd.DataFrame:
    """The one matcher of variable (graph node) names to data columns: exact match on the names as
    text, so integer column names match nodes ``"0"``, ``"1"``, ...

    ``what`` names the variables in the error ("variable", "graph node"). Raises :class:`CausalError`
    (one line) for a name with a line break or other control
    character, two columns with the same name as text, or a variable that is not a column (with
    the closest column as a hint).

    Returns:
        ``data[variables]`` with string column names, in the order of ``variables``.

    Examples:
        >>> match_columns(["1", "0"], pd.DataFrame([[1, 2]])).columns.tolist()
        ['1', '0']
        >>> match_columns(["age"], pd.DataFrame({"Age": [1]}))
        Traceback (most recent call last):
        ...
        causal.errors.CausalError: variable 'age' is not a column of the data; did you mean 'Age'?
    """
    if not isinstance(data, pd.DataFrame):
        raise CausalError("data must be a pandas DataFrame (one column per variable)")
    for name in [*variables, *data.columns]:
        if not str(name).isprintable():
            raise CausalError(f"variable name {quote(name)} contains a line break or control character: rename it")
    cols = [str(c) for c in data.columns]
    seen: set[str] = set()
    for c in cols:
        if c in seen:
            raise CausalError(f"two data columns are named {quote(c)}: rename one")
        seen.add(c)
    for v in variables:
        if str(v) not in seen:
            raise CausalError(f"{what} {quote(v)} is not a column of the data{did_you_mean(str(v), cols)}")
    out = data.set_axis(cols, axis=1)
    return out[[str(v) for v in variables]]


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
