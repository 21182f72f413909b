"""Shared fixtures: the real seed model, materialised once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# LLMBar Natural (100 human-labelled pairs, MIT), shipped with the project
LLMBAR_NATURAL = Path(__file__).resolve().parents[1] / "evalsets" / "llmbar-natural.json"


def pytest_collection_modifyitems(config, items):
    """GPU- and vLLM-only tests skip themselves where those are absent."""
    import importlib.util

    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except Exception:  # pragma: no cover
        has_cuda = False
    has_vllm = importlib.util.find_spec("vllm") is not None
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(pytest.mark.skip(reason="needs CUDA"))
        if "vllm" in item.keywords and not has_vllm:
            item.add_marker(pytest.mark.skip(reason="needs the vllm package (pip install -e .[gpu])"))


@pytest.fixture(scope="session")
def seed_model(tmp_path_factory) -> Path:
    """models/it0 from the packaged SmolLM2-135M GGUF (~25 s on 2 cores)."""
    from judgeloop.seed import materialise_seed

    out = tmp_path_factory.mktemp("models") / "it0"
    materialise_seed("packaged:smollm2-135m", None, out)
    return out


@pytest.fixture
def hf_offline(monkeypatch, tmp_path):
    """No network, and a datasets cache inside tmp_path."""
    datasets = pytest.importorskip("datasets")
    import huggingface_hub.constants as hub_constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    # both libraries read the environment once, at import
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True, raising=False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True, raising=False)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache", raising=False)
    return datasets


TINY_WORDS = ("A B Response better worse judge verdict final the is a an and of to in which question answer "
              "[[A]] [[B]] user assistant system good bad correct wrong").split()
CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


TINY_SPECIALS = ["<unk>", "<pad>", "<|im_start|>", "<|im_end|>"]


def sentencepiece_tokenizer():
    """A SentencePiece-style BPE tokenizer (Metaspace, "\u2581" dummy prefix), as Llama 2 / Gemma / Mistral ship.

    Trained here on a few judge phrases, so "A" alone encodes as "\u2581A"
    while "verdict: [[A" ends in "[[", "A"."""
    from tokenizers import SentencePieceBPETokenizer
    from transformers import PreTrainedTokenizerFast

    corpus = ["Final verdict: [[A]]", "Final verdict: [[B]]", "Response A is better than Response B",
              "[[A]] [[B]] A B the answer is correct", "which question answer good bad wrong"] * 20
    core = SentencePieceBPETokenizer()
    core.train_from_iterator(corpus, vocab_size=120, special_tokens=TINY_SPECIALS, show_progress=False)
    return PreTrainedTokenizerFast(tokenizer_object=core._tokenizer, unk_token="<unk>", pad_token="<pad>",
                                   eos_token="<|im_end|>", additional_special_tokens=["<|im_start|>"])


def make_tiny_model(dest: Path, seed: int = 0, tokenizer: str = "words") -> Path:
    """A random-weight Llama (2 layers, width 32) with a small tokenizer and a ChatML template.

    tokenizer: "words" (word-level over TINY_WORDS) or "sentencepiece"
    (`sentencepiece_tokenizer`). Weights are rounded to bf16 values (stored
    as fp32), so a test can tell a real fp32 update from bf16 rounding.
    Seconds to build; no hub needed."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    if tokenizer == "sentencepiece":
        tok = sentencepiece_tokenizer()
    else:
        vocab = {t: i for i, t in enumerate([*TINY_SPECIALS, *dict.fromkeys(TINY_WORDS), "\n"])}
        core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
        core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        tok = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>", pad_token="<pad>", eos_token="<|im_end|>",
                                      additional_special_tokens=["<|im_start|>"])
    tok.chat_template = CHATML
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512,
                      pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=None)
    model = LlamaForCausalLM(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(torch.bfloat16).to(torch.float32))
    model.save_pretrained(dest, safe_serialization=True)
    tok.save_pretrained(dest)
    return dest


@pytest.fixture
def tiny_model(tmp_path) -> Path:
    return make_tiny_model(tmp_path / "tiny")
