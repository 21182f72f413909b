"""params.yaml -> typed Params: unknown keys, impossible values and broken
iteration graphs fail with ConfigError naming the dotted key."""

import copy
import re
from pathlib import Path

import pytest
import yaml

from judgeloop.config import (
    ConfigError,
    IterationConfig,
    JudgingConfig,
    Params,
    load_params,
    parse_params,
)

PARAMS_YAML = Path(__file__).resolve().parents[1] / "params.yaml"


@pytest.fixture(scope="module")
def shipped() -> dict:
    return yaml.safe_load(PARAMS_YAML.read_text(encoding="utf-8"))


@pytest.fixture
def data(shipped) -> dict:
    """A fresh, mutable copy of the shipped params."""
    return copy.deepcopy(shipped)


def config_error(data) -> str:
    with pytest.raises(ConfigError) as ei:
        parse_params(data)
    return str(ei.value)


def allowed_keys(msg: str) -> list[str]:
    m = re.search(r"allowed keys here: \[([^\]]*)\]", msg)
    assert m, f"no list of allowed keys in: {msg}"
    return sorted(k.strip().strip("'") for k in m.group(1).split(","))


# --- the shipped file -------------------------------------------------------


def test_shipped_params_yaml_loads():
    p = load_params(PARAMS_YAML)
    assert isinstance(p, Params)
    assert p.method == "pairwise"
    assert p.iterations["it1"].prev == "it0"
    assert p.iterations["it2"].prev == "it1"
    assert list(p.prompts.split.iteration_fractions) == ["it1", "it2"]
    assert p.eval_models() == ["it0", "it1", "it2"]
    assert p.judging.samples == 3 and p.iterations["it2"].pairs_from == "it1"
    assert p.judging.verdict_fallback == "forced"
    assert [s.kind for s in p.prompts.sources] == ["builtin"]
    # with no overrides the per-iteration views equal the global blocks; it2 judges with a longer budget
    assert p.judging_for("it1") == p.judging
    assert p.judging_for("it2") == p.judging.model_copy(update={"max_tokens": 80})
    assert p.curation_for("it2") == p.curation
    assert p.training_for("it2") == p.training


def test_params_are_frozen(data):
    p = parse_params(data)
    with pytest.raises(Exception):
        p.judging.samples = 99  # type: ignore[misc]


def test_eval_models_default_is_it0_and_every_iteration(data):
    del data["evaluation"]["models"]
    assert parse_params(data).eval_models() == ["it0", "it1", "it2"]


# --- unknown keys -------------------------------------------------------------


def test_unknown_top_level_key(data):
    data["judgng"] = {"samples": 3}
    msg = config_error(data)
    assert "judgng: unknown key" in msg
    assert allowed_keys(msg) == sorted(Params.model_fields)


def test_unknown_nested_key(data):
    data["judging"]["sampels"] = 6
    msg = config_error(data)
    assert "judging.sampels: unknown key" in msg
    keys = allowed_keys(msg)
    assert keys == sorted(JudgingConfig.model_fields)
    assert "samples" in keys and "verdict_fallback" in keys


def test_unknown_key_in_list_item(data):
    data["prompts"]["sources"][0]["bad"] = 1
    msg = config_error(data)
    assert "prompts.sources.0.bad: unknown key" in msg
    keys = allowed_keys(msg)
    assert {"kind", "path", "instruction_column", "id_column", "category_column"} <= set(keys)


def test_unknown_key_in_iteration(data):
    data["iterations"]["it1"]["perv"] = "it0"
    msg = config_error(data)
    assert "iterations.it1.perv: unknown key" in msg
    keys = allowed_keys(msg)
    assert keys == sorted(IterationConfig.model_fields)
    assert "prev" in keys and "overrides" in keys


def test_unknown_override_block(data):
    data["iterations"]["it2"]["overrides"] = {"judge": {"samples": 6}}
    msg = config_error(data)
    assert "iterations.it2.overrides.judge: unknown key" in msg
    assert allowed_keys(msg) == ["curation", "judging", "training"]


def test_unknown_key_inside_override_is_rejected(data):
    data["iterations"]["it2"]["overrides"] = {"judging": {"sampels": 6}}
    msg = config_error(data)
    assert "iterations.it2.overrides.judging.sampels" in msg
    assert "unknown key" in msg


def test_unknown_key_inside_override_lists_allowed_keys(data):
    data["iterations"]["it2"]["overrides"] = {"judging": {"sampels": 6}}
    msg = config_error(data)
    assert "samples" in allowed_keys(msg)


# --- impossible values --------------------------------------------------------


@pytest.mark.parametrize(
    "block, key, value",
    [
        ("judging", "samples", 0),
        ("judging", "temperature", -1),
        ("judging", "top_p", 0),
        ("judging", "top_p", 1.5),
        ("judging", "verdict_fallback", "maybe"),
        ("pairs", "temperature", -0.5),
        ("pairs", "max_tokens", 0),
        ("curation", "per", "prompt"),
        ("curation", "min_correct_fraction", 1.5),
        ("generation", "backend", "vllm-typo"),
        ("training", "learning_rate", 0),
        ("evaluation", "verdict_fallback", "maybe"),
    ],
)
def test_invalid_value_names_the_key(data, block, key, value):
    data[block][key] = value
    msg = config_error(data)
    assert f"{block}.{key}:" in msg
    assert repr(value) in msg  # the offending value is shown


def test_invalid_literal_lists_choices(data):
    data["judging"]["verdict_fallback"] = "maybe"
    msg = config_error(data)
    assert "'none'" in msg and "'forced'" in msg


def test_wrong_type_names_the_key(data):
    data["judging"]["samples"] = "many"
    assert "judging.samples:" in config_error(data)


def test_several_errors_are_all_reported(data):
    data["judging"]["samples"] = 0
    data["pairs"]["top_p"] = 0
    msg = config_error(data)
    assert "judging.samples:" in msg and "pairs.top_p:" in msg


def test_source_without_path_fails(data):
    data["prompts"]["sources"] = [{"kind": "jsonl"}]
    msg = config_error(data)
    assert "prompts.sources.0" in msg
    assert "needs `path`" in msg


def test_top_level_must_be_a_mapping():
    with pytest.raises(ConfigError, match="mapping"):
        parse_params([1, 2, 3])


def test_source_label_prefixes_message(data):
    data["judging"]["samples"] = 0
    with pytest.raises(ConfigError, match=r"^my/params\.yaml: "):
        parse_params(data, source="my/params.yaml")


# --- iterations -----------------------------------------------------------------


def test_iterations_are_required(data):
    del data["iterations"]
    assert "iterations" in config_error(data)


def test_empty_iterations_fail(data):
    data["iterations"] = {}
    data["prompts"]["split"]["iteration_fractions"] = {}
    data["evaluation"]["models"] = ["it0"]
    msg = config_error(data)
    assert "iterations" in msg and "at least one iteration" in msg


def test_prev_that_does_not_exist(data):
    data["iterations"]["it2"]["prev"] = "it9"
    msg = config_error(data)
    assert "iterations.it2.prev = 'it9' does not exist" in msg
    assert "'it0'" in msg and "'it1'" in msg  # the allowed names


def test_prev_cycle(data):
    data["iterations"]["it1"]["prev"] = "it2"  # it1 -> it2 -> it1
    msg = config_error(data)
    assert "cycle" in msg
    assert "iterations.it1" in msg


def test_prev_self_loop(data):
    data["iterations"]["it2"]["prev"] = "it2"
    assert "cycle" in config_error(data)


def test_iteration_named_it0(data):
    data["iterations"] = {"it0": {"prev": "it0"}}
    data["prompts"]["split"]["iteration_fractions"] = {"it0": 0.1}
    data["evaluation"]["models"] = ["it0"]
    msg = config_error(data)
    assert "it0" in msg and "reserved for the seed model" in msg


def _only_iteration(data: dict, name: str) -> dict:
    data["iterations"] = {name: {"prev": "it0"}}
    data["prompts"]["split"]["iteration_fractions"] = {name: 0.1}
    data["evaluation"].pop("models", None)
    return data


@pytest.mark.parametrize("name", ["../x", "../../../somewhere", "a/b", "", " it1", "it1/", "x.y", "1st", "é", "a" * 65])
def test_iteration_names_are_identifiers(data, name):
    """An iteration name becomes data/NAME, models/NAME, ...: never a path."""
    msg = config_error(_only_iteration(data, name))
    assert "is not a valid name" in msg and repr(name) in msg


@pytest.mark.parametrize("name", ["eval", "EVAL", "unused", "excluded", "evalsets", "plots", "summary", "synthetic"])
def test_split_and_folder_names_are_reserved(data, name):
    """An iteration named `eval` would merge its prompts into the held-out split and train on the test set."""
    msg = config_error(_only_iteration(data, name))
    assert "is reserved for" in msg and repr(name) in msg


def test_missing_prev(data):
    del data["iterations"]["it1"]["prev"]
    msg = config_error(data)
    assert "iterations.it1.prev" in msg
    assert "required" in msg.lower()


def test_iteration_without_a_fraction(data):
    data["iterations"]["it3"] = {"prev": "it2"}
    msg = config_error(data)
    assert "prompts.split.iteration_fractions" in msg
    assert "'it3'" in msg


def test_fraction_for_an_unknown_iteration(data):
    data["prompts"]["split"]["iteration_fractions"]["it7"] = 0.1
    msg = config_error(data)
    assert "prompts.split.iteration_fractions" in msg
    assert "'it7'" in msg


@pytest.mark.parametrize("frac", [0, -0.1, 1.5])
def test_iteration_fraction_out_of_range(data, frac):
    data["prompts"]["split"]["iteration_fractions"]["it1"] = frac
    msg = config_error(data)
    assert "prompts.split.iteration_fractions" in msg
    assert "it1" in msg and str(frac) in msg


@pytest.mark.parametrize("frac", [-0.1, 1.0])
def test_eval_fraction_out_of_range(data, frac):
    data["prompts"]["split"]["eval_fraction"] = frac
    assert "prompts.split.eval_fraction:" in config_error(data)


def test_fractions_summing_over_one(data):
    data["prompts"]["split"]["eval_fraction"] = 0.2
    data["prompts"]["split"]["iteration_fractions"] = {"it1": 0.5, "it2": 0.4}
    msg = config_error(data)
    assert "eval_fraction" in msg and "iteration_fractions" in msg
    assert "1.100" in msg


def test_fractions_summing_to_exactly_one_are_fine(data):
    data["prompts"]["split"]["eval_fraction"] = 0.1
    data["prompts"]["split"]["iteration_fractions"] = {"it1": 0.7, "it2": 0.2}  # 1 up to float rounding
    p = parse_params(data)
    assert p.prompts.split.iteration_fractions == {"it1": 0.7, "it2": 0.2}


def test_overrides_do_not_touch_the_split(data):
    """Per-iteration settings live under iterations.*; the split lives under prompts.split."""
    a = parse_params(copy.deepcopy(data))
    data["iterations"]["it2"]["overrides"] = {"judging": {"samples": 6}}
    b = parse_params(data)
    assert a.prompts == b.prompts


def test_evaluation_models_unknown_iteration(data):
    data["evaluation"]["models"] = ["it0", "it3"]
    msg = config_error(data)
    assert "evaluation.models" in msg and "'it3'" in msg
    assert "it1" in msg and "it2" in msg  # what is allowed


def test_benchmark_eval_sets(data):
    """RewardBench 2, JudgeBench and RM-Bench sets are accepted; they are scored on one greedy judgment."""
    data["evaluation"]["sets"] = [{"name": "rb2", "format": "rewardbench2", "path": "rb2.parquet", "best_of_n": "knockout"},
                                  {"name": "jb", "format": "judgebench", "path": "jb.jsonl"},
                                  {"name": "rmb", "format": "rmbench", "path": "total_dataset.json", "limit": 10}]
    sets = parse_params(data).evaluation.sets
    assert [s.best_of_n for s in sets] == ["knockout", "all_at_once", "all_at_once"] and sets[0].split is None
    data["evaluation"]["samples"] = 5
    assert "evaluation.samples > 1 is not defined for the benchmark sets ['rb2', 'jb', 'rmb']" in config_error(data)
    data["evaluation"]["samples"] = 1
    data["evaluation"]["sets"][0]["best_of_n"] = "tournament"
    assert "evaluation.sets.0.best_of_n" in config_error(data)


def test_duplicate_eval_set_names(data):
    s = {"name": "x", "format": "llmbar", "path": "a.json"}
    data["evaluation"]["sets"] = [s, dict(s, path="b.json")]
    assert "evaluation.sets names must be unique" in config_error(data)
    data["evaluation"]["sets"] = [dict(s, name="synthetic")]
    assert "not 'synthetic'" in config_error(data)
    data["evaluation"]["sets"] = [dict(s, name="../x")]
    assert "evaluation.sets.0.name" in config_error(data)


# --- per-iteration overrides -------------------------------------------------------


def test_override_applies_only_to_its_iteration(data):
    data["iterations"]["it2"]["overrides"] = {"judging": {"samples": 6}}
    p = parse_params(data)
    assert p.judging_for("it2").samples == 6
    assert p.judging_for("it1").samples == p.judging.samples == 3
    # other judging keys keep the global values
    assert p.judging_for("it2").temperature == p.judging.temperature
    assert p.judging_for("it2").verdict_fallback == p.judging.verdict_fallback


def test_curation_and_training_overrides(data):
    data["iterations"]["it1"]["overrides"] = {
        "curation": {"per": "pair"},
        "training": {"init": "previous", "num_train_epochs": 2},
    }
    p = parse_params(data)
    assert p.curation_for("it1").per == "pair"
    assert p.curation_for("it2").per == "pair_order"  # the shipped default
    assert p.training_for("it1").init == "previous"
    assert p.training_for("it1").num_train_epochs == 2
    assert p.training_for("it2").init == "auto"  # the shipped default


def test_invalid_override_value_names_the_key(data):
    data["iterations"]["it2"]["overrides"] = {"judging": {"samples": 0}}
    msg = config_error(data)
    assert "iterations.it2.overrides.judging.samples" in msg


def test_invalid_override_literal_names_the_key(data):
    data["iterations"]["it1"]["overrides"] = {"curation": {"balance": "sometimes"}}
    msg = config_error(data)
    assert "iterations.it1.overrides.curation.balance" in msg
    assert "'sometimes'" in msg


def test_nested_override_keeps_other_nested_keys(data):
    data["training"]["lora"] = {"enabled": True, "r": 16}
    data["iterations"]["it2"]["overrides"] = {"training": {"lora": {"r": 8}}}
    p = parse_params(data)
    lora = p.training_for("it2").lora
    assert lora.r == 8
    assert lora.enabled is True


# --- files ----------------------------------------------------------------------------


def test_yaml_syntax_error_names_the_path(tmp_path):
    f = tmp_path / "params.yaml"
    f.write_text("judging:\n  samples: [4\n  top_p: 0.9\n", encoding="utf-8")
    with pytest.raises(ConfigError) as ei:
        load_params(f)
    assert str(f) in str(ei.value)
    assert "not valid YAML" in str(ei.value)


def test_missing_file_names_the_path(tmp_path):
    f = tmp_path / "nope" / "params.yaml"
    with pytest.raises(ConfigError) as ei:
        load_params(f)
    assert str(f) in str(ei.value)
    assert "not found" in str(ei.value)


def test_empty_file_is_a_config_error(tmp_path):
    f = tmp_path / "params.yaml"
    f.write_text("", encoding="utf-8")
    with pytest.raises(ConfigError, match="mapping"):
        load_params(f)


def test_validation_error_from_file_names_path_and_key(tmp_path, shipped):
    d = copy.deepcopy(shipped)
    d["judging"]["sampels"] = 6
    f = tmp_path / "params.yaml"
    f.write_text(yaml.safe_dump(d), encoding="utf-8")
    with pytest.raises(ConfigError) as ei:
        load_params(f)
    assert str(ei.value).startswith(f"{f}: ")
    assert "judging.sampels" in str(ei.value)


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)



def test_init_follows_the_method_unless_set():
    import yaml

    from judgeloop.config import parse_params

    base = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    assert base["training"]["init"] == "auto"
    pairwise = parse_params(base)
    assert [pairwise.init_model(it) for it in ("it1", "it2")] == ["it0", "it0"]  # Self-Taught Evaluator: from the seed
    likert = parse_params(base | {"method": "likert"})
    assert [likert.init_model(it) for it in ("it1", "it2")] == ["it0", "it1"]  # Self-Rationalization: iterative
    explicit = parse_params(base | {"method": "likert", "training": base["training"] | {"init": "seed"}})
    assert explicit.init_model("it2") == "it0"


def _numeric_leaves(d: dict, prefix: str = "") -> list[tuple[str, object]]:
    out = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out += _numeric_leaves(v, key + ".")
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out.append((key, v))
    return out


def _set(d: dict, dotted: str, value) -> dict:
    d = copy.deepcopy(d)
    *path, last = dotted.split(".")
    cur = d
    for p in path:
        cur = cur[p]
    cur[last] = value
    return d


def test_every_numeric_param_has_a_range(shipped):
    """Absurd values of every int and float param (all of Params, defaults included) are refused, naming the key:
    10**12 does not fit a C int, a negative seed is no seed, and inf / NaN are never meaningful."""
    full = parse_params(shipped).model_dump(mode="json")
    leaves = _numeric_leaves(full)
    assert len(leaves) > 40
    for key, v in leaves:
        bad = [10**12, -(10**12)] if isinstance(v, int) else [float("inf"), float("nan"), -1e300]
        for value in bad:
            with pytest.raises(ConfigError) as ei:
                parse_params(_set(full, key, value))
            assert key.split(".")[-1] in str(ei.value), (key, value, str(ei.value))


@pytest.mark.parametrize("key,value,says", [("judging.samples", 2**31, "does not fit a C int"),
                                            ("judging.seed", -1, "is not a seed"), ("pairs.seed", 2**32, "is not a seed"),
                                            ("judging.temperature", 1e9, "less than or equal to 10"),
                                            ("generation.threads", 10**6, "less than or equal to 1024")])
def test_numeric_params_fit_their_c_types(shipped, key, value, says):
    msg = config_error(_set(shipped, key, value))
    assert key in msg and says in msg, msg


def test_an_iteration_may_rejudge_the_pairs_of_an_earlier_one(data):
    data["iterations"]["it2"]["pairs_from"] = "it1"
    del data["prompts"]["split"]["iteration_fractions"]["it2"]
    p = parse_params(data)
    assert p.pairs_split("it2") == "it1" and p.pairs_split("it1") == "it1"


@pytest.mark.parametrize("value", ["it2", "it9", "eval"])
def test_pairs_from_names_another_iteration_with_pairs_of_its_own(data, value):
    data["iterations"]["it2"]["pairs_from"] = value
    msg = config_error(data)
    assert "iterations.it2.pairs_from" in msg and "allowed: ['it1']" in msg


def _leaves(tree, path=""):
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _leaves(v, f"{path}.{k}" if path else k)
    else:
        yield path, tree


def test_the_shipped_params_are_the_models_defaults(shipped):
    """A key left out of params.yaml means what params.yaml says: the typed defaults and the file agree.
    Only what names the iterations has no default (the iterations, their fractions, the judges to evaluate)."""
    named = {"iterations": shipped["iterations"], "evaluation": {"models": shipped["evaluation"]["models"]},
             "prompts": {"split": {"iteration_fractions": shipped["prompts"]["split"]["iteration_fractions"]}},
             "likert": {"split": {"iteration_fractions": shipped["likert"]["split"]["iteration_fractions"]}}}
    defaults = dict(_leaves(parse_params(named).model_dump()))
    differ = {k: (v, defaults.get(k)) for k, v in _leaves(parse_params(shipped).model_dump()) if defaults.get(k) != v}
    assert differ == {}, "params.yaml value vs config.py default"


def test_likert_iterations_may_rejudge_an_earlier_iterations_items(shipped):
    """pairs_from works for both methods: with likert, it2 grades it1's rubric items again with it1's judge."""
    p = parse_params(shipped | {"method": "likert"})
    assert p.iterations["it2"].pairs_from == "it1" and p.pairs_split("it2") == "it1" and p.pairs_split("it1") == "it1"
    data = copy.deepcopy(shipped) | {"method": "likert"}
    del data["likert"]["split"]["iteration_fractions"]["it2"]  # an iteration that re-judges needs no items of its own
    assert parse_params(data).likert.split.iteration_fractions == {"it1": 0.25}


# --- training: TRL's fields pass through under TRL's names ------------------


def test_trl_fields_pass_through_to_the_config_the_algo_builds(data):
    data["training"] |= {"weight_decay": 0.1, "optim": "adamw_torch", "max_grad_norm": 0.5}
    data["iterations"]["it2"]["overrides"] = {"training": {"weight_decay": 0.0}}
    p = parse_params(data)
    assert p.training.trl_args("SFTConfig")["weight_decay"] == 0.1 and p.training_for("it2").weight_decay == 0.0
    assert p.training.trl_args("SFTConfig")["per_device_train_batch_size"] == p.training.per_device_train_batch_size
    assert "algo" not in p.training.trl_args("SFTConfig")  # judgeloop's own keys stay with judgeloop


def test_an_unknown_training_key_names_the_key_and_what_is_allowed(data):
    data["training"]["wieght_decay"] = 0.1
    msg = config_error(data)
    assert "training.wieght_decay: unknown key" in msg and "did you mean 'weight_decay'" in msg
    assert "SFTConfig" in msg and "'per_device_train_batch_size'" in msg and "'lora'" in msg
    data["training"] = data["training"] | {"batch_size": 4}  # judgeloop's old name: TRL's is per_device_train_batch_size
    data["training"].pop("wieght_decay")
    assert "training.batch_size: unknown key; TRL's name for it is 'per_device_train_batch_size'" in config_error(data)


def test_a_dpo_field_needs_an_algo_that_runs_dpo(data):
    data["training"]["label_smoothing"] = 0.1
    assert "training.label_smoothing: unknown key" in config_error(data)  # algo: sft builds no DPOConfig
    data["training"]["algo"] = "sft_then_dpo"
    p = parse_params(data)
    assert p.training.trl_args("DPOConfig")["label_smoothing"] == 0.1 and "label_smoothing" not in p.training.trl_args("SFTConfig")


@pytest.mark.parametrize(("key", "instead"), [("bf16", "training.precision"), ("beta", "training.dpo.beta"),
                                              ("output_dir", "models/<iteration>")])
def test_trl_fields_judgeloop_sets_are_refused_naming_the_key_to_use(data, key, instead):
    data["training"][key] = True if key == "bf16" else 0.2 if key == "beta" else "out"
    msg = config_error(data)
    assert f"training.{key}: set by judgeloop" in msg and instead in msg
