"""Fine-tune the judge on curated judgments with TRL (SFT).

The dataset is conversational prompt-completion (the judge prompt as the user
turn, the kept judgment as the assistant turn), so TRL computes the loss on
the judgment tokens only (`completion_only_loss`). On CPU, training runs in
fp32 (`use_cpu=True, bf16=False`): TRL defaults to bf16, which is ~40x slower
on CPUs without AMX.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Any

from .config import TrainingConfig
from .seed import model_identity, save_model

log = logging.getLogger(__name__)


def _precision() -> dict[str, Any]:
    import torch

    if torch.cuda.is_available():
        bf16 = torch.cuda.is_bf16_supported()
        return {"use_cpu": False, "bf16": bf16, "fp16": not bf16}
    return {"use_cpu": True, "bf16": False, "fp16": False}


def train_sft(
    rows: list[dict[str, Any]], init_dir: str | Path, out_dir: str | Path, cfg: TrainingConfig, card: dict[str, Any]
) -> dict[str, Any]:
    """Train from `init_dir` on sft rows; save a merged checkpoint + model card to `out_dir`."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    if not rows:
        raise ValueError("no training examples (see the curation funnel)")
    ds = Dataset.from_list(
        [
            {"prompt": [{"role": "user", "content": r["prompt"]}], "completion": [{"role": "assistant", "content": r["completion"]}]}
            for r in rows
        ]
    )
    tok = AutoTokenizer.from_pretrained(init_dir)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    prec = _precision()
    dtype = torch.bfloat16 if prec["bf16"] else torch.float32
    model = AutoModelForCausalLM.from_pretrained(init_dir, dtype=dtype)
    peft_config = None
    if cfg.lora.enabled:
        from peft import LoraConfig

        peft_config = LoraConfig(
            r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout, target_modules="all-linear", task_type="CAUSAL_LM"
        )
    with tempfile.TemporaryDirectory(prefix="judgeloop-train-") as work:
        args = SFTConfig(
            output_dir=work,
            num_train_epochs=cfg.epochs,
            max_steps=cfg.max_steps,
            learning_rate=cfg.learning_rate,
            lr_scheduler_type=cfg.lr_scheduler,
            warmup_steps=cfg.warmup_steps,
            per_device_train_batch_size=cfg.batch_size,
            gradient_accumulation_steps=cfg.grad_accum,
            max_length=cfg.max_length,
            completion_only_loss=True,
            seed=cfg.seed,
            data_seed=cfg.seed,
            logging_steps=1,
            save_strategy="no",
            report_to=[],
            disable_tqdm=False,
            dataloader_num_workers=0,
            gradient_checkpointing=cfg.gradient_checkpointing,
            **prec,
        )
        trainer = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tok, peft_config=peft_config)
        t0 = time.time()
        result = trainer.train()
        seconds = time.time() - t0
        model = trainer.model
        if cfg.lora.enabled:
            model = model.merge_and_unload()
        history = [h for h in trainer.state.log_history if "loss" in h]
    model = model.to(torch.float32)
    init_name, init_hash = model_identity(init_dir)
    manifest = save_model(
        model,
        tok,
        out_dir,
        {**card, "kind": "trained", "init": init_name, "init_hash": init_hash, "hyperparameters": cfg.model_dump()},
    )
    metrics = {
        "train_loss": result.training_loss,
        "steps": result.global_step,
        "examples": len(rows),
        "seconds": round(seconds, 2),
        "loss_history": [{"step": h["step"], "loss": h["loss"]} for h in history],
        "content_hash": manifest["content_hash"],
    }
    log.info("trained %s on %d examples: %d steps, loss %.4f, %.1f s", out_dir, len(rows), result.global_step, result.training_loss, seconds)
    return metrics
