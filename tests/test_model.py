"""The real SmolLM2-135M: seed materialisation, the transformers backend, forced verdicts."""

from __future__ import annotations

import json

import pytest

from judgeloop.backends import Request, Sampling, make_backend
from judgeloop.config import GenerationConfig
from judgeloop.judging import PairwiseItem, judge_items
from judgeloop.seed import MANIFEST, ModelSourceError, load_source

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def backend(seed_model):
    return make_backend(seed_model, GenerationConfig(backend="transformers", batch_size=8))


def test_seed_checkpoint_is_plain_safetensors_with_manifest(seed_model):
    assert (seed_model / "model.safetensors").exists()
    assert not list(seed_model.glob("*.gguf"))
    manifest = json.loads((seed_model / MANIFEST).read_text())
    assert manifest["source"] == "packaged:smollm2-135m" and len(manifest["content_hash"]) == 64
    cfg = json.loads((seed_model / "config.json").read_text())
    assert "quantization_config" not in cfg
    assert (seed_model / "chat_template.jinja").exists() or "chat_template" in (seed_model / "tokenizer_config.json").read_text()


def test_bad_model_sources():
    with pytest.raises(ModelSourceError, match="unknown packaged model"):
        load_source("packaged:nope")
    with pytest.raises(ModelSourceError, match="not an existing directory"):
        load_source("no/such/dir/here")


def test_not_a_model_directory(tmp_path):
    with pytest.raises(ModelSourceError, match="no config.json"):
        load_source(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="not a model directory"):
        make_backend(tmp_path, GenerationConfig(backend="transformers"))


def test_generate_n_samples_token_counts_and_seeds(backend):
    s = Sampling(temperature=0.7, top_p=0.9, max_tokens=8, n=3, seed=5)
    reqs = [Request("r1", ({"role": "user", "content": "Name a colour."},), s),
            Request("r2", ({"role": "user", "content": "Count to three."},), s)]
    out = backend.generate(reqs)
    assert [len(o) for o in out] == [3, 3]
    for comps in out:
        for c in comps:
            assert 1 <= c.n_tokens <= 8 and c.finish_reason in ("stop", "length") and c.n_prompt_tokens > 5
            assert c.finish_reason == "stop" or c.n_tokens == 8
    again = backend.generate(reqs)
    assert [[c.text for c in o] for o in out] == [[c.text for c in o] for o in again]  # seeded


def test_greedy_and_stop_strings(backend):
    s = Sampling(temperature=0.0, max_tokens=12, n=1, stop=("3",))
    out = backend.generate([Request("r", ({"role": "user", "content": "Count from 1 to 10, separated by commas."},), s)])
    text = out[0][0].text
    assert "3" not in text or text.endswith("3")


def test_forced_fallback_on_real_model(backend):
    items = [PairwiseItem("x", "What is 2 + 2?", "2 + 2 = 4.", "The capital of France is Paris.")]
    sampled = judge_items(items, backend, Sampling(0.7, 0.9, 8, 4, 1), "forced", seed_key="t")
    assert len(sampled) == 8 and {j.order for j in sampled} == {"wl", "lw"}
    for j in sampled:
        assert j.verdict in ("A", "B")
        if j.verdict_source == "forced":
            assert j.parse_status in ("none", "truncated", "both")
            assert j.p_a + j.p_b == pytest.approx(1.0) and 0 < j.p_a < 1
        assert j.correct == (j.verdict == ("A" if j.order == "wl" else "B"))
    greedy = judge_items(items, backend, Sampling(0.0, 1.0, 8, 1, 0), "forced", seed_key="t")
    for j in greedy:
        if j.verdict_source == "forced":
            assert j.verdict == ("A" if j.p_a >= j.p_b else "B")  # argmax when greedy
    none = judge_items(items, backend, Sampling(0.0, 1.0, 8, 1, 0), "none", seed_key="t")
    for j in none:
        assert (j.verdict is None) == (j.parse_status != "ok") and (j.correct is None) == (j.verdict is None)


def test_judge_cli_on_llmbar_file(seed_model, tmp_path, capsys):
    import pyarrow.parquet as pq

    from judgeloop.cli import main

    data = tmp_path / "mini.json"
    data.write_text(json.dumps([
        {"input": "What is 2 + 2?", "output_1": "4", "output_2": "5", "label": 1},
        {"input": "Name a primary colour.", "output_1": "Green.", "output_2": "Red.", "label": 2},
    ]))
    out = tmp_path / "judged.parquet"
    code = main(["judge", str(data), "--format", "llmbar", "--model", str(seed_model), "--output", str(out), "--max-tokens", "8"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "accuracy" in printed and "parse_rate" in printed
    rows = pq.read_table(out).to_pylist()
    assert len(rows) == 4 and {r["order"] for r in rows} == {"wl", "lw"}
    for r in rows:  # the official score: a forced verdict is 0.5, only a written one scores 1 or 0
        assert r["verdict"] in ("A", "B")
        assert r["score"] == (float(r["correct"]) if r["verdict_source"] == "parsed" else 0.5)


def test_majority_vote_and_rewardbench_scoring_on_real_model(backend, tmp_path):
    from judgeloop.evaluation import evaluate_set, load_set

    path = tmp_path / "rb.jsonl"
    rows = [{"prompt": f"Say the number {i}.", "chosen": str(i), "chosen_model": "m", "rejected": "banana",
             "rejected_model": "m", "subset": sub, "id": f"{sub}-{i}"} for i, sub in enumerate(["alpacaeval-easy", "math-prm"])]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    items, subsets = load_set("rewardbench", str(path))
    judged, summary = evaluate_set("rb", "rewardbench", items, subsets, backend, max_tokens=8, fallback="forced",
                                   orders_mode="random_seeded", order_seed=3, samples=3, temperature=0.7)
    assert len(judged) == 2 * 3  # one seeded order per example, 3 samples each
    assert summary["majority"]["samples"] == 3 and 0 <= summary["majority"]["majority_accuracy"] <= 1
    rb = summary["rewardbench"]["all"]
    assert set(rb["sections"]) >= {"Chat", "Reasoning"} and 0 <= rb["overall"] <= 1


@pytest.mark.parametrize(
    "case, n",
    [("chat", 3), ("x' prompts", 1), ("x' prompts", 2), ("x' prompts greedy", 1)],
)
def test_shared_prefill_gives_the_plain_generate_tokens(seed_model, case, n):
    """One prefill per prompt (n samples) and per shared prefix (x' demos) = plain generate, token for token."""
    import torch

    from judgeloop.backends.transformers_backend import SHARED_PREFIX_MIN, TransformersBackend, _common_prefix_all
    from judgeloop.templates import modify_messages

    b = TransformersBackend(seed_model, GenerationConfig(batch_size=8, cache_dir=None))
    if case == "chat":  # different lengths, a short common prefix (the chat template's): not shared
        texts = [b.render(({"role": "user", "content": c},)) for c in ("Name a colour.", "Explain in one sentence why the sky is blue.")]
    else:  # the pairs stage's x' prompts: ~300 tokens of few-shot demos in common
        texts = [b.render(modify_messages(x, None)) for x in ("Name a colour.", "Explain why the sky is blue.",
                                                              "Write a haiku about autumn leaves on a quiet pond.")]
    enc = b._encode(texts)
    assert int(enc["attention_mask"].sum()) < enc["attention_mask"].numel()  # left padding
    rows = [r[m.bool()].tolist() for r, m in zip(enc["input_ids"], enc["attention_mask"])]
    assert (_common_prefix_all(rows) >= SHARED_PREFIX_MIN) == (case != "chat")
    kw = dict(max_new_tokens=12, num_return_sequences=n, pad_token_id=b.tok.pad_token_id, eos_token_id=b.eos_ids)
    if "greedy" in case:
        kw.update(do_sample=False)
    else:
        kw.update(do_sample=True, temperature=0.7, top_p=0.9, top_k=0)
    with torch.inference_mode():
        torch.manual_seed(7)
        plain = b.model.generate(**enc, **kw)
        torch.manual_seed(7)
        shared = b._generate_shared_prefill(enc, kw)
    # the prompt part is laid out differently ([prefix][padding][rest]); the generated tokens are the same
    width = enc["input_ids"].shape[1]
    assert plain.shape == shared.shape and torch.equal(plain[:, width:], shared[:, width:])


def test_forced_choice_with_shared_prompts_equals_plain_forward(seed_model):
    """choice_logprobs shares each prompt's prefill; the numbers are the whole-text forward pass's."""
    import torch

    from judgeloop.backends.transformers_backend import TransformersBackend
    from judgeloop.templates import FORCED_VERDICT_CONTINUATION, judge_messages

    b = TransformersBackend(seed_model, GenerationConfig(batch_size=4, cache_dir=None))
    m1 = judge_messages("What is 2+2?", "4.", "5.")
    m2 = judge_messages("Name the largest planet in the solar system.", "Jupiter is the largest.", "Saturn, I think.")
    texts = ["Response A is right.", "B looks better to me because it is longer and more detailed.", "", " Both are fine."]
    contexts = [(m, t + FORCED_VERDICT_CONTINUATION) for m in (m1, m2) for t in texts]  # 8 contexts, 2 prompts, 2 batches
    got = b.choice_logprobs(contexts, ["A", "B"])
    a_id, b_id = (b.tok.encode(c, add_special_tokens=False)[0] for c in "AB")
    for (messages, assistant), lp in zip(contexts, got):
        enc = b._encode([b.render(messages) + assistant])
        with torch.inference_mode():
            ref = torch.log_softmax(b.model(**enc).logits[0, -1].float(), dim=-1)
        assert abs(lp["A"] - float(ref[a_id])) < 1e-3 and abs(lp["B"] - float(ref[b_id])) < 1e-3, (assistant, lp, ref[[a_id, b_id]])
