"""Brute-force references for the attribution tests, written apart from the library: plain loops over
``model(input_ids=...)``, one unbatched, uncached teacher-forced pass per perturbed prompt, and token
ids built from the tokenizer alone. Slow on purpose; nothing here imports ``explain``."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch


def target_logprobs(model: Any, prompt_ids: Sequence[int], target_ids: Sequence[int]) -> np.ndarray:
    """log p(target_j | prompt, target_<j) for every target token, from one plain forward pass.

    Returns:
        float64 array (m,).
    """
    m = len(target_ids)
    ids = torch.tensor([list(prompt_ids) + list(target_ids)[:-1]], device=model.device)
    with torch.no_grad():  # the logits of the last m positions: those that predict the target
        logits = model(input_ids=ids, logits_to_keep=m).logits[0].double()
    logp = torch.log_softmax(logits, dim=-1)
    return np.array([float(logp[j, t]) for j, t in enumerate(target_ids)])


def leave_one_out(
    model: Any,
    prompt_ids: Sequence[int],
    target_ids: Sequence[int],
    features: Sequence[Sequence[int]],
    baseline: int | None = None,
) -> np.ndarray:
    """Leave-one-out attributions by brute force.

    Args:
        features: per feature, the prompt positions it covers.
        baseline: the token id put in place of a feature's tokens; ``None`` removes them instead.

    Returns:
        float64 array (m, n): the drop in each target token's log-prob when feature i is
        replaced (or removed).
    """
    full = target_logprobs(model, prompt_ids, target_ids)
    cols = []
    for positions in features:
        if baseline is None:
            ids = [t for p, t in enumerate(prompt_ids) if p not in set(positions)]
        else:
            ids = [baseline if p in set(positions) else t for p, t in enumerate(prompt_ids)]
        cols.append(full - target_logprobs(model, ids, target_ids))
    return np.stack(cols, axis=1)


def token_features(tokenizer: Any, text: str) -> tuple[list[int], list[list[int]]]:
    """A plain prompt's ids (with the tokenizer's special tokens) and one feature per non-special
    token, as ``attribute(sources="tokens")`` should see them.

    Returns:
        (prompt ids, features).
    """
    ids = list(tokenizer(text)["input_ids"])
    special = set(tokenizer.all_special_ids)
    return ids, [[p] for p, t in enumerate(ids) if t not in special]


def piece_features(tokenizer: Any, pieces: Sequence[str]) -> tuple[list[int], list[list[int]]]:
    """A prompt made of ``pieces`` (sentences, words...), each tokenised on its own, between the
    special tokens the tokenizer puts around the whole text; one feature per piece.

    Returns:
        (prompt ids, features).
    """
    special = set(tokenizer.all_special_ids)
    whole = list(tokenizer("".join(pieces))["input_ids"])
    lead = 0
    while lead < len(whole) and whole[lead] in special:
        lead += 1
    trail = 0
    while trail < len(whole) - lead and whole[len(whole) - 1 - trail] in special:
        trail += 1
    ids, features = whole[:lead], []
    for piece in pieces:
        piece_ids = list(tokenizer(piece, add_special_tokens=False)["input_ids"])
        features.append(list(range(len(ids), len(ids) + len(piece_ids))))
        ids += piece_ids
    return ids + whole[len(whole) - trail:], features
