"""Suite ``smoke``: every suite's code path once at tiny sizes, in seconds (CI runs it).

It needs no prepared datasets and no peers: images are the bundled samples and phantoms, resized small;
present peers run (at tiny sizes), missing ones are reported with the reason. Its numbers check that the
code works (adjoint errors, FISTA-TV beating zero-filled), nothing more.
"""

from __future__ import annotations

from typing import Any

from . import classical, generative, operators, scaling
from .common import Log, Options, new_document

NAME = "smoke"
TITLE = "Smoke test: every suite's code path at tiny sizes (checks the code, not the methods)"

PLANS = {
    "operators": lambda: operators.Plan(sizes=(32,), batch=2, parallel_views=23, fan_views=29),
    "classical": lambda: classical.Plan(settings=("mri4", "ct_head60", "astra_head60", "ct_phantom60"), size=64,
                                        resize="resize", slices=(2,), n_iter=20, weights={"mri": (1e-2,), "ct": (1e-4,)}),
    "generative": lambda: generative.Plan(settings=("mri8", "ct30"), source="bundled", dps_steps=2,
                                          latent={"restarts": 1, "steps": 3}, samples=2),
    "scaling": lambda: scaling.Plan(sizes=(32, 64), batches=(1, 2), n_iter=3, dps_sizes=()),
}
MODULES = {"operators": operators, "classical": classical, "generative": generative, "scaling": scaling}


def run(opts: Options, log: Log, plan: dict | None = None) -> dict[str, Any]:
    plans = plan or {name: make() for name, make in PLANS.items()}
    doc = new_document(NAME, TITLE, opts, {"parts": list(plans)})
    doc["parts"] = {}
    for name, part_plan in plans.items():
        log(f"smoke: {name}")
        part = MODULES[name].run(opts, log, part_plan)
        doc["parts"][name] = {"settings": part["settings"], "records": part["records"], "missing": part["missing"]}
        doc["missing"] += [f"{name}: {m}" for m in part["missing"]]
        for t in part["tables"]:
            doc["tables"].append({**t, "title": f"{name}: {t['title']}"})
    return doc


def plot(doc: dict[str, Any], out_dir) -> list[dict[str, Any]]:
    """The generative and scaling plots of the smoke run (``smoke_generative_psnr.png``, ``smoke_scaling_time.png``)."""
    plots = []
    for name in ("generative", "scaling"):
        if name in doc.get("parts", {}):
            part = {"suite": name, **doc["parts"][name]}
            plots += MODULES[name].plot(part, out_dir, prefix=f"{NAME}_{name}")
    return plots
