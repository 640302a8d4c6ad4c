"""Verdicts with evidence on the embedded SmolLM2-135M and its shipped calibration: plain cases (slow).

The cases are written here (fictional facts the model cannot know, and one everyday fact), not
taken from the issue.
"""

from __future__ import annotations

import pytest

from explain.signals import signals

pytestmark = pytest.mark.slow

TOWER = ("The Kelvar Tower stands in the town of Dunmore. It was designed by the architect Lena Vos in 1962. "
         "The tower is 88 metres tall.")


def test_short_right_answer_with_its_passage_is_supported(embedded_lm):
    rep = signals(embedded_lm, "Who designed the Kelvar Tower?", response="Lena Vos.", context=TOWER, progress=False)
    assert rep.verdict == "supported", rep.summary()
    assert rep.sentences[0].evidence and rep.sentences[0].evidence[0].source == 1


def test_swapped_name_or_number_is_likely_hallucinated(embedded_lm):
    name = signals(embedded_lm, "Who designed the Kelvar Tower?", response="Marco Diaz.", context=TOWER,
                   progress=False)
    number = signals(embedded_lm, "How tall is the Kelvar Tower?", response="The tower is 68 metres tall.",
                     context=TOWER, progress=False)
    assert name.verdict == "likely hallucinated", name.summary()
    assert number.verdict == "likely hallucinated", number.summary()


def test_copied_sentence_is_supported_and_grounded(embedded_lm):
    rep = signals(embedded_lm, "How tall is the Kelvar Tower?", response="The tower is 88 metres tall.",
                  context=TOWER, progress=False)
    assert rep.verdict == "supported", rep.summary()
    assert rep.scores["ungrounded_fraction"] < 0.2 and min(rep.scores.values()) >= 0.0
    assert rep.sentences[0].evidence[0].source == 2


def test_wrong_sentence_is_the_riskiest_of_its_answer(embedded_lm):
    rep = signals(embedded_lm, "Tell me about the Kelvar Tower.",
                  response="Lena Vos designed it in 1962. The tower is 68 metres tall.", context=TOWER,
                  progress=False)
    first, second = rep.sentences
    assert second.risk > first.risk and second.verdict != "supported", rep.summary()
    assert rep.risk >= second.risk and rep.verdict != "supported"


def test_everyday_fact(embedded_lm):
    # was a known shortfall while the closing "." counted: the model finds it unlikely after "Eight"
    context = "Spiders are not insects. A spider has eight legs, while an insect has six."
    right = signals(embedded_lm, "How many legs does a spider have?", response="Eight.", context=context,
                    progress=False)
    wrong = signals(embedded_lm, "How many legs does a spider have?", response="Ten.", context=context,
                    progress=False)
    assert right.verdict == "supported", right.summary()
    assert wrong.verdict != "supported" and wrong.risk > right.risk + 0.3, wrong.summary()


def test_short_answer_in_a_question_answer_prompt_is_supported(embedded_lm):
    # the closing "." is not a claim: " Paris." read 'uncertain' (0.36) for its period alone
    prompt = "Question: What is the capital of France?\nAnswer:"
    context = "Paris is the capital of France. It lies on the Seine."
    right = signals(embedded_lm, prompt, response=" Paris.", context=context, progress=False)
    bare = signals(embedded_lm, prompt, response=" Paris", context=context, progress=False)
    wrong = signals(embedded_lm, prompt, response=" Berlin.", context=context, progress=False)
    assert right.verdict == "supported" and bare.verdict == "supported", right.summary()
    assert wrong.verdict == "likely hallucinated", wrong.summary()


def test_trailing_newline_does_not_change_the_risk(embedded_lm):
    a = signals(embedded_lm, "Who designed the Kelvar Tower?", response="Lena Vos.", context=TOWER, progress=False)
    b = signals(embedded_lm, "Who designed the Kelvar Tower?\n", response="Lena Vos.\n", context=TOWER + "\n",
                progress=False)
    assert a.risk is not None and b.risk == a.risk


def test_known_fact_lists_its_passage_sentence_as_evidence(embedded_lm):
    # the model knows Paris already, so removing its sentence changes little; the sentence states it
    context = "France is a country in western Europe. Its capital is Paris, on the Seine."
    rep = signals(embedded_lm, "What is the capital of France?", response="Paris.", context=context, progress=False)
    sent = rep.sentences[0]
    assert sent.evidence and sent.evidence[0].source == 1, rep.summary()
    assert "nothing in the context supports this" not in rep.summary()
    assert rep.verdict == "supported", rep.summary()


def test_swapped_number_conflicts_with_its_sentence_and_is_not_its_evidence(embedded_lm):
    rep = signals(embedded_lm, "How tall is the Kelvar Tower?", response="The tower is 68 metres tall.",
                  context=TOWER, progress=False)
    sent = rep.sentences[0]
    assert [(c.source, c.differs) for c in sent.conflicts] == [(2, ["68"])]
    assert all(e.source != 2 for e in sent.evidence)
    assert 'conflicts with context sentence 3, "The tower is 88 metres tall." (it does not say 68)' in rep.summary()
    assert rep.verdict == "likely hallucinated", rep.summary()
