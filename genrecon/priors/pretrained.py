"""Where priors live: ``pretrained:<name>`` names shipped with genrecon, or paths to local files.

Shipped priors are ``genrecon/data/priors/<name>.pt``, each with a model card ``<name>.md`` next to it.

Example:
    >>> resolve_prior_path("runs/train/tiny/prior.pt").name
    'prior.pt'
"""

from __future__ import annotations

import importlib.resources
import json
from pathlib import Path

from ..errors import CheckpointError
from ..registry import did_you_mean

PREFIX = "pretrained:"


def priors_dir() -> Path:
    """The folder of shipped priors inside the installed package."""
    return Path(str(importlib.resources.files("genrecon") / "data" / "priors"))


def available() -> list[str]:
    """Names of the shipped priors (without the ``pretrained:`` prefix), sorted."""
    folder = priors_dir()
    return sorted(p.stem for p in folder.glob("*.pt")) if folder.is_dir() else []


def model_card(name: str) -> str | None:
    """The Markdown model card of a shipped prior, or None if it has none."""
    card = priors_dir() / f"{name.removeprefix(PREFIX)}.md"
    return card.read_text(encoding="utf-8") if card.is_file() else None


def resolve_prior_path(path_or_name: str | Path) -> Path:
    """Map ``pretrained:<name>`` to the shipped file; return other values as paths (existence not checked)."""
    text = str(path_or_name)
    if not text.startswith(PREFIX):
        return Path(text).expanduser()
    name = text[len(PREFIX) :]
    path = priors_dir() / f"{name}.pt"
    if not path.is_file():
        names = available()
        listing = ", ".join(names) if names else "none shipped in this installation"
        raise CheckpointError(
            f"no pretrained prior named '{name}'{did_you_mean(name, names)}; available: {listing} "
            f"(or give the path of a .pt file written by 'genrecon train-prior')"
        )
    return path


def render_model_card(meta: dict, *, name: str | None = None) -> str:
    """A Markdown model card from a checkpoint's metadata (``load_prior(...)[1]`` or ``read_checkpoint``).

    It states what the prior is, what it was trained on (files, sizes, sources, licences), how (config
    highlights, steps, losses) and the intensity convention. Write it next to the ``.pt`` as ``<name>.md``.
    """
    name = name or (meta.get("extra") or {}).get("name") or "prior"
    data, train, extra = meta.get("data") or {}, meta.get("training") or {}, meta.get("extra") or {}
    t = train.get("train", {})
    sources = data.get("sources")
    if isinstance(sources, list):
        src = "\n".join(
            f"- {s.get('name', '?')}: {s.get('description', '')} Licence: {s.get('licence', '?')}. "
            f"Cite: {s.get('citation', '-')}"
            for s in sources
            if isinstance(s, dict)
        )
    else:
        src = f"- {sources}"
    size = meta.get("image_size")
    lines = [
        f"# {name}",
        "",
        f"A **{meta.get('kind')}** prior (`{meta.get('arch')}`, {meta.get('param_count', '?'):,} parameters) for "
        f"{size}x{size} {data.get('modality', '')} images with {meta.get('channels', 1)} channel(s); written by "
        f"genrecon {meta.get('genrecon_version')}.",
        "",
        "## Use",
        "",
        f"`pretrained:{name}` in a reconstructor's `prior` parameter, or `load_prior('pretrained:{name}')`.",
        f"Images are expected in the range {meta.get('normalisation', {}).get('range')} with the dataset's "
        f"normalisation: {meta.get('normalisation', {}).get('source')}."
        + (" Diffusion runs on `2 x - 1` in [-1, 1]." if meta.get("kind") == "diffusion" else ""),
        "",
        "## Architecture",
        "",
        f"```json\n{json.dumps(meta.get('arch_params'), indent=2)}\n```",
        "",
        "## Training data",
        "",
        f"File `{data.get('file')}`: {data.get('n_train')} training and {data.get('n_val')} held-out images "
        f"(validation loss on at most {train.get('data', {}).get('max_val', '?')}).",
        "",
        src,
        "",
        f"Licence of the data: {data.get('licence')}",
        "",
        "## Training",
        "",
        f"{meta.get('steps')} steps, batch {t.get('batch_size')}, AdamW lr {t.get('lr')}, EMA {t.get('ema')}, "
        f"seed {train.get('seed')}, {extra.get('seconds', '?')} s on {extra.get('world_size', 1)} process(es); "
        f"augmentation {train.get('augment')}.",
        *([f"Initialised from `{extra['init_from']}` ({extra.get('init_steps', '?')} steps), then trained "
           f"{meta.get('steps', 0) - extra['init_steps']} steps on the data above (the step count above is the sum)."
           if isinstance(extra.get("init_steps"), int) else f"Initialised from `{extra['init_from']}`."]
          if extra.get("init_from") else []),
        f"Final train loss {extra.get('train_loss')}, held-out loss {extra.get('val_loss')}.",
        "",
        "## Limitations",
        "",
        "Trained briefly on a small data set on a CPU: a research and teaching prior, not for diagnosis. "
        "It has seen few subjects; expect it to hallucinate anatomy of those subjects, and to fit other "
        "contrasts, scanners or sizes poorly.",
        "",
    ]
    if (meta.get("arch_params") or {}).get("latent_channels"):
        lines[-1:-1] = [
            "",
            "Spatial latent with a small KL weight: the decoder represents unseen slices well (latent inversion "
            "from the encoder's start), but G(z) for z ~ N(0, I) is texture, not anatomy (the samples below): "
            "use it to reconstruct, not to generate.",
        ]
    return "\n".join(lines)
