"""The evaluate step's Markdown report: metrics, then right and wrong answers in context."""

from __future__ import annotations

import random
from typing import Any

from components.qa.metrics import normalize_answer


def _snippet(context: str, start: int | None, end: int | None, width: int = 160) -> str:
    if start is None or end is None:
        return context[:2 * width].replace("\n", " ") + ("…" if len(context) > 2 * width else "")
    lo, hi = max(0, start - width), min(len(context), end + width)
    text = f"{context[lo:start]}**{context[start:end]}**{context[end:hi]}"
    return ("…" if lo else "") + text.replace("\n", " ").replace("|", "\\|") + ("…" if hi < len(context) else "")


def evaluation_report(metrics: dict[str, Any], examples, predictions: dict[str, dict],
                      samples: int = 5, seed: int = 0) -> str:
    """Markdown for the KFP UI; a seeded sample so reruns show the same rows."""
    lines = ["# Evaluation", "", "| metric | value |", "|---|---|"]
    lines += [f"| {name} | {value:.4g} |" if isinstance(value, float) else f"| {name} | {value} |"
              for name, value in metrics.items()]
    if "null_score_diff_threshold" in metrics:  # SQuAD v2.0
        threshold = metrics["null_score_diff_threshold"]
        lines += ["", f"SQuAD v2.0: `exact` and `f1` (the figures the register step gates on) "
                  f"answer \"no answer\" where null_score_diff > {threshold:.4g} "
                  f"(`null_score_diff_threshold`)."]
        if "best_f1" in metrics:
            lines[-1] += (f" Over all thresholds the best F1 is {metrics['best_f1']:.4g} at "
                          f"{metrics['best_f1_thresh']:.4g}: pass `null_score_diff_threshold="
                          f"{metrics['best_f1_thresh']:.4g}` to use it (chosen on this "
                          "validation set, so an optimistic figure for it).")
    right, wrong = [], []
    for row in examples:
        answer = predictions.get(row["id"])
        if answer is None:
            continue
        golds = row["answers"]["text"] or [""]
        ok = normalize_answer(answer["text"]) in {normalize_answer(g) for g in golds}
        (right if ok else wrong).append((row, answer, golds))
    rng = random.Random(seed)
    for title, rows in (("Right answers", right), ("Wrong answers", wrong)):
        lines += ["", f"## {title} ({len(rows)} in all, {min(samples, len(rows))} shown)", "",
                  "| question | predicted | gold | context |", "|---|---|---|---|"]
        for row, answer, golds in rng.sample(rows, min(samples, len(rows))):
            cells = [row["question"], answer["text"] or "(no answer)", " / ".join(golds),
                     _snippet(row["context"], answer.get("start"), answer.get("end"))]
            lines.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells[:3])
                         + f" | {cells[3]} |")
    return "\n".join(lines) + "\n"
