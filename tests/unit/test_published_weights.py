"""The published CytoImageNet weights: loopback mirror, blob-id check, convert once, offline."""

from __future__ import annotations

import hashlib
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")
pytest.importorskip("h5py")

from tests.unit.test_models_convert import _all_layers, _randomise, write_keras2  # noqa: E402

from cytoimagenet.models import published  # noqa: E402
from cytoimagenet.models.convert import keras as keras_convert  # noqa: E402
from cytoimagenet.models.factory import create_backbone  # noqa: E402
from cytoimagenet.models.keras_padding import use_keras_padding  # noqa: E402
from cytoimagenet.models.published import (  # noqa: E402
    PublishedWeightsError,
    Version,
    git_blob_id,
)

COMMIT_NEW, COMMIT_OLD = "a" * 40, "b" * 40


def blob_of(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


@pytest.fixture(scope="module")
def fake_h5(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A Keras 2 EfficientNetB0 no-top file with seeded random weights, as bytes."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        model = timm.create_model("tf_efficientnet_b0", num_classes=0)
        _randomise(model)
    path = tmp_path_factory.mktemp("h5") / "w.h5"
    write_keras2(path, _all_layers(model))
    return path.read_bytes()


class Mirror(ThreadingHTTPServer):
    routes: dict[str, bytes]
    hits: list[str]


class Handler(BaseHTTPRequestHandler):
    server: Mirror

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.server.hits.append(self.path)
        body = self.server.routes.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def mirror(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Mirror]:
    server = Mirror(("127.0.0.1", 0), Handler)
    server.routes, server.hits = {}, []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv(published.URL_ENV, f"http://127.0.0.1:{server.server_address[1]}/m")
    monkeypatch.setenv(published.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(published, "RETRIES", 0)
    yield server
    server.shutdown()
    server.server_close()


def route(version: Version) -> str:
    return f"/m/{version.commit}/{published.FILE}"


def pin(monkeypatch: pytest.MonkeyPatch, *versions: Version) -> None:
    monkeypatch.setattr(published, "VERSIONS", versions)


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_git_blob_id_is_gits_object_id(tmp_path: Path) -> None:
    # `printf 'hello\n' | git hash-object --stdin` and git's empty blob
    (tmp_path / "a").write_bytes(b"hello\n")
    (tmp_path / "b").write_bytes(b"")
    assert git_blob_id(tmp_path / "a") == "ce013625030ba8dba906f756967f9e9ca394464a"
    assert git_blob_id(tmp_path / "b") == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"


def test_pinned_versions_and_url() -> None:
    assert published.VERSIONS[0].commit == "03f096d744108141a78bc8c6344fe2b8ad346e8f"
    assert published.VERSIONS[0].blob == "1b384b39fc690bfa7786da184851bfce7751c99f"
    assert published.VERSIONS[1].blob == "00c572cae17c411ae209779d9951db80aa2b4372"
    url = published.url_of(published.VERSIONS[0], base=published.BASE_URL)
    assert url == (
        "https://raw.githubusercontent.com/stan-hua/CytoImageNet/"
        "03f096d744108141a78bc8c6344fe2b8ad346e8f/model_weights/efficientnetb0_weights-notop.h5"
    )


def test_cache_dir_env_override_and_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(published.CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert published.cache_dir() == tmp_path / "xdg" / "cytoimagenet"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert published.cache_dir() == tmp_path / "home" / ".cache" / "cytoimagenet"
    monkeypatch.setenv(published.CACHE_ENV, str(tmp_path / "mine"))
    assert published.cache_dir() == tmp_path / "mine"


def _features(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(x)


def test_fetch_verify_convert_matches_direct_conversion(
    mirror: Mirror, fake_h5: bytes, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    version = Version(COMMIT_NEW, blob_of(fake_h5))
    pin(monkeypatch, version)
    mirror.routes[route(version)] = fake_h5
    grey = create_backbone(weights="cytoimagenet", in_chans=1)
    assert mirror.hits == [route(version)]
    assert (grey.name, grey.in_chans) == ("tf_efficientnet_b0", 1)
    assert (grey.mean, grey.std) == ((0.0,), (1.0,))
    cache = tmp_path / "cache" / "published"
    assert (cache / published.H5_NAME).read_bytes() == fake_h5
    for sub in ("cytoimagenet-b0-grey", "cytoimagenet-b0-rgb"):
        assert {p.name for p in (cache / sub).iterdir()} == {"config.json", "model.safetensors"}
    # The same numbers as converting the file directly, with Keras's padding (odd size: 45).
    h5 = tmp_path / "direct.h5"
    h5.write_bytes(fake_h5)
    direct = keras_convert.keras_efficientnetb0(h5, in_chans=1)
    ref = timm.create_model("tf_efficientnet_b0", in_chans=1, num_classes=0)
    ref.load_state_dict(direct.state)
    use_keras_padding(ref)
    x = torch.rand(2, 1, 45, 45, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(_features(grey.model, x), _features(ref, x), rtol=0, atol=0)
    rgb = create_backbone(weights="cytoimagenet", in_chans=3)
    torch.testing.assert_close(
        _features(rgb.model, x.expand(-1, 3, -1, -1)), _features(ref, x), rtol=1e-4, atol=1e-5
    )


def test_wrong_bytes_are_refused_and_nothing_is_kept(
    mirror: Mirror, fake_h5: bytes, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    version = Version(COMMIT_NEW, blob_of(fake_h5))
    pin(monkeypatch, version)
    mirror.routes[route(version)] = fake_h5[:-1] + b"x"
    with pytest.raises(PublishedWeightsError, match=r"git blob id .* expected") as info:
        create_backbone(weights="cytoimagenet")
    assert "nothing was kept" in str(info.value)
    assert files_under(tmp_path / "cache") == []


def test_conversion_happens_once(
    mirror: Mirror, fake_h5: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    version = Version(COMMIT_NEW, blob_of(fake_h5))
    pin(monkeypatch, version)
    mirror.routes[route(version)] = fake_h5
    first = create_backbone(weights="cytoimagenet")

    def no_reading(*args: object, **kwargs: object) -> None:
        raise AssertionError("the .h5 was read again")

    monkeypatch.setattr(keras_convert, "keras_efficientnetb0", no_reading)
    monkeypatch.setattr(published, "git_blob_id", no_reading)
    second = create_backbone(weights="cytoimagenet")
    assert mirror.hits == [route(version)]
    for a, b in zip(
        first.model.state_dict().values(), second.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b)


def test_earlier_pinned_version_is_accepted_by_its_blob(
    mirror: Mirror, fake_h5: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    newer, older = Version(COMMIT_NEW, "0" * 40), Version(COMMIT_OLD, blob_of(fake_h5))
    pin(monkeypatch, newer, older)
    mirror.routes[route(older)] = fake_h5  # the mirror lacks the newer one (404)
    backbone = create_backbone(weights="cytoimagenet")
    assert mirror.hits == [route(newer), route(older)]
    assert backbone.extra["source"].endswith(f"@{COMMIT_OLD}/{published.FILE}")


def test_a_hand_placed_file_is_checked(
    mirror: Mirror, fake_h5: bytes, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pin(monkeypatch, Version(COMMIT_NEW, blob_of(fake_h5)))
    target = tmp_path / "cache" / "published" / published.H5_NAME
    target.parent.mkdir(parents=True)
    target.write_bytes(b"not the weights")
    with pytest.raises(PublishedWeightsError, match="not that of a published version"):
        create_backbone(weights="cytoimagenet")
    target.write_bytes(fake_h5)  # placed by hand, offline: no request at all
    assert create_backbone(weights="cytoimagenet").in_chans == 1
    assert mirror.hits == []


def test_offline_error_says_which_file_to_place_where(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv(published.URL_ENV, f"http://127.0.0.1:{port}")
    monkeypatch.setenv(published.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(published, "RETRIES", 0)
    with pytest.raises(PublishedWeightsError) as info:
        create_backbone(weights="cytoimagenet")
    text = str(info.value)
    target = tmp_path / "cache" / "published" / "efficientnetb0_weights-notop.h5"
    assert f"place it at {target}" in text
    assert f"{published.VERSIONS[0].commit}/model_weights/efficientnetb0_weights-notop.h5" in text
    assert published.CACHE_ENV in text
    assert files_under(tmp_path / "cache") == []


def test_finetune_init_cytoimagenet_fixes_the_architecture(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from cytoimagenet.finetune.config import FinetuneJob

    job = FinetuneJob(dataset="bbbc021", root=tmp_path, out=tmp_path / "run", init="cytoimagenet")
    assert (job.model, job.input_size) == ("tf_efficientnet_b0", 224)
    with pytest.raises(ValidationError, match="leave --model out"):
        FinetuneJob(
            dataset="bbbc021",
            root=tmp_path,
            out=tmp_path / "r",
            init="cytoimagenet",
            model="resnet50",
        )
