"""Shared fixtures: tiny random models for unit tests, the embedded model for `slow` tests."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# Tests mirror the packages (tests/explain, tests/causal, tests/dashboard); the shared helpers
# (tiny_models, reference, llm_server, fake_machine) live in tests/support, and a few page tests
# share the browser and AppTest set-up of another test module, so each folder is importable. The
# tests folder itself is not put on sys.path: its explain/, causal/ and dashboard/ folders would
# shadow the packages of the same names.
for _folder in ("support", "explain", "causal", "dashboard"):
    sys.path.insert(0, str(Path(__file__).parent / _folder))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tiny_models import make_tiny_lm  # noqa: E402


@pytest.fixture(scope="session")
def tiny_lm():
    """A tiny random Llama with a byte-level BPE tokenizer and a chat template."""
    return make_tiny_lm("llama")


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory, tiny_lm) -> str:
    """The tiny random Llama saved as a local model folder (for --model / the model picker)."""
    path = tmp_path_factory.mktemp("tiny-llama")
    tiny_lm.model.save_pretrained(path)
    tiny_lm.tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def embedded_lm():
    """The embedded SmolLM2-135M-Instruct (converted once into the whylm cache)."""
    from explain import LanguageModel

    return LanguageModel.load()


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Keep the LLM answer cache, audit store and error logs of each test session out of the user's
    folders,
    while sharing the converted embedded model across sessions."""
    root = tmp_path_factory.getbasetemp()
    monkeypatch.setenv("WHYLM_LLM_CACHE", str(root / "llm-cache.sqlite"))
    monkeypatch.setenv("WHYLM_DATA_DIR", str(root / "data"))
    monkeypatch.setenv("WHYLM_LOG_DIR", str(root / "logs"))
    monkeypatch.setenv("WHYLM_SPEED_CACHE", str(root / "speed.json"))
