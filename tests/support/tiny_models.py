"""Tiny random causal LMs and a tokenizer built in code: no downloads, deterministic, fast.

Every test that needs "a model" uses :func:`make_tiny_lm`; the embedded SmolLM2 is only for tests
marked ``slow``.
"""

from __future__ import annotations

from functools import lru_cache

import torch

from explain.model import LanguageModel

CORPUS = [
    "The capital of France is Paris, and the capital of Italy is Rome.",
    "Smoking causes tar deposits which cause lung cancer.",
    "Altitude lowers the temperature of the air.",
    "The quick brown fox jumps over the lazy dog.",
    "Context: the sky is blue. Question: what colour is the sky? Answer: blue.",
    "<img src=x onerror=alert(1)> & \"quotes\" are just text.",
    "Which cause-and-effect relationship is more likely? A. B. C. yes no",
]

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

ARCHS = ("llama", "gpt2", "qwen2", "gpt_neox", "gemma")


@lru_cache(maxsize=1)
def tiny_tokenizer():
    """A byte-level BPE tokenizer (about 400 tokens) trained on :data:`CORPUS`, with a chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def _config(arch: str, vocab: int):
    from transformers import AutoConfig

    common = dict(vocab_size=vocab, eos_token_id=0, bos_token_id=0, pad_token_id=0)
    if arch == "gpt2":
        return AutoConfig.for_model("gpt2", n_embd=32, n_layer=2, n_head=2, n_positions=256, **common)
    if arch == "gpt_neox":
        return AutoConfig.for_model(
            "gpt_neox", hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=64, max_position_embeddings=256, **common,
        )
    kwargs = dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=64, max_position_embeddings=256, **common,
    )
    if arch == "gemma":
        kwargs["head_dim"] = 8
    return AutoConfig.for_model(arch, **kwargs)


def make_tiny_lm(arch: str = "llama", seed: int = 0) -> LanguageModel:
    """A random ``arch`` model (2 layers, hidden 32) wrapped with :func:`tiny_tokenizer`.

    Example:
        >>> lm = make_tiny_lm("gpt2")
        >>> lm.model.config.model_type
        'gpt2'
    """
    from transformers import AutoModelForCausalLM

    tok = tiny_tokenizer()
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(_config(arch, len(tok)), dtype=torch.float32)
    # Random init gives near-uniform outputs; larger weights give attributions that differ clearly.
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.3)
    model.generation_config.eos_token_id = 0
    model.generation_config.pad_token_id = 0
    return LanguageModel(model.eval(), tok, name=f"tiny-{arch}")
