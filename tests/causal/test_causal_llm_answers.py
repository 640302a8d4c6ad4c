"""What counts as an answer, and what the cache keeps: the first token's log-probs only when that
token is an option label, strict text otherwise, non-answers never cached, corrupt entries healed."""

from __future__ import annotations

import sqlite3
import warnings

import numpy as np
import pytest

from causal.llm import AnswerCache, CachedBackend, NonAnswerError, OpenAIBackend, ReplayBackend
from explain.errors import WhylmError
from llm_server import answer, send, serve


def _scripted(*replies):
    """Serve the given chat answers in order (the last one repeats)."""
    queue = list(replies)

    def respond(handler, body, rec):
        send(handler, 200, queue.pop(0) if len(queue) > 1 else queue[0])
    return respond


def test_non_answer_with_option_deep_in_top_logprobs_is_an_error_not_cached(tmp_path):
    # the case: the model says "The ...", and "A" sits at -9 among the top log-probs
    the = answer("The answer depends on the context.", [("The", -0.01), ("It", -5.0), ("A", -9.0)])
    good = answer("B", [("B", -0.2), ("A", -1.8)])
    cache = AnswerCache(tmp_path / "c.sqlite")
    with serve(_scripted(the, good)) as (url, rec):
        llm = OpenAIBackend(url, "m", cache=cache)
        with pytest.raises(NonAnswerError, match="not one of") as err:
            llm.choose("Q?", ["A", "B"])
        assert isinstance(err.value, WhylmError)
        assert cache.get(llm.cache_key("Q?", ["A", "B"])) is None
        idx, probs = llm.choose("Q?", ["A", "B"])  # asked again, now a real answer
    assert len(rec.requests) == 2
    expected = np.exp([-1.8, -0.2]) / np.exp([-1.8, -0.2]).sum()
    assert idx == 1 and np.allclose(probs, expected)
    assert np.allclose(cache.get(llm.cache_key("Q?", ["A", "B"])), expected)


def test_first_token_not_a_label_falls_back_to_strict_text(tmp_path):
    md = answer("**B**", [("**", -0.01), ("A", -3.0)])
    with serve(_scripted(md)) as (url, rec):
        idx, probs = OpenAIBackend(url, "m", cache=False).choose("Q?", ["A", "B"])
    assert idx == 1 and probs.tolist() == [0.0, 1.0]  # from the text, not from A's log-prob


def _backend(tmp_path):
    return ReplayBackend({"Q": [0.25, 0.75]}, cache=AnswerCache(tmp_path / "c.sqlite"))


@pytest.mark.parametrize("raw", ['{not json', '[NaN, 1.0]', '"some text"', '[1.0]', '[-1, 2]', 'null'])
def test_corrupt_entry_is_ignored_and_overwritten(raw, tmp_path):
    llm = _backend(tmp_path)
    llm.choose("Q", ["A", "B"])
    key = AnswerCache.key(llm.cache_key("Q", ["A", "B"]))
    with sqlite3.connect(tmp_path / "c.sqlite") as db:
        db.execute("UPDATE answers SET value = ? WHERE key = ?", (raw, key))
    fresh = _backend(tmp_path)
    for _ in range(2):  # not fatal on any later call
        idx, probs = fresh.choose("Q", ["A", "B"])
        assert idx == 1 and np.allclose(probs, [0.25, 0.75])
    assert fresh.uncached_calls == 1  # asked once, then the overwritten entry served
    with sqlite3.connect(tmp_path / "c.sqlite") as db:
        assert db.execute("SELECT value FROM answers WHERE key = ?", (key,)).fetchone()[0] == "[0.25, 0.75]"


def test_corrupt_cache_file_warns_once_and_is_kept(tmp_path):
    path = tmp_path / "c.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    llm = ReplayBackend({"Q": "B"}, cache=AnswerCache(path))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert llm.choose("Q", ["A", "B"])[0] == 1
        assert llm.choose("Q", ["A", "B"])[0] == 1
    assert len([w for w in caught if "not usable" in str(w.message)]) == 1
    assert path.read_bytes().startswith(b"this is not a database")  # nothing saved is destroyed


class Counting(CachedBackend):
    name = "counting"

    def __init__(self, cache, temperature):
        super().__init__(cache)
        self.model, self.temperature, self.asked = "m", temperature, 0

    def settings(self):
        return {"temperature": self.temperature}

    def _choose(self, prompt, options):
        self.asked += 1
        return np.array([1.0, 0.0])


def test_cache_key_is_backend_model_prompt_and_settings(tmp_path):
    cache = AnswerCache(tmp_path / "c.sqlite")
    a, b, a2 = Counting(cache, 0), Counting(cache, 1), Counting(cache, 0)
    for llm in (a, b, a2):
        llm.choose("Q", ["A", "B"])
    assert (a.asked, b.asked, a2.asked) == (1, 1, 0)  # other settings: asked; same: cached
    a.choose("Q2", ["A", "B"])
    a.model = "other"
    a.choose("Q", ["A", "B"])
    assert a.asked == 3
