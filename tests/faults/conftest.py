"""Shared helpers for the fault suite: a scratch project, and stages run the way a user runs them.

Every fault test runs a stage script (`python stages/NAME.py`) or the
`judgeloop` CLI as a subprocess in a temporary project, then checks what the
user sees: a non-zero exit, one message naming the file / row / field / key /
endpoint (never a traceback), no output or partial output left behind, and a
rerun after the fix that completes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from judgeloop.io import write_json, write_parquet
from judgeloop.schemas import to_table

ROOT = Path(__file__).resolve().parents[2]

# what the stages write (DVC outputs); inputs a test creates live elsewhere
OUTPUT_DIRS = ("data", "models", "metrics", "stats", "reports", "cache")


def deep_update(d: dict, u: dict) -> dict:
    for k, v in u.items():
        d[k] = deep_update(dict(d.get(k) or {}), v) if isinstance(v, dict) and isinstance(d.get(k), dict) else v
    return d


def shipped_params() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def stage_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        GX_ANALYTICS_ENABLED="false", DVC_NO_ANALYTICS="1", TOKENIZERS_PARALLELISM="false",
        HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "2"),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


class Project:
    """A scratch judgeloop project: params.yaml plus whatever inputs a test puts there."""

    def __init__(self, root: Path):
        self.root = root
        self.set_params({})

    # -- params ------------------------------------------------------------------

    def set_params(self, changes: dict[str, Any], base: dict[str, Any] | None = None) -> dict[str, Any]:
        """params.yaml = the shipped params (or `base`) with `changes` merged in at any depth."""
        params = deep_update(base if base is not None else shipped_params(), changes)
        (self.root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        return params

    def update_params(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Merge `changes` into the project's current params.yaml."""
        return self.set_params(changes, base=yaml.safe_load((self.root / "params.yaml").read_text()))

    # -- running -----------------------------------------------------------------

    def stage(self, name: str, *args: str, inject: str | None = None, timeout: float = 300,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """Run stages/NAME.py here. `inject`: Python run first in the same process (a fault, e.g. a patched writer)."""
        script = str(ROOT / "stages" / f"{name}.py")
        if inject is None:
            cmd = [sys.executable, script, *args]
        else:
            # sys.path[0] is the script's folder, as when Python runs the script itself
            boot = (f"import runpy, sys\n{inject}\nsys.argv = [{script!r}, *sys.argv[1:]]\n"
                    f"sys.path.insert(0, {str(ROOT / 'stages')!r})\nrunpy.run_path({script!r}, run_name='__main__')\n")
            cmd = [sys.executable, "-c", boot, *args]
        return subprocess.run(cmd, cwd=self.root, env=stage_env(**(env or {})), capture_output=True, text=True, timeout=timeout)

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        exe = Path(sys.executable).parent / "judgeloop"
        cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "judgeloop.cli"]
        return subprocess.run([*cmd, *args], cwd=self.root, env=stage_env(), capture_output=True, text=True, timeout=timeout)

    # -- outputs -----------------------------------------------------------------

    def outputs(self) -> dict[str, bytes | None]:
        """Every file under the output folders (hidden temporaries included) -> its bytes (None for big ones)."""
        out: dict[str, bytes | None] = {}
        for d in OUTPUT_DIRS:
            for p in sorted((self.root / d).rglob("*")) if (self.root / d).exists() else []:
                if p.is_file() or p.is_symlink():
                    rel = str(p.relative_to(self.root))
                    out[rel] = p.read_bytes() if p.is_file() and p.stat().st_size < 4 << 20 else None
        return out

    def temporaries(self) -> list[str]:
        return sorted(str(p.relative_to(self.root)) for d in OUTPUT_DIRS if (self.root / d).exists()
                      for p in (self.root / d).rglob("*.tmp"))

    # -- inputs: small hand-made datasets, the shape the stages expect --------------

    def write_pairs(self, n: int = 4, split: str = "it1") -> list[dict[str, Any]]:
        rows = [
            {
                "pair_id": f"p{i}", "prompt_id": f"p{i}", "split": split, "category": "math",
                "instruction": f"What is {i} + 1?", "response_w": f"{i} + 1 = {i + 1}.",
                "modified_instruction": f"What is {i} + 2?", "response_l": f"{i} + 2 = {i + 2}.",
                "gen_status": "ok", "generator": "hand", "generator_hash": "h", "sampling": "{}", "seed": 0,
                "n_tokens_w": 5, "n_tokens_modify": 5, "n_tokens_l": 5, "finish_reason_w": "stop",
                "finish_reason_modify": "stop", "finish_reason_l": "stop", "raw_modify": "",
            }
            for i in range(n)
        ]
        write_parquet(to_table("pairs", rows), self.root / "data" / "pairs.parquet")
        return rows

    def write_judgments(self, it: str = "it1", n_pairs: int = 4, samples: int = 2) -> None:
        """Judgments of the hand-made pairs: correct in both orders for most samples."""
        rows = []
        for i in range(n_pairs):
            for order in ("wl", "lw"):
                for k in range(samples):
                    right = "A" if order == "wl" else "B"
                    verdict = right if (i + k) % 3 else ("B" if right == "A" else "A")
                    rows.append({
                        "judgment_id": f"{it}:p{i}:{order}:{k}", "pair_id": f"p{i}", "iteration": it,
                        "judge_model": "models/it0", "judge_hash": "h", "order": order, "sample_idx": k, "seed": k,
                        "sampling": "{}", "text": f"Both answers were read. [[{verdict}]]", "verdict": verdict,
                        "parse_status": "ok", "verdict_source": "parsed", "p_a": None, "p_b": None, "prior_a": None,
                        "correct": verdict == right, "n_tokens": 8, "finish_reason": "stop", "len_a": 10, "len_b": 10,
                    })
        write_parquet(to_table("judgments", rows), self.root / "data" / it / "judgments.parquet")

    def write_sft(self, it: str = "it1", n: int = 2) -> None:
        rows = [
            {"example_id": f"{it}:sft:{i}", "pair_id": f"p{i}", "iteration": it, "order": "wl",
             "judgment_id": f"{it}:p{i}:wl:0", "verdict": "A", "verdict_source": "parsed",
             "prompt": f"Which answer to 'What is {i} + 1?' is better? A: {i + 1}. B: {i + 2}.",
             "completion": "A is right. [[A]]"}
            for i in range(n)
        ]
        write_parquet(to_table("sft", rows), self.root / "data" / it / "sft.parquet")
        write_parquet(to_table("dpo", []), self.root / "data" / it / "dpo.parquet")
        write_json({"kept": n, "dpo": {"kept": 0}}, self.root / "stats" / it / "curation.json")


@pytest.fixture
def project(tmp_path) -> Project:
    root = tmp_path / "project"
    root.mkdir()
    return Project(root)


def run_in(root: Path, stage: str, *args: str, caplog, monkeypatch) -> tuple[int, str]:
    """`run_stage` in process (what stages/NAME.py calls): for many variants of one fault, or a
    rerun after a fix, without paying a fresh interpreter and torch import each time.
    Returns (exit code, the errors it logged)."""
    import logging

    from judgeloop.pipeline import run_stage

    monkeypatch.chdir(root)
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="judgeloop"):
        rc = run_stage(stage, list(args))
    return rc, "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)


def assert_fails(res: subprocess.CompletedProcess, *needles: str) -> str:
    """A non-zero exit with one plain message (no traceback) that contains every needle."""
    err = res.stderr
    assert res.returncode != 0, f"expected a failure, got exit 0:\n{err[-3000:]}"
    assert "Traceback" not in err, f"a traceback instead of a message:\n{err[-4000:]}"
    for n in needles:
        assert n in err, f"{n!r} not named in the message:\n{err[-3000:]}"
    return err


def assert_ok(res: subprocess.CompletedProcess) -> None:
    assert res.returncode == 0, f"exit {res.returncode}:\n{res.stdout[-2000:]}\n{res.stderr[-4000:]}"


def assert_untouched(project: Project, before: dict[str, bytes | None]) -> None:
    """No output file appeared, changed or vanished, and no temporary is left."""
    after = project.outputs()
    assert sorted(after) == sorted(before), f"outputs changed: added {sorted(set(after) - set(before))}, removed {sorted(set(before) - set(after))}"
    changed = [k for k in before if before[k] != after[k]]
    assert not changed, f"outputs rewritten by a failed run: {changed}"
    assert project.temporaries() == []


# `fake`: the scripted OpenAI-compatible stand-in server of tests/test_openai_backend.py
from test_openai_backend import fake  # noqa: E402,F401


TINY_CONTEXT = 4096  # positions (= characters) of the tiny model below


def build_tiny_model(out: Path) -> Path:
    """A real (random-weight) 1-layer Llama with a character-level tokenizer and a chat template.

    Loads, generates, scores forced verdicts and trains through the same
    transformers code as SmolLM2, in a second instead of a minute, so faults
    that need *a* model (not a good one) stay in the fast suite. One token
    per character; its context is TINY_CONTEXT.
    """
    import string

    import torch
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<unk>", "<|im_start|>", "<|im_end|>"]
    vocab = {w: i for i, w in enumerate(dict.fromkeys(specials + list(string.printable)))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens(specials)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", eos_token="<|im_end|>", pad_token="<|im_end|>",
                                   bos_token="<|im_start|>")
    fast.chat_template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                      num_key_value_heads=2, max_position_embeddings=TINY_CONTEXT, eos_token_id=vocab["<|im_end|>"],
                      bos_token_id=vocab["<|im_start|>"], pad_token_id=vocab["<|im_end|>"])
    LlamaForCausalLM(cfg).save_pretrained(out)
    fast.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")
