"""Pairwise judging with a scripted engine: which texts may get a forced verdict."""

from fakes import ScriptedBackend

from judgeloop.backends import Sampling
from judgeloop.judging import PairwiseItem, judge_items


def test_forced_verdicts_only_for_texts_with_no_verdict():
    texts = ["B is right. [[B]]", "Maybe [[A]]... no, [[B]].", "I cannot decide.", "output [[A]] if"]
    backend = ScriptedBackend(texts)
    rows = judge_items([PairwiseItem("x", "q", "good", "bad")], backend, Sampling(0.0, 1.0, 8, 4, 0), "forced", "t",
                       orders={"x": ["wl"]})
    by_text = {r.text: r for r in rows}
    assert (by_text[texts[0]].verdict, by_text[texts[0]].verdict_source) == ("B", "parsed")
    both = by_text[texts[1]]
    assert (both.verdict, both.parse_status, both.verdict_source, both.correct) == (None, "both", None, None)
    for t in texts[2:]:  # no verdict of its own (an echo of the format is none): forced, greedy -> A
        assert (by_text[t].verdict, by_text[t].verdict_source, by_text[t].parse_status) == ("A", "forced", "none")
    assert len(backend.forced_contexts) == 2


class PriorBackend(ScriptedBackend):
    """P(A) = 0.8 on the content-free prompts, 0.7 on real ones: below its prior, so calibrated it is a B."""

    def choice_logprobs(self, contexts, choices):
        import math

        out = []
        for messages, _ in contexts:
            p = 0.8 if "[User instruction]\nN/A\n" in messages[0]["content"] or "[Response A]\n[MASK]" in messages[0]["content"] \
                or "[User instruction]\n\n" in messages[0]["content"] else 0.7
            out.append({"A": math.log(p), "B": math.log(1 - p)})
        return out


def test_calibrated_forced_verdicts_divide_by_the_content_free_prior():
    items = [PairwiseItem(f"x{i}", "q", "good", "bad") for i in range(3)]
    greedy = Sampling(0.0, 1.0, 8, 1, 0)
    plain = judge_items(items, PriorBackend(["no verdict"]), greedy, "forced", "t")
    assert {r.verdict for r in plain} == {"A"} and {r.prior_a for r in plain} == {None}
    cal = judge_items(items, PriorBackend(["no verdict"]), greedy, "forced", "t", calibration="content_free")
    assert {r.verdict for r in cal} == {"B"}
    assert all(abs(r.prior_a - 0.8) < 1e-9 and abs(r.p_a - 0.7) < 1e-9 for r in cal)  # the judge's own P(A) is kept
    assert [r.correct for r in cal] == [r.order == "lw" for r in cal]


def test_batch_calibration_divides_by_the_mean_forced_p_a():
    """Every pair in both orders: an unbiased judge's mean P(A) is 0.5; this one's is 0.7, so each of its
    P(A) = 0.7 verdicts sits exactly at its prior (a tie: the first choice, A, when greedy)."""
    items = [PairwiseItem(f"x{i}", "q", "good", "bad") for i in range(3)]
    rows = judge_items(items, PriorBackend(["no verdict"]), Sampling(0.0, 1.0, 8, 1, 0), "forced", "t", calibration="batch")
    assert all(abs(r.prior_a - 0.7) < 1e-9 for r in rows)
    many = [PairwiseItem(f"y{i}", "q", "good", "bad") for i in range(100)]
    sampled = judge_items(many, PriorBackend(["no verdict"]), Sampling(1.0, 1.0, 8, 1, 0), "forced", "t",
                          calibration="batch")
    share_a = sum(r.verdict == "A" for r in sampled) / len(sampled)
    assert 0.35 < share_a < 0.65  # uncalibrated, P(A) = 0.7 would give ~0.7
