"""transformers `generate` backend: runs the embedded default on CPU, and GPUs.

Requests with the same sampling parameters are batched together, sorted by
prompt length so left padding stays small. The RNG is seeded per batch from
the batch's request ids and seeds, so a rerun with the same requests and
batch size produces the same text.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections import defaultdict
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..config import GenerationConfig
from ..seed import load_checkpoint, model_identity
from .base import Backend, LocalTokenizer, Completion, Request, Sampling, choice_continuations, common_prefix

log = logging.getLogger(__name__)


def pick_device_dtype(cfg: GenerationConfig) -> tuple[str, Any]:
    import torch

    device = cfg.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if cfg.dtype != "auto":
        return device, getattr(torch, cfg.dtype)
    if device == "cuda" and torch.cuda.is_bf16_supported():
        return device, torch.bfloat16
    # fp32 on CPU: bf16 matmuls are ~40x slower on CPUs without AMX/AVX-512.
    return device, torch.float32


class TransformersBackend(LocalTokenizer, Backend):
    def __init__(self, model_dir: str | Path, cfg: GenerationConfig):
        super().__init__()
        model_dir = Path(model_dir)
        if not (model_dir / "config.json").exists():
            raise FileNotFoundError(f"{model_dir}: not a model directory (no config.json); run the stage that makes it")
        self.cfg = cfg
        self.device, self.dtype = pick_device_dtype(cfg)
        if self.device == "cpu":
            from ..hardware import set_torch_threads

            self.threads = set_torch_threads(cfg.threads, "generation")
        self.model_name, self.model_hash = model_identity(model_dir)
        t0 = time.time()
        model, self.tok = load_checkpoint(model_dir, self.dtype)
        self.tok.padding_side = "left"
        if self.tok.pad_token is None:
            self.tok.pad_token = self.tok.eos_token
        self.model = model.to(self.device)
        self.model.eval()
        eos = {self.tok.eos_token_id}
        im_end = self.tok.convert_tokens_to_ids("<|im_end|>")
        if isinstance(im_end, int) and im_end != self.tok.unk_token_id:
            eos.add(im_end)
        self.eos_ids = sorted(i for i in eos if i is not None)
        log.info("loaded %s on %s/%s in %.1f s", model_dir, self.device, self.dtype, time.time() - t0)

    @property
    def context_length(self) -> int | None:
        """Positions the model was trained for (prompt + generated tokens), if the config says."""
        n = getattr(self.model.config, "max_position_embeddings", None)
        return n if isinstance(n, int) and n > 0 else None

    def _check_fits(self, request_id: str, n_prompt: int, max_new: int) -> None:
        ctx = self.context_length
        if ctx is not None and n_prompt + max_new > ctx:
            raise ValueError(
                f"request {request_id!r}: the prompt is {n_prompt} tokens and {max_new} more may be generated, "
                f"but {self.model_name} takes at most {ctx} tokens (max_position_embeddings); "
                "shorten the input (e.g. lower prompts.max_chars) or lower max_tokens"
            )

    def engine_identity(self) -> dict[str, Any]:
        # batch size and dtype change which sequences share an RNG stream and the numerics
        return super().engine_identity() | {"batch_size": self.cfg.batch_size, "dtype": str(self.dtype), "device": self.device}

    # -- prompts -------------------------------------------------------------

    def _encode(self, texts: list[str]):
        return self.tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)

    # -- generation ----------------------------------------------------------

    def generate(self, requests: list[Request], desc: str = "generate") -> list[list[Completion]]:
        out: dict[str, list[Completion]] = {}
        groups: dict[Sampling, list[Request]] = defaultdict(list)
        for r in requests:
            groups[_without_seed(r.sampling)].append(r)
        total_seqs = sum(r.sampling.n for r in requests)
        bar = tqdm(total=total_seqs, desc=desc, unit="seq", mininterval=2.0)
        t0 = time.time()
        # every prompt is rendered and measured before anything is generated, so
        # one prompt too long for the model fails the call at once
        prompts = {r.request_id: self.render(r.messages) + r.prefill for r in requests}
        lengths = {rid: len(self.encode(p)) for rid, p in prompts.items()}
        for r in requests:
            self._check_fits(r.request_id, lengths[r.request_id], r.sampling.max_tokens)
        for sampling, reqs in groups.items():
            reqs = sorted(reqs, key=lambda r: (lengths[r.request_id], r.request_id))
            per_batch = max(1, self.cfg.batch_size // sampling.n)
            for start in range(0, len(reqs), per_batch):
                batch = reqs[start : start + per_batch]
                for r, comps in zip(batch, self._generate_batch(batch, [prompts[r.request_id] for r in batch], sampling)):
                    out[r.request_id] = comps
                bar.update(sum(r.sampling.n for r in batch))
        bar.close()
        self.stats.seconds += time.time() - t0
        self.stats.requests += len(requests)
        return [out[r.request_id] for r in requests]

    def _generate_batch(self, batch: list[Request], prompts: list[str], s: Sampling) -> list[list[Completion]]:
        import torch

        seed = zlib.crc32("|".join(f"{r.request_id}:{r.sampling.seed}" for r in batch).encode())
        torch.manual_seed(seed)
        enc = self._encode(prompts)
        n_prompt = enc["attention_mask"].sum(dim=1).tolist()
        kwargs: dict[str, Any] = dict(
            max_new_tokens=s.max_tokens,
            num_return_sequences=s.n,
            pad_token_id=self.tok.pad_token_id,
            eos_token_id=self.eos_ids,
        )
        if s.temperature > 0:
            kwargs.update(do_sample=True, temperature=s.temperature, top_p=s.top_p, top_k=0)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if s.stop:
            kwargs.update(stop_strings=list(s.stop), tokenizer=self.tok)
        with torch.inference_mode():
            gen = self._generate_shared_prefill(enc, kwargs)
        new = gen[:, enc["input_ids"].shape[1] :].tolist()
        results: list[list[Completion]] = []
        for i, r in enumerate(batch):
            comps = []
            for j in range(s.n):
                ids = new[i * s.n + j]
                comps.append(self._completion(r, j, ids, n_prompt[i], s))
            results.append(comps)
        self.stats.tokens_in += sum(n_prompt) * s.n
        self.stats.tokens_out += sum(c.n_tokens for cs in results for c in cs)
        return results

    def _generate_shared_prefill(self, enc: Any, kwargs: dict[str, Any]) -> Any:
        """Generate with each prompt token computed once: shared prefixes and n samples share the prefill.

        `generate(num_return_sequences=n)` copies every prompt n times before
        the prefill, so a judge stage (n=4) processed each ~450-token prompt
        four times; and the prompts of one batch often open with the same
        tokens (the judge instructions, the few-shot demos of the x' prompt,
        ~70% of its characters). Here:

        1. the batch's common token prefix (when >= SHARED_PREFIX_MIN tokens)
           goes through the model once and its KV cache is copied to every row;
        2. each row's remaining prompt tokens but the last are computed once
           per row, laid out as [shared prefix][left padding][rest], with
           position ids that skip the padding;
        3. the cache is copied n times and `generate` continues from it,
           computing only the last prompt token of each sequence.

        Without a shared prefix this is the plain call's computation split in
        two, and gives its tokens for the same seed (tests/test_model.py);
        with one, the logits agree with the plain call's to float rounding.
        """
        import torch
        from transformers import DynamicCache

        n = kwargs["num_return_sequences"]
        ids, mask = enc["input_ids"], enc["attention_mask"]
        if ids.shape[1] < 2:
            return self.model.generate(**enc, **kwargs)
        rows = [row[m.bool()].tolist() for row, m in zip(ids, mask)]
        shared = _common_prefix_all(rows)
        shared = min(shared, min(len(r) for r in rows) - 1)  # every row keeps >= 1 token for generate
        if shared < SHARED_PREFIX_MIN or len(rows) == 1:
            shared = 0
        if shared == 0 and n == 1:
            return self.model.generate(**enc, **kwargs)
        cache = DynamicCache(config=self.model.config)
        if shared:
            prefix = torch.tensor([rows[0][:shared]], device=self.device)
            self.model(input_ids=prefix, past_key_values=cache, use_cache=True, logits_to_keep=1)
            cache.batch_repeat_interleave(len(rows))
            rest, rest_mask = _left_pad([r[shared:] for r in rows], self.tok.pad_token_id, self.device)
            ids = torch.cat([prefix.expand(len(rows), -1), rest], dim=1)
            mask = torch.cat([torch.ones_like(prefix).expand(len(rows), -1), rest_mask], dim=1)
        # positions as generate computes them: padding skipped
        positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
        if ids.shape[1] - 1 > shared:
            self.model(input_ids=ids[:, shared:-1], attention_mask=mask[:, :-1], position_ids=positions[:, shared:-1],
                       past_key_values=cache, use_cache=True, logits_to_keep=1)
        if n > 1:
            cache.batch_repeat_interleave(n)
        rest_kw = {k: v for k, v in kwargs.items() if k != "num_return_sequences"}
        return self.model.generate(input_ids=ids.repeat_interleave(n, dim=0), attention_mask=mask.repeat_interleave(n, dim=0),
                                   past_key_values=cache, **rest_kw)

    def _completion(self, r: Request, j: int, ids: list[int], n_prompt: int, s: Sampling) -> Completion:
        # tokens after the first eos are padding from batch-mates still generating
        n, finish = len(ids), "length"
        for k, t in enumerate(ids):
            if t in self.eos_ids:
                n, finish = k + 1, "stop"
                break
        text = self.tok.decode(ids[:n], skip_special_tokens=True)
        for stop in s.stop:
            cut = text.find(stop)
            if cut >= 0:
                text, finish = text[: cut + len(stop)], "stop"
                break
        return Completion(r.request_id, j, text, n_prompt, n, finish)

    # -- scoring -------------------------------------------------------------

    def choice_logprobs(self, contexts, choices: list[str]) -> list[dict[str, float]]:
        """Log-probabilities of `choices` as continuations of each (messages, assistant text).

        The choices' tokens come from the whole text (`choice_continuations`).
        Where each choice adds one token, as "A" after "[[" does, one forward
        pass per context scores them all (`_next_token_logprobs`); otherwise
        each choice's tokens are scored in a pass of their own.
        """
        prompts = [self.render(messages) for messages, _ in contexts]
        split = [choice_continuations(self.encode, p + assistant, choices) for p, (_, assistant) in zip(prompts, contexts)]
        for i, (shared, conts) in enumerate(split):
            self._check_fits(f"forced choice for context {i}", len(shared) + max(map(len, conts)), 0)
        single = [i for i, (_, conts) in enumerate(split) if all(len(c) == 1 for c in conts)]
        out: list[dict[str, float] | None] = [None] * len(contexts)
        if single:
            logps = self._next_token_logprobs([prompts[i] for i in single], [split[i][0] for i in single],
                                              [[c[0] for c in split[i][1]] for i in single])
            for i, lp in zip(single, logps):
                out[i] = dict(zip(choices, lp))
        for i, (shared, conts) in enumerate(split):
            if out[i] is None:
                out[i] = {c: self._sequence_logprob(shared, cont) for c, cont in zip(choices, conts)}
        return [o for o in out if o is not None]

    def _sequence_logprob(self, context: list[int], cont: list[int]) -> float:
        """log p(cont | context), summed over the continuation's tokens (one plain forward pass)."""
        import torch

        ids = torch.tensor([context + cont], device=self.device)
        with torch.inference_mode():
            logits = self.model(input_ids=ids).logits[0, len(context) - 1 : -1].float()
        self.stats.tokens_in += ids.shape[1]
        logp = torch.log_softmax(logits, dim=-1)
        return float(logp[torch.arange(len(cont)), torch.tensor(cont)].sum())

    def _next_token_logprobs(self, prompts: list[str], full: list[list[int]], ids: list[list[int]]) -> list[list[float]]:
        """For each token sequence `full[i]`, the log-probabilities of the tokens `ids[i]` coming next.

        Sequences that share a prompt (the n samples of a judge request) share
        its prefill: per batch, each distinct prompt goes through the model
        once, its KV cache is copied to the sequences that use it, and only the
        assistant text is computed per sequence. The prompt's tokens are
        shared only where they are a prefix of the sequence, so the result is
        the plain forward pass's, with about a quarter of the prompt work at n=4.
        """
        import torch
        from transformers import DynamicCache

        prompt_ids: dict[str, list[int]] = {}
        keys = []
        for p, f in zip(prompts, full):
            if p not in prompt_ids:
                prompt_ids[p] = self.encode(p)
            k = common_prefix(prompt_ids[p], f)
            keys.append(tuple(f[: max(1, min(k, len(f) - 1))]))  # at least one token after the shared part
        key_no = {k: n for n, k in enumerate(dict.fromkeys(keys))}
        # sequences of one prompt together, similar lengths together
        order = sorted(range(len(full)), key=lambda i: (len(keys[i]), key_no[keys[i]], len(full[i])))
        out: list[list[float] | None] = [None] * len(full)
        bs = max(1, self.cfg.batch_size)
        pad = self.tok.pad_token_id
        for start in tqdm(range(0, len(order), bs), desc="forced choice", unit="batch", mininterval=2.0):
            idx = order[start : start + bs]
            uniq = list(dict.fromkeys(keys[i] for i in idx))
            pre, pre_mask = _left_pad([list(k) for k in uniq], pad, self.device)
            sel = torch.tensor([uniq.index(keys[i]) for i in idx], device=self.device)
            suf, suf_mask = _left_pad([full[i][len(keys[i]) :] for i in idx], pad, self.device)
            with torch.inference_mode():
                cache = DynamicCache(config=self.model.config)
                self.model(input_ids=pre, attention_mask=pre_mask, position_ids=(pre_mask.cumsum(-1) - 1).clamp(min=0),
                           past_key_values=cache, use_cache=True, logits_to_keep=1)
                cache.batch_select_indices(sel)
                mask = torch.cat([pre_mask[sel], suf_mask], dim=1)  # [left pad][prompt][left pad][assistant]
                positions = pre_mask[sel].sum(-1, keepdim=True) + (suf_mask.cumsum(-1) - 1).clamp(min=0)
                # logits_to_keep=1: only the last position goes through the 49k-wide LM head
                logits = self.model(input_ids=suf, attention_mask=mask, position_ids=positions, past_key_values=cache,
                                    use_cache=True, logits_to_keep=1).logits[:, -1, :].float()
            logp = torch.log_softmax(logits, dim=-1)
            for row, i in enumerate(idx):
                out[i] = logp[row, ids[i]].tolist()
            self.stats.tokens_in += int(pre_mask.sum()) + int(suf_mask.sum())
        return [o for o in out if o is not None]


SHARED_PREFIX_MIN = 32  # tokens; below this a separate prefix pass is not worth its overhead


def _common_prefix_all(rows: list[list[int]]) -> int:
    n = min(len(r) for r in rows)
    for r in rows[1:]:
        n = common_prefix(rows[0][:n], r)
    return n


def _left_pad(rows: list[list[int]], pad: int, device: Any) -> tuple[Any, Any]:
    import torch

    width = max(len(r) for r in rows)
    ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], device=device)
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=device)
    return ids, mask


def _without_seed(s: Sampling) -> Sampling:
    return Sampling(s.temperature, s.top_p, s.max_tokens, s.n, 0, s.stop)

