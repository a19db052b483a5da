"""The feedback f_i the meta-agent sees: the PRIVATE-split score and case studies of FAILED PUBLIC samples.

Nothing from the test split ever reaches this module's inputs, and private samples are never shown: the
private split only contributes its mean score, so the meta-agent cannot overfit to what scores it.
"""

from __future__ import annotations

from w4s.benchmarks.base import Sample
from w4s.evaluation import Evaluation

_MAX_TEXT = 1500


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT] + " …[truncated]"


def build_feedback(private: Evaluation, public: Evaluation, public_samples: tuple[Sample, ...], max_cases: int,
                   previous: float | None = None, best: float | None = None) -> str:
    lines = [f"Validation score: {private.score:.4f} (on {len(private.results)} private validation tasks)."]
    if previous is not None and best is not None:
        trend = ("higher than" if private.score > previous else
                 "lower than" if private.score < previous else "equal to")
        lines.append(f"That is {trend} the previous workflow's {previous:.4f}; the best so far is {best:.4f}.")
    by_id = {s.id: s for s in public_samples}
    failed = [r for r in public.results if r.score < 1.0]
    if not public.results:
        return "\n".join(lines)
    if not failed:
        lines.append(f"All {len(public.results)} public validation tasks were answered correctly.")
        return "\n".join(lines)
    shown = failed[:max_cases]
    lines.append(f"\nCase studies: {len(shown)} of the {len(failed)} failed public validation tasks "
                 f"(out of {len(public.results)}).")
    for n, r in enumerate(shown, 1):
        sample = by_id[r.sample_id]
        got = f"(error) {r.error}" if r.error else repr(r.answer)
        why = f"\nWhy it scored {r.score:.2f}: {_clip(r.score_reason)}" if r.score_reason and not r.error else ""
        lines.append(f"\n## Case {n}\nTask: {_clip(sample.question)}\nWorkflow answer: {_clip(got)}{why}\n"
                     f"Correct answer: {_clip(sample.answer)}")
    return "\n".join(lines)
