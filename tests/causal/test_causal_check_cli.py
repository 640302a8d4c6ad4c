"""`whylm causal check` / `effect` through the real entry point: exit codes 0 / 1 / 2, the help
epilog that states them, mixed data, and one-line errors for bad data."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from dashboard.cli import main


@pytest.fixture
def mixed_files(tmp_path):
    rng = np.random.default_rng(0)
    n = 1000
    smoking = rng.normal(size=n)
    high = 1.5 * smoking + rng.normal(size=n) > 0
    cancer = 1.0 * high + rng.normal(size=n)
    csv = tmp_path / "smoking.csv"
    pd.DataFrame({"smoking": smoking, "tar": np.where(high, "high", "low"), "cancer": cancer}).to_csv(csv, index=False)
    chain = tmp_path / "chain.txt"
    chain.write_text("smoking -> tar\ntar -> cancer\n")
    fork = tmp_path / "fork.txt"
    fork.write_text("smoking -> tar\nsmoking -> cancer\n")
    return tmp_path, csv, chain, fork


def test_help_states_exit_codes(capsys):
    with pytest.raises(SystemExit):
        main(["causal", "check", "--help"])
    out = capsys.readouterr().out
    assert "exit status:" in out
    for line in ("0  not rejected", "1  rejected", "2  error"):
        assert line in out


def test_exit_codes_on_mixed_data(mixed_files, capsys):
    tmp, csv, chain, fork = mixed_files
    assert main(["causal", "check", str(chain), str(csv), "--json", str(tmp / "c.json")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("not rejected") and "mixed-data regression" in out.splitlines()[0]
    saved = json.loads((tmp / "c.json").read_text())
    assert saved["test"] == "mixed" and saved["falsified"] is False
    assert main(["causal", "check", str(fork), str(csv)]) == 1
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("REJECTED by the mixed-data regression") and "DoWhy's permutation test" in first
    assert main(["causal", "check", str(fork), str(csv), "--test", "chi2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: column 'smoking' is continuous") and err.count("\n") == 1


def test_bad_data_is_one_line_exit_2(mixed_files, capsys):
    tmp, csv, chain, _ = mixed_files
    df = pd.read_csv(csv)
    inf = tmp / "inf.csv"
    df.assign(cancer=df.cancer.where(df.index != 3, np.inf)).to_csv(inf, index=False)
    assert main(["causal", "check", str(chain), str(inf)]) == 2
    err = capsys.readouterr().err
    assert err == "error: column 'cancer' has 1 infinite values: drop or replace them first\n"
    # a column (and node) name holding a line break: the whole message on one line, name escaped
    nl = tmp / "nl.csv"
    df.rename(columns={"cancer": "lung\ncancer"}).to_csv(nl, index=False)
    graph = tmp / "nl.json"
    graph.write_text(json.dumps({"nodes": ["smoking", "tar", "lung\ncancer"],
                                 "edges": [{"source": "smoking", "target": "tar"},
                                           {"source": "tar", "target": "lung\ncancer"}]}))
    assert main(["causal", "check", str(graph), str(nl)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'lung\\ncancer'" in err and "line break" in err
    # a constant treatment
    const = tmp / "const.csv"
    df.assign(smoking=2.0, tar=(df.tar == "high").astype(float)).to_csv(const, index=False)
    assert main(["causal", "effect", str(chain), str(const), "--treatment", "smoking", "--outcome", "cancer"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: treatment 'smoking' is constant (2.0 in all 1000 rows)") and err.count("\n") == 1
