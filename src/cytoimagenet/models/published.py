r"""The authors' published CytoImageNet weights: fetched once, verified, converted once.

``--model cytoimagenet`` (``extract``), ``--weights cytoimagenet`` (``pretrain``) and
``--init cytoimagenet`` (``finetune``) use ``model_weights/efficientnetb0_weights-notop.h5``
of the authors' repository ``stan-hua/CytoImageNet`` at a pinned commit. It is a plain git
blob (not Git LFS), so ``raw.githubusercontent.com`` serves its bytes, and it is verified by
its git blob id, ``sha1(b"blob <size>\\0" + content)``. The file is fetched with the project's
downloader into the cache, converted to timm's ``tf_efficientnet_b0`` once, and the two
converted folders (grey and RGB input), each a timm ``config.json`` (mean/std, input size,
channels) + ``model.safetensors``, are kept beside it::

    $CYTOIMAGENET_CACHE (default $XDG_CACHE_HOME/cytoimagenet, else ~/.cache/cytoimagenet)
      published/efficientnetb0_weights-notop.h5
      published/cytoimagenet-b0-grey/{config.json, model.safetensors}
      published/cytoimagenet-b0-rgb/{config.json, model.safetensors}

``CYTOIMAGENET_WEIGHTS_URL`` replaces the base URL (a mirror holding ``<commit>/<path>``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from cytoimagenet.errors import CytoImageNetError

if TYPE_CHECKING:
    from cytoimagenet.models.factory import Backbone

CACHE_ENV: Final = "CYTOIMAGENET_CACHE"
URL_ENV: Final = "CYTOIMAGENET_WEIGHTS_URL"
REPOSITORY: Final = "stan-hua/CytoImageNet"
BASE_URL: Final = f"https://raw.githubusercontent.com/{REPOSITORY}"
FILE: Final = "model_weights/efficientnetb0_weights-notop.h5"
H5_NAME: Final = "efficientnetb0_weights-notop.h5"
ARCH: Final = "tf_efficientnet_b0"
INPUT_SIZE: Final = 224  # the authors pretrained at 224 px
#: Further attempts after a dropped connection; the file is small, offline should fail fast.
RETRIES: Final = 1


@dataclass(frozen=True)
class Version:
    """One pinned version of the published file: its commit and git blob id."""

    commit: str
    blob: str


#: Newest first: the weights of 2022-07-30 ("Update model weights"), then the first release.
VERSIONS: Final = (
    Version("03f096d744108141a78bc8c6344fe2b8ad346e8f", "1b384b39fc690bfa7786da184851bfce7751c99f"),
    Version("77c3f7dbcd02a4cda2ff91304480906cd4fd96b5", "00c572cae17c411ae209779d9951db80aa2b4372"),
)


class PublishedWeightsError(CytoImageNetError):
    """The published weights could not be fetched or verified; the message says what to do."""


def cache_dir() -> Path:
    """Return the cache folder: ``$CYTOIMAGENET_CACHE``, else the XDG user cache."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "cytoimagenet"


def published_dir() -> Path:
    """Folder of the published file and its conversions."""
    return cache_dir() / "published"


def git_blob_id(path: Path) -> str:
    r"""Return git's object id of a file's content: ``sha1(b"blob <size>\\0" + content)``."""
    digest = hashlib.sha1(usedforsecurity=False)
    digest.update(b"blob %d\0" % path.stat().st_size)
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def url_of(version: Version, base: str | None = None) -> str:
    """URL of ``version``'s file under ``base`` (``$CYTOIMAGENET_WEIGHTS_URL`` or GitHub raw)."""
    base = (base or os.environ.get(URL_ENV) or BASE_URL).rstrip("/")
    return f"{base}/{version.commit}/{FILE}"


def _known(blob: str) -> Version | None:
    return next((v for v in VERSIONS if v.blob == blob), None)


def _fetch_one(version: Version, folder: Path, target: Path) -> None:
    """Fetch one version into a private temp folder; publish it only if its blob id matches."""
    from cytoimagenet.download.http import fetch

    url = url_of(version)
    tmp = Path(tempfile.mkdtemp(prefix=".fetch.", dir=folder))
    try:
        got = fetch(url, tmp / H5_NAME, retries=RETRIES).path
        blob = git_blob_id(got)
        if blob != version.blob:
            raise PublishedWeightsError(
                f"{url}: git blob id {blob}, expected {version.blob} (commit "
                f"{version.commit[:7]}); the file was refused and nothing was kept. Check "
                f"${URL_ENV} points at a faithful mirror of {REPOSITORY}"
            )
        got.replace(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def ensure_h5() -> Path:
    """Return the verified published ``.h5`` in the cache, fetching it if absent.

    A file already in the cache (fetched earlier or placed by hand) is accepted when its git
    blob id is that of a pinned version. Otherwise each pinned version is fetched in turn.

    Raises
    ------
    PublishedWeightsError
        When a file in the cache or a fetched one has the wrong blob id (it is removed or
        not kept), or when no version could be fetched (the message says which file to put
        where).
    """
    from cytoimagenet.download.http import DownloadError

    folder = published_dir()
    target = folder / H5_NAME
    if target.is_file():
        blob = git_blob_id(target)
        if _known(blob) is None:
            raise PublishedWeightsError(
                f"{target}: git blob id {blob} is not that of a published version "
                f"({', '.join(v.blob[:12] for v in VERSIONS)}); remove it and run again"
            )
        return target
    folder.mkdir(parents=True, exist_ok=True)
    reasons = []
    for version in VERSIONS:
        try:
            _fetch_one(version, folder, target)
            return target
        except DownloadError as exc:
            reasons.append(str(exc))
    raise PublishedWeightsError(
        f"the published CytoImageNet weights could not be fetched ({reasons[0]}). Offline: "
        f"download {url_of(VERSIONS[0])} on a connected machine and place it at {target} "
        f"(or set ${CACHE_ENV} to a folder holding published/{H5_NAME}), or pass "
        "keras:PATH.h5"
    )


def _folder(grey: bool) -> Path:
    return published_dir() / ("cytoimagenet-b0-grey" if grey else "cytoimagenet-b0-rgb")


def _complete(folder: Path) -> bool:
    from cytoimagenet.models.export import CONFIG_NAME, WEIGHTS_NAME

    return (folder / CONFIG_NAME).is_file() and (folder / WEIGHTS_NAME).is_file()


def _convert(h5: Path) -> None:
    """Convert the ``.h5`` to both timm folders (grey and RGB input)."""
    import timm

    from cytoimagenet.models.convert.keras import keras_efficientnetb0
    from cytoimagenet.models.export import timm_config, write_timm_folder

    blob = git_blob_id(h5)
    version = _known(blob)
    for grey in (True, False):
        converted = keras_efficientnetb0(h5, in_chans=1 if grey else 3)
        model = timm.create_model(ARCH, in_chans=converted.in_chans, num_classes=0)
        model.load_state_dict(converted.state, strict=True)  # a bad conversion stops here
        config = timm_config(
            ARCH,
            num_classes=0,
            num_features=int(model.num_features),
            in_chans=converted.in_chans,
            mean=converted.mean,
            std=converted.std,
            input_size=INPUT_SIZE,
            extra={
                "source": f"{REPOSITORY}@{version.commit if version else '?'}/{FILE}",
                "git_blob": blob,
                "padding": "keras",
                "padding_note": "Keras pads stride-2 convolutions as for even sides; timm's "
                "tf_efficientnet_b0 pads TF-SAME (identical when both sides are multiples "
                "of 32); cytoimagenet applies Keras's",
            },
        )
        write_timm_folder(_folder(grey), converted.state, config, replace=True)


def converted_folder(*, grey: bool = True) -> Path:
    """Return the converted timm folder, fetching and converting only the first time."""
    folder = _folder(grey)
    if not _complete(folder):
        _convert(ensure_h5())
    return folder


def load_config(folder: Path) -> dict[str, Any]:
    """Read a timm folder's ``config.json``."""
    import json

    from cytoimagenet.models.export import CONFIG_NAME

    return json.loads((folder / CONFIG_NAME).read_text())


def published_backbone(in_chans: int, num_classes: int, seed: int, **kw: Any) -> Backbone:
    """Build ``tf_efficientnet_b0`` with the published weights (``create_backbone`` pads it).

    ``in_chans`` 1 gives the grey model (the stem folded exactly); 3 replicates grey to RGB.
    """
    from safetensors.torch import load_file

    from cytoimagenet.errors import ConfigError
    from cytoimagenet.models.export import WEIGHTS_NAME
    from cytoimagenet.models.factory import Backbone, _load, _seeded, _timm

    if in_chans not in (1, 3):
        raise ConfigError(
            f"the published CytoImageNet weights take 1 or 3 channels, not {in_chans}"
        )
    folder = converted_folder(grey=in_chans == 1)
    config = load_config(folder)
    chans = int(config["model_args"]["in_chans"])
    cfg = config["pretrained_cfg"]
    model = _seeded(seed, lambda: _timm(ARCH, in_chans=chans, num_classes=num_classes, **kw))
    _load(model, load_file(str(folder / WEIGHTS_NAME)), str(folder), num_classes)
    extra = {"source": config.get("cytoimagenet", {}).get("source")}
    return Backbone(
        model, ARCH, "cytoimagenet", chans, tuple(cfg["mean"]), tuple(cfg["std"]), extra
    )
