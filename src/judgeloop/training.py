"""Fine-tune the judge on curated judgments with TRL (SFT).

The dataset is conversational prompt-completion (the judge prompt as the user
turn, the kept judgment as the assistant turn), so TRL computes the loss on
the judgment tokens only (`completion_only_loss`). Weights are fp32;
`training.precision` chooses the compute dtype (auto: bf16 autocast on GPUs
that have it and on CPUs with AMX, else fp32: without AMX, bf16 on a CPU
ran 0.9x fp32 with AVX-512 bf16 and ~40x slower with AVX2 only).
"""

from __future__ import annotations

import logging
import random
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .config import TrainingConfig
from .seed import load_checkpoint, model_identity, save_model

log = logging.getLogger(__name__)


def _precision(cfg: TrainingConfig) -> dict[str, Any]:
    """TrainingArguments' precision flags. The weights stay fp32 whatever the compute
    dtype (_load): bf16/fp16 is autocast over fp32 master weights, because bf16
    weights lose AdamW updates below ~1/256 of a weight (most of them at lr 1e-6)."""
    import torch

    cuda = torch.cuda.is_available()
    mode = cfg.precision
    if mode == "auto":
        mode = ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if cuda else cpu_precision()
    if not cuda:
        from .hardware import set_torch_threads

        set_torch_threads(None, "training", knob=None)
    return {"use_cpu": not cuda, "bf16": mode == "bf16", "fp16": mode == "fp16"}


def cpu_precision() -> str:
    """`training.precision: auto` on a CPU, as measured (benchmarks/training_bench, SFT, 135M):
    bf16 autocast where the CPU has AMX tiles for bf16 (1.55x fp32 on a Xeon with amx_bf16),
    else fp32 (AVX-512 bf16 without AMX: 0.9x; AVX2 only: ~40x slower)."""
    from .hardware import cpu_info

    return "bf16" if "amx_bf16" in cpu_info()["flags"] else "fp32"


def _load(init_dir: str | Path, cfg: TrainingConfig) -> tuple[Any, Any, Any, dict[str, Any]]:
    import torch

    prec = _precision(cfg)
    model, tok = load_checkpoint(init_dir, torch.float32, what="training init model")  # fp32 master weights
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    peft_config = None
    if cfg.lora.enabled:
        from peft import LoraConfig

        peft_config = LoraConfig(
            r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout, target_modules="all-linear", task_type="CAUSAL_LM"
        )
    return model, tok, peft_config, prec


def _trainer_args(cfg: TrainingConfig, config: str, work: str, prec: dict[str, Any]) -> dict[str, Any]:
    """The arguments of TRL's `config` (SFTConfig or DPOConfig): judgeloop's defaults for logging and saving,
    then every TRL field params set (`TrainingConfig.trl_args`), then what judgeloop manages."""
    defaults = dict(logging_steps=1, save_strategy="no", report_to=[], dataloader_num_workers=0)
    managed = dict(output_dir=work, data_seed=cfg.seed, **prec)
    if cfg.pair_batches:  # the examples come laid out by pair_layout
        managed["train_sampling_strategy"] = "sequential"
    return defaults | cfg.trl_args(config) | managed


def pair_layout(keys: list[tuple[str, str]], seed: int) -> tuple[list[int], int]:
    """Positions of the examples (keyed (pair_id, order)) in training order for `training.pair_batches`:
    the two orders of a pair side by side (wl, then lw), pairs in an order drawn with `seed`, so that
    every batch of an even size holds whole pairs. Examples without their other order come last;
    their count is returned too."""
    by_pair: dict[str, list[tuple[str, int]]] = {}
    for i, (pair, order) in enumerate(keys):
        by_pair.setdefault(pair, []).append((order, i))
    whole = sorted(p for p, g in by_pair.items() if len(g) == 2)
    random.Random(seed).shuffle(whole)
    alone = sorted(i for g in by_pair.values() if len(g) != 2 for _, i in g)
    return [i for p in whole for _, i in sorted(by_pair[p], key=lambda oi: oi[0] != "wl")] + alone, len(alone)


def _training_order(examples: list[dict[str, Any]], rows: list[dict[str, Any]], fits: list[int], cfg: TrainingConfig
                    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The examples that fit, in training order (`training.pair_batches`: by pair_layout), and its stats."""
    if not cfg.pair_batches:
        return [examples[i] for i in fits], {}
    layout, unpaired = pair_layout([(rows[i]["pair_id"], rows[i]["order"]) for i in fits], cfg.seed)
    if unpaired:
        log.warning("training.pair_batches: %d of %d examples lack their pair's other order; they train last",
                    unpaired, len(fits))
    return [examples[fits[i]] for i in layout], {"paired_examples": len(fits) - unpaired}


def _run_and_save(trainer: Any, tok: Any, cfg: TrainingConfig, init_dir: Any, out_dir: Any, card: dict[str, Any], n: int) -> dict[str, Any]:
    import torch

    t0 = time.time()
    result = trainer.train()
    seconds = time.time() - t0
    history = [h for h in trainer.state.log_history if "loss" in h]
    init_name, init_hash = model_identity(init_dir)
    acc = trainer.accelerator
    if cfg.lora.enabled and (trainer.is_fsdp_enabled or trainer.is_deepspeed_enabled):
        raise ValueError("training.lora with an FSDP or ZeRO-3 launch: merging sharded adapters is not supported; "
                         "use DDP (configs/accelerate/ddp.yaml) or full fine-tuning")
    # every rank takes part: under FSDP / ZeRO-3 this gathers the shards into full tensors
    state_dict = acc.get_state_dict(trainer.model)
    if not acc.is_main_process:  # multi-process launch: rank 0 writes the checkpoint
        return {"train_loss": result.training_loss, "steps": result.global_step}
    model = acc.unwrap_model(trainer.model)
    args = trainer.args
    compute = "bf16" if args.bf16 else "fp16" if args.fp16 else "fp32"  # what precision: auto chose
    if cfg.lora.enabled:
        model = model.merge_and_unload()
        state_dict = model.state_dict()
    manifest = save_model(
        model,
        tok,
        out_dir,
        {**card, "kind": "trained", "init": init_name, "init_hash": init_hash, "hyperparameters": cfg.model_dump(),
         "compute_dtype": compute},
        state_dict={k: v.to(torch.float32) for k, v in state_dict.items()},
    )
    log.info("trained %s on %d examples: %d steps, loss %.4f, %.1f s", out_dir, n, result.global_step, result.training_loss, seconds)
    # TRL logs the running count of tokens fed to the model (DPO: chosen + rejected)
    tokens = next((int(float(h["num_tokens"])) for h in reversed(trainer.state.log_history) if "num_tokens" in h), None)
    return {
        "train_loss": result.training_loss,
        "steps": result.global_step,
        "examples": n,
        "compute_dtype": compute,
        "seconds": round(seconds, 2),
        "steps_per_s": round(result.global_step / seconds, 4) if seconds else None,
        "examples_per_s": result.metrics.get("train_samples_per_second"),  # examples x epochs seen, per second
        "tokens": tokens,
        "tokens_per_s": round(tokens / seconds, 1) if tokens and seconds else None,
        "loss_history": [{"step": h["step"], "loss": h["loss"]} for h in history],
        "content_hash": manifest["content_hash"],
    }


def _defused(tok: Any, examples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Conversational examples whose texts cannot become control tokens when TRL applies the chat template:
    the judge is trained on the prompt text its engines show it (`templates.defuse_messages`)."""
    from .templates import control_tokens, defuse_messages

    controls = control_tokens(tok)
    return [{k: defuse_messages(v, controls) for k, v in ex.items()} for ex in examples]


def _fitting(examples: list[dict[str, Any]], tok: Any, max_length: int, sides: tuple[str, ...], what: str
             ) -> tuple[list[int], dict[str, Any]]:
    """Positions of the examples whose prompt plus every side fits `max_length` tokens, and the count.

    TRL would truncate the rest, cutting the verdict off a long judgment (or
    drop a DPO row whose prompt alone is too long, silently); a row that does
    not fit is dropped here instead, and counted in the training stats."""
    def n_tokens(messages: list[dict[str, str]]) -> int:
        ids = tok.apply_chat_template(messages, tokenize=True)
        return len(ids["input_ids"] if isinstance(ids, Mapping) else ids)

    lengths = [max(n_tokens(ex["prompt"] + ex[side]) for side in sides) for ex in examples]
    fits = [i for i, n in enumerate(lengths) if n <= max_length]
    stats = {"too_long": len(examples) - len(fits), "longest_tokens": max(lengths, default=0)}
    if stats["too_long"]:
        log.warning("%s: %d of %d examples are longer than training.max_length=%d tokens (longest %d); dropped, not truncated",
                    what, stats["too_long"], len(examples), max_length, stats["longest_tokens"])
    if not fits:
        raise ValueError(f"{what}: all {len(examples)} examples are longer than training.max_length={max_length} tokens "
                         f"(longest {stats['longest_tokens']}); raise training.max_length")
    return fits, stats


def train_sft(
    rows: list[dict[str, Any]], init_dir: str | Path, out_dir: str | Path, cfg: TrainingConfig, card: dict[str, Any]
) -> dict[str, Any]:
    """SFT from `init_dir` on sft rows; save a merged checkpoint + model card to `out_dir`."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    if not rows:
        raise ValueError("no SFT examples (see the curation funnel)")
    model, tok, peft_config, prec = _load(init_dir, cfg)
    examples = _defused(tok, [
        {"prompt": [{"role": "user", "content": r["prompt"]}], "completion": [{"role": "assistant", "content": r["completion"]}]}
        for r in rows
    ])
    fits, fit = _fitting(examples, tok, cfg.max_length, ("completion",), "SFT")
    examples, layout = _training_order(examples, rows, fits, cfg)
    with tempfile.TemporaryDirectory(prefix="judgeloop-sft-") as work:
        args = SFTConfig(completion_only_loss=True, **_trainer_args(cfg, "SFTConfig", work, prec))
        trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(examples), processing_class=tok,
                             peft_config=peft_config)
        return _run_and_save(trainer, tok, cfg, init_dir, out_dir, {**card, "algo": "sft"}, len(examples)) | fit | layout


def train_dpo(
    rows: list[dict[str, Any]], init_dir: str | Path, out_dir: str | Path, cfg: TrainingConfig, card: dict[str, Any]
) -> dict[str, Any]:
    """DPO from `init_dir` (also the frozen reference) with an optional NLL term on the chosen side."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    if not rows:
        raise ValueError("no DPO pairs (see the curation funnel)")
    model, tok, peft_config, prec = _load(init_dir, cfg)
    examples = _defused(tok, [
        {
            "prompt": [{"role": "user", "content": r["prompt"]}],
            "chosen": [{"role": "assistant", "content": r["chosen"]}],
            "rejected": [{"role": "assistant", "content": r["rejected"]}],
        }
        for r in rows
    ])
    fits, fit = _fitting(examples, tok, cfg.max_length, ("chosen", "rejected"), "DPO")
    examples, layout = _training_order(examples, rows, fits, cfg)
    loss: dict[str, Any] = {"loss_type": ["sigmoid"], "loss_weights": [1.0]}
    if cfg.dpo.nll_weight > 0:  # DPO + NLL on the chosen judgment ("sft" loss in TRL)
        loss = {"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, cfg.dpo.nll_weight]}
    with tempfile.TemporaryDirectory(prefix="judgeloop-dpo-") as work:
        args = DPOConfig(beta=cfg.dpo.beta, **loss, **_trainer_args(cfg, "DPOConfig", work, prec))
        trainer = DPOTrainer(model=model, ref_model=None, args=args, train_dataset=Dataset.from_list(examples),
                             processing_class=tok, peft_config=peft_config)
        card = {**card, "algo": "dpo", "dpo": cfg.dpo.model_dump()}
        return _run_and_save(trainer, tok, cfg, init_dir, out_dir, card, len(examples)) | fit | layout
