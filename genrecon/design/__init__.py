"""Measurement design from posterior samples: which k-space columns or CT views to measure next (issue 20).

``genrecon design --config X`` starts from a small measurement (the k-space centre, a few equally spaced views),
draws posterior samples with a configured reconstructor (``dps``, ``latent_inversion`` with samples), scores every
unmeasured candidate by the expected information gain of its measurement under a Gaussian approximation,
``1/2 sum log(1 + var / sigma^2)`` over the candidate's predicted values (:mod:`.score`), adds the best (a batch:
each choice conditioned on the previous ones), and repeats until the budget is met exactly (:mod:`.loop`).
*Adaptive* designs are made per slice, *population* designs for a set of slices at once (the mean gain: a pattern
a scanner can use). Fixed patterns of the same budget come with it (:mod:`.baselines`); the patterns are files any
config reads (``mask: {name: file, path: ...}``, ``angles: {kind: list, values_deg: [...]}``; :mod:`.outputs`).

Modules: ``score`` (pure: whitening, gains, conditioning, greedy selection), ``problem`` (MRI columns, CT views),
``blocks`` (MRI 2-D k-space point sets, ``design.candidates: blocks``),
``loop`` (rounds, seeds, state), ``baselines``, ``config`` (the design YAML), ``outputs`` (files), ``run``
(the output folder: lock, resume, report).

Layer: above pipeline/evaluation, below the CLI (tests/test_layers.py).
"""

from __future__ import annotations

from .baselines import ct_baselines, mri_baselines
from .blocks import MRIBlocks, block_baselines
from .config import DesignConfig, load_design, load_design_dict
from .loop import Item, new_state, run_rounds
from .problem import CTViews, MRIColumns
from .run import run_design
from .score import gains, select, whiten

__all__ = ["CTViews", "DesignConfig", "Item", "MRIBlocks", "MRIColumns", "block_baselines", "ct_baselines", "gains",
           "load_design", "load_design_dict", "mri_baselines", "new_state", "run_design", "run_rounds", "select", "whiten"]
