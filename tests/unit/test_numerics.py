"""CPU numerics pinning: defaults set, the user's own settings kept, and recorded."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from cytoimagenet.numerics import PINNED_ENV, cpu_numerics, pin_cpu_numerics  # noqa: E402


@pytest.fixture
def threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_pins_the_instruction_set_and_threads(monkeypatch, threads):
    for name in PINNED_ENV:
        monkeypatch.delenv(name, raising=False)
    settings = pin_cpu_numerics(threads=1)
    assert settings == {**PINNED_ENV, "torch_threads": "1"}
    assert torch.get_num_threads() == 1
    assert cpu_numerics() == settings


def test_a_variable_the_user_set_is_kept(monkeypatch, threads):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE")
    monkeypatch.delenv("MKL_CBWR", raising=False)
    settings = pin_cpu_numerics()
    assert settings["ONEDNN_MAX_CPU_ISA"] == "AVX512_CORE"
    assert settings["MKL_CBWR"] == "AVX2"
