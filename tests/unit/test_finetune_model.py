"""Initialisations (Xavier, weights files, ImageNet offline), input sizes, job defaults."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from cytoimagenet.config import validate_job
from cytoimagenet.errors import ConfigError
from cytoimagenet.finetune.config import FinetuneJob, paper_defaults
from cytoimagenet.finetune.loop import balanced_weights
from cytoimagenet.finetune.model import build_classifier, default_input_size
from cytoimagenet.models.factory import checkpoint_payload, create_backbone

MODEL = "test_resnet"


def test_xavier_is_seeded_keras_like_and_leaves_global_rng() -> None:
    before = torch.random.get_rng_state()
    a = build_classifier(MODEL, "xavier", 3, seed=1).model
    b = build_classifier(MODEL, "xavier", 3, seed=1).model
    c = build_classifier(MODEL, "xavier", 3, seed=2).model
    assert torch.equal(torch.random.get_rng_state(), before)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa if sa[k].is_floating_point())
    timm_default = create_backbone(MODEL, weights="random", in_chans=3, num_classes=3, seed=1)
    td = timm_default.model.state_dict()
    assert any(not torch.equal(sa[k], td[k]) for k in sa if "conv" in k)
    convs = 0
    for layer in a.modules():
        if isinstance(layer, nn.Conv2d | nn.Linear):
            w = layer.weight
            fan_in = w.shape[1] * w[0, 0].numel()
            fan_out = w.shape[0] * w[0, 0].numel()
            bound = math.sqrt(6 / (fan_in + fan_out))
            assert w.abs().max() <= bound
            assert w.abs().max() > 0.5 * bound  # uniform over the whole range
            assert layer.bias is None or not layer.bias.any()
            convs += 1
        elif isinstance(layer, nn.BatchNorm2d):
            assert (layer.weight == 1).all() and not layer.bias.any()
            assert not layer.running_mean.any() and (layer.running_var == 1).all()
    assert convs > 5
    assert a.eval()(torch.zeros(1, 3, 32, 32)).shape == (1, 3)


def test_init_from_state_dict_keeps_backbone_and_replaces_head(tmp_path: Path) -> None:
    source = create_backbone(MODEL, weights="random", in_chans=3, num_classes=5, seed=7).model
    torch.save(source.state_dict(), tmp_path / "w.pt")
    built = build_classifier(MODEL, str(tmp_path / "w.pt"), 3, seed=0)
    state, original = built.model.state_dict(), source.state_dict()
    shared = [k for k in state if state[k].shape == original[k].shape]
    assert all(torch.equal(state[k], original[k]) for k in shared)
    assert built.model.get_classifier().out_features == 3
    assert built.in_chans == 3


def test_init_from_grey_checkpoint_adapts_first_conv(tmp_path: Path) -> None:
    grey = create_backbone(MODEL, weights="random", in_chans=1, num_classes=4, seed=3)
    torch.save(checkpoint_payload(grey, labels=["a", "b", "c", "d"]), tmp_path / "c.pt")
    built = build_classifier("resnet18", str(tmp_path / "c.pt"), 2, seed=0)
    assert built.name == MODEL  # the checkpoint's architecture wins
    first = grey.model.pretrained_cfg["first_conv"] + ".weight"
    w1, w3 = grey.model.state_dict()[first], built.model.state_dict()[first]
    assert w3.shape[1] == 3
    # timm's rule: the grey kernel repeated over RGB, scaled so a grey image gives the same
    torch.testing.assert_close(w3.sum(dim=1, keepdim=True), w1)
    assert len(built.mean) == 3 and len(set(built.mean)) == 1


def test_init_file_of_another_architecture_fails(tmp_path: Path) -> None:
    other = create_backbone("test_efficientnet", weights="random", in_chans=3, num_classes=2)
    torch.save(other.model.state_dict(), tmp_path / "e.pt")
    with pytest.raises(ConfigError, match="do not fit"):
        build_classifier(MODEL, str(tmp_path / "e.pt"), 2, seed=0)


def test_imagenet_offline_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import timm

    real = timm.create_model

    def offline(name: str, **kw: object) -> nn.Module:
        if kw.get("pretrained"):
            raise OSError("We couldn't connect to 'https://huggingface.co'")
        return real(name, **kw)

    monkeypatch.setattr(timm, "create_model", offline)
    with pytest.raises(ConfigError, match="--init PATH"):
        build_classifier(MODEL, "imagenet", 3, seed=0)


def test_default_input_sizes() -> None:
    assert default_input_size("resnet50") == 224
    assert default_input_size("inception_v3") == 299
    assert default_input_size("inception_resnet_v2") == 299
    with pytest.raises(ConfigError, match="unknown timm model"):
        default_input_size("resnet_fifty")


def test_balanced_weights() -> None:
    w = balanced_weights(np.array([0, 0, 0, 1, 2, 2]), 4)
    np.testing.assert_allclose(w, [6 / 9, 6 / 3, 6 / 6, 0.0])
    # each present class then carries the same total weight
    counts = np.bincount([0, 0, 0, 1, 2, 2], minlength=4)
    assert len(set(np.round(w * counts, 9)[:3])) == 1


def test_job_fills_the_paper_settings(tmp_path: Path) -> None:
    def job(**kw: object) -> FinetuneJob:
        return validate_job(FinetuneJob, root=tmp_path, out=tmp_path / "run", **kw)

    inc = job(dataset="bbbc021", model="inception_v3", init="xavier")
    assert (inc.epochs, inc.batch_size, inc.lr, inc.input_size) == (7, 32, 5e-4, 299)
    assert inc.augment == "kensert" and inc.momentum == 0.9
    irv2 = job(dataset="bbbc021", model="inception_resnet_v2", init="xavier")
    assert (irv2.epochs, irv2.lr) == (5, 1e-3)
    b14 = job(dataset="bbbc014", model="resnet50", init="xavier", epochs=3)
    assert (b14.epochs, b14.batch_size, b14.lr, b14.augment, b14.input_size) == (
        3, 8, 1e-3, "none", 224
    )  # fmt: skip
    assert paper_defaults("bbbc021", "convnext_tiny")["epochs"] == 5
    assert "folds" not in inc.fingerprint() and "epochs" in inc.fingerprint()
    with pytest.raises(ConfigError, match="init"):
        job(dataset="bbbc021", init="missing.pt")
    with pytest.raises(ConfigError, match="unknown timm model"):
        job(dataset="bbbc021", model="resnet_fifty", init="xavier")
    with pytest.raises(ConfigError, match="dataset"):
        job(dataset="bbbc022", init="xavier")


def test_job_takes_input_size_from_a_checkpoint(tmp_path: Path) -> None:
    grey = create_backbone(MODEL, weights="random", in_chans=1, num_classes=2)
    torch.save(checkpoint_payload(grey), tmp_path / "c.pt")
    job = validate_job(FinetuneJob, dataset="bbbc021", root=tmp_path, out=tmp_path / "r",
                       init=str(tmp_path / "c.pt"))  # fmt: skip
    assert job.input_size == 160  # test_resnet's, not resnet50's
