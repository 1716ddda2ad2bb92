"""The sequential design loop: sample the posterior, score every unmeasured candidate, add the best, repeat.

One loop serves both modes: an *adaptive* design has one image (its own measurements decide), a *population*
design many (the mean information gain over their posteriors decides, every image measured with the shared
pattern). Each round draws posterior samples of every image given its measured candidates (the configured
reconstructor, a generator seeded from (seed, image key, round)), scores the candidates
(:func:`genrecon.design.score.select`) and adds ``batch`` of them (fewer in the last round, so the budget is
met exactly). The state (candidates in order, each choice's gain, seconds) is saved after every round through
``save``, so an interrupted design resumes at the next round and ends with the same result as an
uninterrupted one.

Example (a toy "sampler" whose samples differ only in column 3, so column 3 is chosen):
    >>> import torch
    >>> from genrecon.design.problem import MRIColumns
    >>> class Toy:
    ...     info = {}
    ...     def __call__(self, y, op, generator=None):
    ...         s = torch.zeros(4, 1, 8, 8, dtype=torch.complex64)
    ...         s[:, 0, :, 3] = torch.arange(4.0)[:, None]       # image-space column 3 differs
    ...         self.info = {"samples": s.abs()}
    ...         return s[:1]
    >>> p = MRIColumns((8, 8), sigma=0.1)
    >>> item = Item("toy", p.full(torch.zeros(1, 1, 8, 8), torch.Generator().manual_seed(0)))
    >>> state = new_state([4], budget=5)
    >>> run_rounds(p, [item], Toy(), state, seed=0, batch=1)["chosen"][-1] in range(8)
    True
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import torch

from ..errors import DataError
from ..seeding import derive_seed
from .score import select, spread, whiten


@dataclass
class Item:
    """One image of the design: its key (seeds, file names) and the full noisy measurement of every candidate."""

    key: str
    full: torch.Tensor


def new_state(start: list[int], budget: int) -> dict:
    """The state before the first round: the start measurement, the budget, no rounds yet."""
    if len(set(start)) != len(start):
        raise ValueError(f"the start measurement repeats a candidate: {start}")
    if len(start) > budget:
        raise DataError(f"the start measurement ({len(start)} candidates) exceeds the budget ({budget})")
    return {"start": list(start), "budget": int(budget), "chosen": list(start), "rounds": [], "done": len(start) == budget}


def draw_samples(problem, item: Item, sampler, chosen: list[int], generator: torch.Generator):
    """Posterior samples ``(N, 1, H, W)`` (CPU) and the std map ``(H, W)`` of ``item`` given ``chosen``."""
    y, op = problem.measure(item.full, chosen)
    sampler(y, op, generator=generator)
    info = getattr(sampler, "info", {}) or {}
    samples = info.get("samples")
    if not isinstance(samples, torch.Tensor) or samples.dim() != 4 or samples.shape[0] < 2:
        raise DataError(f"design of {item.key}: the sampler returned no posterior samples (info['samples']); use a "
                        "reconstructor that draws them (dps or latent_inversion with samples >= 2)")
    samples = samples.detach().cpu()
    magnitude = samples.abs() if samples.is_complex() else samples
    if not bool(torch.isfinite(magnitude).all()):
        raise DataError(f"design of {item.key}: the posterior samples hold NaN or Inf")
    std = magnitude.std(dim=0)[0]
    return samples, std


def run_rounds(problem, items: list[Item], sampler, state: dict, *, seed: int, batch: int,
               score: str = "marginal", diversity: str = "condition", min_gap: int = 0,
               save: Callable[[dict], None] | None = None,
               on_round: Callable[[int, list[torch.Tensor]], None] | None = None,
               progress: Callable[..., None] | None = None) -> dict:
    """Run the remaining rounds of ``state`` (modified in place and returned).

    Args:
        problem: :class:`~genrecon.design.problem.MRIColumns` or :class:`~genrecon.design.problem.CTViews`.
        items: the images (one: adaptive; many: population).
        sampler: a reconstructor whose ``info["samples"]`` holds posterior samples after a call.
        state: from :func:`new_state`, or a saved state to resume.
        seed: the design's seed; round ``r`` of image ``key`` samples with ``derive_seed(seed, key, "round", r)``.
        batch: candidates added per round.
        score, diversity, min_gap: see :func:`genrecon.design.score.select`.
        save: called with the state after every round (write it atomically).
        on_round: called with the round index and the std map of each image (for the stage figures).
        progress: ``progress(event, **kw)``: ``round_start``, ``round_done``.
    """
    progress = progress or (lambda event, **kw: None)
    budget = state["budget"]
    # fixed by the problem: computed once, not every round (nor when nothing is left to choose)
    distance = problem.distance() if min_gap > 0 and len(state["chosen"]) < budget else None
    while len(state["chosen"]) < budget:
        r = len(state["rounds"])
        progress("round_start", round=r, measured=len(state["chosen"]), budget=budget)
        t0 = time.perf_counter()
        zs, xs, stds = [], [], []
        for item in items:
            g = torch.Generator().manual_seed(derive_seed(seed, item.key, "round", r))
            samples, std = draw_samples(problem, item, sampler, state["chosen"], g)
            zs.append(whiten(problem.values(samples), problem.sigma))
            if score == "variance":
                xs.append(spread(samples))
            stds.append(std)
        t1 = time.perf_counter()
        available = torch.ones(problem.n_candidates, dtype=torch.bool)
        available[state["chosen"]] = False
        k = min(batch, budget - len(state["chosen"]))
        picks = select(zs, available, k, score=score, diversity=diversity, xs=xs or None,
                       distance=distance, min_gap=min_gap)
        chosen = [i for i, _ in picks]
        if set(chosen) & set(state["chosen"]):  # select() never does this; a resumed, edited state might
            raise DataError(f"design round {r}: a measured candidate was chosen again ({chosen})")
        state["chosen"] += chosen
        state["rounds"].append({"round": r, "chosen": chosen, "gains": [g for _, g in picks],
                                "sampling_seconds": t1 - t0, "scoring_seconds": time.perf_counter() - t1})
        state["done"] = len(state["chosen"]) == budget
        if on_round is not None:
            on_round(r, stds)
        if save is not None:
            save(state)
        progress("round_done", round=r, chosen=chosen, gains=[g for _, g in picks], seconds=time.perf_counter() - t0)
    state["done"] = True
    return state
