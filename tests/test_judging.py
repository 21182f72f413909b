"""Pairwise judging with a scripted engine: which texts may get a forced verdict."""

from judgeloop.backends import Completion, Sampling
from judgeloop.judging import PairwiseItem, judge_items


class ScriptedBackend:
    """Canned completions, one per sample, and a next-token distribution that always prefers A."""

    model_name, model_hash = "scripted", "0"

    def __init__(self, texts: list[str]):
        self.texts, self.forced_contexts = texts, []

    def generate(self, requests, desc=""):
        return [[Completion(r.request_id, i, self.texts[i], 5, 3, "stop") for i in range(r.sampling.n)] for r in requests]

    def choice_logprobs(self, contexts, choices):
        self.forced_contexts += contexts
        return [{"A": -0.1, "B": -2.3} for _ in contexts]


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
