"""One AdamW step over all-MiniLM-L6-v2's parameters: foreach (adamw_torch) vs fused (#17).

    python bench/optimizer_step.py               # 1 and all torch threads, ~1 min

Why: at the demo's batch of 4 a forward and backward pass takes ~0.45 s on 2 cores, so an
optimizer step of 0.1-0.2 s was a large part of each step; TrainConfig's optim=auto now picks
the fused kernel on CPUs too. Both kernels are timed in the same run, alternating.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from quality import minilm_path  # noqa: E402  (bench/quality.py)

KERNELS = {"foreach (adamw_torch)": {"foreach": True}, "fused (adamw_torch_fused)": {"fused": True}}


def step_seconds(params, kwargs: dict, steps: int) -> float:
    import torch

    optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01, **kwargs)
    optimizer.step()  # state allocated outside the timing
    started = time.perf_counter()
    for _ in range(steps):
        optimizer.step()
    return (time.perf_counter() - started) / steps


def main() -> None:
    import torch
    import transformers
    from transformers import AutoModelForQuestionAnswering

    transformers.logging.set_verbosity_error()
    model = AutoModelForQuestionAnswering.from_pretrained(minilm_path())
    params = list(model.parameters())
    for p in params:
        p.grad = torch.randn_like(p)
    print(f"MiniLM QA model: {sum(p.numel() for p in params):,} parameters, torch {torch.__version__}")
    for threads in sorted({1, os.cpu_count() or 1}):
        torch.set_num_threads(threads)
        times = {name: [] for name in KERNELS}
        for _ in range(3):  # alternate, so drift in the machine's speed hits both
            for name, kwargs in KERNELS.items():
                times[name].append(step_seconds(params, kwargs, steps=10))
        best = {name: min(t) for name, t in times.items()}
        foreach, fused = best.values()
        cells = ", ".join(f"{name} {s * 1000:.1f} ms" for name, s in best.items())
        print(f"  {threads} thread(s): {cells}; fused is {foreach / fused:.1f}x faster")


if __name__ == "__main__":
    main()
