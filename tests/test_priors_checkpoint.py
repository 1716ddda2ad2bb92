"""Prior checkpoints: round trip with weights_only=True, and one-line errors for bad files."""

from __future__ import annotations

import pickle

import pytest
import torch

from genrecon.errors import CheckpointError
from genrecon.priors import ConvVAE, DiffusionPrior, load_prior, read_checkpoint, save_prior
from genrecon.priors.pretrained import render_model_card, resolve_prior_path


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def make_diffusion() -> DiffusionPrior:
    params = {"unet": {"base_channels": 8, "channel_mults": [1, 2], "attention_levels": [1], "groups": 4},
              "schedule": {"name": "vp", "timesteps": 50}}
    prior = DiffusionPrior.build(params, image_size=16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():  # make zero-initialised layers non-trivial
        for p in prior.parameters():
            p.add_(0.01)
    return prior


def save(path, model, kind, **kw):
    args = dict(kind=kind, arch=model.arch, arch_params=model.arch_params(), image_size=16, channels=1,
                normalisation={"range": [0, 1], "source": "volume max"}, training={"train": {"lr": 1e-3}},
                data={"file": "x.h5", "n_train": 3}, steps=7, extra={"note": ("a", 1)})
    args.update(kw)
    return save_prior(path, model, **args)


def test_diffusion_round_trip(tmp_path):
    prior = make_diffusion()
    path = save(tmp_path / "sub" / "d.pt", prior, "diffusion")
    raw = torch.load(path, weights_only=True)  # plain types only
    assert raw["format"] == "genrecon-prior" and raw["kind"] == "diffusion" and raw["genrecon_version"]
    model, meta = load_prior(path, kind="diffusion", image_size=16)
    assert isinstance(model, DiffusionPrior) and not model.training
    assert all(not p.requires_grad for p in model.parameters())
    for k, v in prior.state_dict().items():
        assert torch.equal(model.state_dict()[k], v)
    assert meta["normalisation"] == {"range": [0, 1], "source": "volume max"}
    assert meta["extra"]["note"] == ["a", 1] and meta["steps"] == 7 and "state_dict" not in meta
    x = torch.randn(2, 1, 16, 16)
    torch.testing.assert_close(model.x0(x, 10), prior.x0(x, 10))
    assert not list(tmp_path.glob("sub/.*tmp"))  # no temporary file left behind


def test_generator_round_trip_float16(tmp_path):
    vae = ConvVAE.build({"latent_dim": 4, "base_channels": 8, "channel_mults": [1, 2], "groups": 4},
                        image_size=16, generator=torch.Generator().manual_seed(0))
    path = save(tmp_path / "g.pt", vae, "generator", storage_dtype="float16")
    model, meta = load_prior(path, kind="generator")
    assert meta["storage_dtype"] == "float16"
    z = torch.randn(3, 4)
    assert model.decode(z).dtype == torch.float32
    torch.testing.assert_close(model.decode(z), vae.decode(z), atol=2e-3, rtol=0)


def test_wrong_kind_one_line(tmp_path):
    path = save(tmp_path / "d.pt", make_diffusion(), "diffusion")
    with pytest.raises(CheckpointError) as err:
        load_prior(path, kind="generator", purpose="latent_inversion")
    msg = str(err.value)
    assert "is a 'diffusion' prior; latent_inversion needs a 'generator' prior" in msg and "\n" not in msg


def test_wrong_size(tmp_path):
    path = save(tmp_path / "d.pt", make_diffusion(), "diffusion")
    with pytest.raises(CheckpointError, match="trained on 16x16 images; dps has 128x128"):
        load_prior(path, image_size=128, purpose="dps")


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04garbage"])
def test_corrupt_file(tmp_path, content):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="not a readable genrecon checkpoint") as err:
        load_prior(path)
    assert "\n" not in str(err.value)


def test_truncated_file(tmp_path):
    path = save(tmp_path / "d.pt", make_diffusion(), "diffusion")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="not a readable"):
        load_prior(path)


def test_pickled_objects_are_refused(tmp_path):
    # a file that would need arbitrary unpickling is refused by weights_only=True
    path = tmp_path / "evil.pt"
    torch.save({"format": "genrecon-prior", "obj": pickle.PicklingError("x")}, path)
    with pytest.raises(CheckpointError, match="not a readable"):
        load_prior(path)


def test_foreign_dict_and_missing_file(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="not a genrecon prior checkpoint"):
        load_prior(path)
    with pytest.raises(CheckpointError, match="not found"):
        load_prior(tmp_path / "missing.pt")


def test_mismatched_weights(tmp_path):
    path = save(tmp_path / "d.pt", make_diffusion(), "diffusion")
    raw = torch.load(path, weights_only=True)
    raw["arch_params"]["unet"]["base_channels"] = 16
    torch.save(raw, path)
    with pytest.raises(CheckpointError, match="weights do not fit"):
        load_prior(path)


def test_save_refuses_bad_metadata(tmp_path):
    prior = make_diffusion()
    with pytest.raises(CheckpointError, match="does not make a 'generator' prior"):
        save(tmp_path / "x.pt", prior, "generator")
    with pytest.raises(CheckpointError, match="JSON-able"):
        save(tmp_path / "x.pt", prior, "diffusion", extra={"t": torch.zeros(1)})
    assert read_checkpoint(save(tmp_path / "y.pt", prior, "diffusion"))[0]["kind"] == "diffusion"


def test_pretrained_names():
    with pytest.raises(CheckpointError, match="no pretrained prior named 'nope'"):
        resolve_prior_path("pretrained:nope")
    assert resolve_prior_path("some/file.pt").name == "file.pt"


def test_model_card_from_meta(tmp_path):
    path = save(tmp_path / "d.pt", make_diffusion(), "diffusion", extra={"name": "tiny-16", "val_loss": 0.1},
                data={"file": "x.h5", "n_train": 3, "n_val": 1, "modality": "mri", "licence": "CC0",
                      "sources": [{"name": "phantom", "description": "disks.", "licence": "CC0"}]})
    card = render_model_card(load_prior(path)[1])
    assert card.startswith("# tiny-16") and "pretrained:tiny-16" in card and "phantom: disks." in card
    assert "[0, 1]" in card and "held-out loss 0.1" in card


def test_model_card_says_where_a_continued_prior_started(tmp_path):
    path = save(tmp_path / "d.pt", make_diffusion(), "diffusion", steps=1300,
                extra={"name": "tiny-16", "init_from": "pretrained:tiny-old", "init_steps": 1000})
    card = render_model_card(load_prior(path)[1])
    assert "Initialised from `pretrained:tiny-old` (1000 steps), then trained 300 steps" in card
    plain = render_model_card(load_prior(save(tmp_path / "e.pt", make_diffusion(), "diffusion"))[1])
    assert "Initialised" not in plain
