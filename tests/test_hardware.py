"""What the machine is, recorded where a run's numbers could depend on it."""

from __future__ import annotations

import json

from judgeloop.hardware import cpu_has_bf16, cpu_info, environment


def test_environment_names_the_cpu_and_the_libraries():
    env = environment()
    assert env["cpu"] == cpu_info() and env["cpu"]["model"]
    assert {"torch", "transformers", "trl"} <= set(env["versions"])
    assert isinstance(cpu_has_bf16(), bool)
    assert cpu_has_bf16() == bool({"avx512_bf16", "amx_bf16"} & set(cpu_info()["flags"]))


def test_every_saved_model_records_the_machine_it_was_made_on(tiny_model, tmp_path):
    """Same-machine runs are byte-identical; another CPU may round differently, and the manifest says which CPU."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from judgeloop.seed import MANIFEST, save_model

    model, tok = AutoModelForCausalLM.from_pretrained(tiny_model), AutoTokenizer.from_pretrained(tiny_model)
    save_model(model, tok, tmp_path / "m", {"name": "x"})
    manifest = json.loads((tmp_path / "m" / MANIFEST).read_text())
    assert manifest["made_on"] == json.loads(json.dumps(environment()))
