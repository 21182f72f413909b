"""The few numbers DVC compares: short, unique column names, nested under the judge or iteration."""

from judgeloop.metrics import LIKERT_EVAL, PAIRWISE_EVAL, eval_metrics, iteration_metrics

SUMMARY = {"accuracy": 0.61234, "parse_rate": 0.9, "a_rate": 0.45, "position_consistency": 0.4, "n_examples": 20,
           "n_judgments": 40, "accuracy_by_order": {"wl": 0.7, "lw": 0.5}, "scoring_rule": "..."}


def test_eval_metrics_put_the_synthetic_set_first_and_nest_the_others():
    got = eval_metrics("it1", {"synthetic": SUMMARY, "llmbar-natural": SUMMARY | {"n_examples": 100}}, PAIRWISE_EVAL, "synthetic")
    row = {"acc": 0.6123, "parse": 0.9, "a_share": 0.45, "consist": 0.4, "n": 20}
    assert got == {"it1": row | {"llmbar-natural": row | {"n": 100}}}


def test_likert_eval_metrics_use_agreement_with_gold():
    got = eval_metrics("it0", {"rubrics": {"spearman": 0.5, "exact": 0.25, "within_1": 0.75, "parse_rate": 0.0, "n": 8,
                                           "pearson": 0.4}}, LIKERT_EVAL, "rubrics")
    assert got == {"it0": {"spearman": 0.5, "exact": 0.25, "within_1": 0.75, "parse": 0.0, "n": 8}}


def test_iteration_metrics():
    funnel = {"judgments": 64, "kept": 9, "keep_rate_pairs": 0.5625, "groups": 16}
    assert iteration_metrics("it2", funnel, {"train_loss": 1.234567, "examples_per_s": 0.2, "steps": 3}) == \
        {"it2": {"judged": 64, "kept": 9, "keep_rate": 0.5625, "loss": 1.2346, "ex_per_s": 0.2}}


def test_dpo_funnel_keep_rate_is_pairs_per_pair_order_judged():
    dpo_funnel = {"judgments": 60, "groups": 10, "combinations": 5, "kept": 5}
    assert iteration_metrics("it1", dpo_funnel, {})["it1"] | {"loss": None} == \
        {"judged": 60, "kept": 5, "keep_rate": 0.5, "loss": None, "ex_per_s": None}
