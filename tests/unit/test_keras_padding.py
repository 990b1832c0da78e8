"""Keras's dynamic-shape padding: the rule, and that it survives checkpoints and resumes."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")

from cytoimagenet.errors import ConfigError  # noqa: E402
from cytoimagenet.models.export import export_backbone  # noqa: E402
from cytoimagenet.models.factory import (  # noqa: E402
    KERAS_PADDING,
    checkpoint_payload,
    create_backbone,
    set_padding,
)
from cytoimagenet.models.keras_padding import (  # noqa: E402
    KerasPadConv2d,
    use_keras_padding,
    uses_keras_padding,
)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def test_keras_rule_pads_k_half_minus_one_before_and_k_half_after():
    conv = torch.nn.Conv2d(1, 1, 5, stride=2, bias=False)
    torch.nn.init.ones_(conv.weight)
    wrapped = torch.nn.Sequential(conv)
    use_keras_padding(wrapped)
    x = torch.ones(1, 1, 7, 7)
    with torch.no_grad():
        got = wrapped(x)
    # 7 + 1 + 2 = 10 padded; (10 - 5) // 2 + 1 = 3 outputs. First output covers rows -1..3:
    # one zero row and column before, so 4 x 4 ones.
    assert got.shape == (1, 1, 3, 3)
    assert float(got[0, 0, 0, 0]) == 16.0
    # TF-SAME at an odd side pads 2 before: the first window would hold 3 x 3 ones.
    same = torch.nn.functional.conv2d(
        torch.nn.functional.pad(x, (2, 2, 2, 2)), conv.weight.detach(), stride=2
    )
    assert float(same[0, 0, 0, 0]) == 9.0


def test_padding_changes_no_parameter_and_is_idempotent():
    model = timm.create_model("tf_efficientnet_b0", num_classes=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    use_keras_padding(model)
    use_keras_padding(model)
    assert uses_keras_padding(model)
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert sum(isinstance(m, KerasPadConv2d) for m in model.modules()) == 5  # B0's stride-2 convs


def test_even_multiples_of_32_are_unchanged_odd_sizes_differ():
    torch.manual_seed(0)
    plain = timm.create_model("tf_efficientnet_b0", num_classes=0).eval()
    keras = timm.create_model("tf_efficientnet_b0", num_classes=0).eval()
    keras.load_state_dict(plain.state_dict())
    use_keras_padding(keras)
    with torch.inference_mode():
        x = torch.rand(1, 3, 64, 96)
        assert _rel(plain(x), keras(x)) < 1e-5
        y = torch.rand(1, 3, 68, 68)
        assert _rel(plain(y), keras(y)) > 1e-2


def test_checkpoint_keeps_keras_padding_and_reload_restores_it(tmp_path):
    backbone = create_backbone("tf_efficientnet_b0", keras_padding=True, num_classes=3, seed=1)
    payload = checkpoint_payload(backbone, labels=["a", "b", "c"])
    assert payload["padding"] == KERAS_PADDING
    path = tmp_path / "ckpt.pt"
    torch.save(payload, path)
    again = create_backbone(weights=str(path), num_classes=3)
    assert uses_keras_padding(again.model)
    x = torch.rand(2, 1, 68, 70)
    with torch.inference_mode():
        want = backbone.model.eval()(backbone.preprocess(x))
        got = again.model.eval()(again.preprocess(x))
    assert torch.equal(want, got)
    # Asked for explicitly, TF-SAME wins over what the checkpoint says.
    plain = create_backbone(weights=str(path), num_classes=3, keras_padding=False)
    assert not uses_keras_padding(plain.model)
    assert "padding" not in checkpoint_payload(plain)


def test_default_follows_the_weights():
    assert not uses_keras_padding(create_backbone("tf_efficientnet_b0").model)
    backbone = create_backbone("tf_efficientnet_b0")
    set_padding(backbone, keras=True)
    with pytest.raises(ConfigError, match="already has Keras padding"):
        set_padding(backbone, keras=False)


def test_export_says_the_model_pads_as_keras(tmp_path):
    backbone = create_backbone("tf_efficientnet_b0", keras_padding=True)
    out = export_backbone(backbone, tmp_path / "timm")
    config = json.loads((out / "config.json").read_text())
    assert config["cytoimagenet"]["padding"] == "keras"
    reloaded = timm.create_model(f"local-dir:{out}", pretrained=True, num_classes=0)
    use_keras_padding(reloaded)
    x = torch.rand(1, 1, 99, 97)
    with torch.inference_mode():
        want = backbone.model.eval()(backbone.preprocess(x)).numpy()
        got = reloaded.eval()(backbone.preprocess(x)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
