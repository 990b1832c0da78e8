"""Adapters of the BBBC sources that publish metadata files.

The Cell Painting screens BBBC022/025 are in :mod:`cytoimagenet.sources.bbbc_painting`.

* ``bbbc021`` — ``BBBC021_v1_image.csv`` joined with ``BBBC021_v1_moa.csv`` (held out);
  ``Image_Metadata_Concentration`` is the dose in µM.
* ``bbbc006`` — the nucleus-count export; one record per field and z-plane.
* ``bbbc017`` — the shRNA plate map ``.xls``, joined with the ``.DIB`` fields when present.
* ``bbbc038`` — DSB2018 solution CSVs, one record per ``ImageId``.
* ``bbbc041`` — malaria JSON, one record per annotated object.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from cytoimagenet.errors import MetadataError
from cytoimagenet.io.tables import find_files, read_delimited, read_excel, require_columns
from cytoimagenet.sources.base import SourceAdapter, register, relpath
from cytoimagenet.sources.bbbc021_csv import (
    BBBC021_CHANNELS,
    COMPOUND,
    CONCENTRATION,
    FILE_COLUMNS,
    PATH_COLUMNS,
    read_annotated,
)

#: ``<anything>_<well>_s<site>_w<channel>`` — the MetaXpress naming of BBBC006/021/022/025.
FIELD_RE = r"_([A-Pa-p]\d{2})_s(\d+)_w(\d)"


def walk(raw: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """Return the files under ``raw`` with one of ``suffixes`` (any case), sorted; may be empty."""
    wanted = tuple(s.lower() for s in suffixes)
    return sorted(p for p in raw.rglob("*") if p.is_file() and p.suffix.lower() in wanted)


def path_frame(raw: Path, files: list[Path]) -> pl.DataFrame:
    """Return a frame with the relative ``file``, its ``dir`` and its ``name``."""
    rel = [relpath(f, raw) for f in files]
    return pl.DataFrame({"file": rel}, schema={"file": pl.String}).with_columns(
        pl.col("file").str.replace(r"/?[^/]*$", "").alias("dir"),
        pl.col("file").str.extract(r"([^/]*)$").alias("name"),
    )


def pick(paths: list[Path], stem: str, source: str, raw: Path) -> Path:
    """Return the one path whose name starts with ``stem``, or raise naming what is missing."""
    hits = [p for p in paths if p.name.startswith(stem)]
    if not hits:
        raise MetadataError(f"{raw}: {source} needs {stem}* (as the source publishes it)")
    return hits[0]


def first_column(frame: pl.DataFrame, candidates: tuple[str, ...]) -> str | None:
    """Return the first of ``candidates`` present in ``frame`` (or ``None``)."""
    return next((c for c in candidates if c in frame.columns), None)


class Bbbc021Adapter(SourceAdapter):
    """BBBC021: one record per field; MoA joined as :func:`read_annotated` does it."""

    channels = BBBC021_CHANNELS

    def read(self, raw: Path) -> pl.DataFrame:
        """Return one record per field of the 55 plates (held out by harmonisation)."""
        paths = self.metadata_paths(raw)
        image_path = pick(paths, "BBBC021_v1_image.csv", self.name, raw)
        moa_path = pick(paths, "BBBC021_v1_moa.csv", self.name, raw)
        meta = ["Image_Metadata_Plate_DAPI", "Image_Metadata_Well_DAPI"]
        table = read_annotated(image_path, moa_path, needs=meta).rename({COMPOUND: "compound"})
        files, dirs = FILE_COLUMNS, PATH_COLUMNS
        dmso = pl.col("compound").str.to_lowercase() == "dmso"
        return table.select(
            (
                pl.col(meta[0])
                + "_"
                + pl.col(meta[1])
                + "_s"
                + pl.col(files[0]).str.extract(r"_s(\d+)_")
            ).alias("key"),
            pl.col(dirs[0]).alias("path"),
            pl.col(files[0]).str.replace(r"_w\d.*$", "").alias("filename"),
            pl.concat_list(
                pl.col(d) + "/" + pl.col(f) for d, f in zip(dirs, files, strict=True)
            ).alias("channel_paths"),
            pl.col(meta[0]).alias("plate"),
            pl.col(meta[1]).alias("well"),
            pl.col(files[0]).str.extract(r"_s(\d+)_").alias("site"),
            # The MoA file calls DMSO's mechanism 'DMSO': a control, not a phenotype.
            pl.when(dmso).then(None).otherwise(pl.col("moa")).alias("phenotype"),
            pl.col("compound"),
            pl.when(dmso).then(pl.lit("negative control")).alias("control"),
            # The BBBC021 page gives the concentrations in micromolar.
            pl.col(CONCENTRATION).alias("concentration"),
            pl.lit("uM").alias("concentration_unit"),
        )


class Bbbc006Adapter(SourceAdapter):
    """BBBC006: one record per field *and* z-plane, channels w1 (Hoechst) + w2 (phalloidin).

    With images present, every ``BBBC006_v1_images_z_<zz>`` folder is enumerated. The
    count export alone names one w1 file per field of one unstated z-plane (file names
    carry per-file UUIDs), so metadata-only rows are one per listed field with that
    nucleus file only (``channels = [f_nucleus]``); images are needed to build.
    """

    def read(self, raw: Path) -> pl.DataFrame:
        """Return one record per field and z-plane, or per listed field without images."""
        files = walk(raw, (".tif", ".tiff"))
        if files:
            return self._from_images(raw, files)
        path = self.metadata_paths(raw)[0]
        table = read_delimited(path)
        name = first_column(table, ("Image_FileName_OrigDAPI", "Image_FileName_DAPI"))
        if name is None:
            require_columns(table, ["Image_FileName_OrigDAPI"], path)
        well = pl.col(name).str.extract(FIELD_RE, 1).str.to_uppercase()
        site = pl.col(name).str.extract(FIELD_RE, 2)
        return table.select(
            (well + "_s" + site).alias("key"),
            pl.lit("").alias("path"),
            pl.col(name).str.replace(r"_w\d.*$", "").alias("filename"),
            pl.concat_list(pl.col(name)).alias("channel_paths"),
            well.alias("well"),
            site.alias("site"),
            pl.lit(["f_nucleus"], pl.List(pl.String)).alias("channels"),
        )

    def _from_images(self, raw: Path, files: list[Path]) -> pl.DataFrame:
        frame = path_frame(raw, files).with_columns(
            pl.col("file").str.extract(r"z_(\d+)", 1).alias("z"),
            pl.col("name").str.extract(FIELD_RE, 1).str.to_uppercase().alias("well"),
            pl.col("name").str.extract(FIELD_RE, 2).alias("site"),
            pl.col("name").str.extract(FIELD_RE, 3).alias("w"),
        )
        frame = frame.filter(pl.all_horizontal(pl.col("z", "well", "site", "w").is_not_null()))
        return (
            frame.sort("w")
            .group_by("z", "dir", "well", "site", maintain_order=True)
            .agg(pl.col("file").alias("channel_paths"), pl.col("name").first())
            .select(
                ("z" + pl.col("z") + "_" + pl.col("well") + "_s" + pl.col("site")).alias("key"),
                pl.col("dir").alias("path"),
                pl.col("name").str.replace(r"_w\d.*$", "").alias("filename"),
                "channel_paths",
                "well",
                "site",
            )
            .sort("key")
        )


#: BBBC017 plate-map gene names that are controls, and their kind.
BBBC017_CONTROLS = {
    "EMPTY": "empty well",
    "shLuc": "negative control",
    "PGK-GFP": "negative control",
    "shLamin": "positive control",
}
#: ``AS_09125_<barcode>_<well>f<site>d<channel>.DIB`` (also ``_<well>_s<site>d<n>``).
DIB_RE = r"_([A-P]\d{2})(?:f|_s)(\d+)d(\d)\.[dD][iI][bB]$"


class Bbbc017Adapter(SourceAdapter):
    """BBBC017: the shRNA plate map, joined to the ``.DIB`` fields when they are present.

    Images: 28 plate folders (``NIRHTa-001`` … ``NIRHTa+014``, two replicates per plate
    number) × 384 wells × 6 fields, channels ``d0 d1 d2``. The plate number is the
    folder's trailing number (as the original did), joined to ``384-Plate#``. Without
    images the rows are the 5,760 *wells* of the plate map, with glob-pattern channel
    paths (the barcode in the file names is not in the map). ``class`` is the shRNA
    target's gene family (``kinase``, ``phosphatase``, ``;``-joined): a fact about the gene,
    not a phenotype seen in the image, so it is dropped; ``class_as_phenotype = True``
    restores the original's use of it as ``phenotype``.
    """

    class_as_phenotype: bool = False

    def read(self, raw: Path) -> pl.DataFrame:
        """Return one record per field (images present) or per plate-map well."""
        path = self.metadata_paths(raw)[0]
        plate_map = read_excel(path)
        require_columns(plate_map, ["384-Plate#", "384-well", "gene name", "class"], path)
        gene = pl.col("gene name")
        labels = plate_map.select(
            pl.col("384-Plate#").cast(pl.Int64, strict=False).alias("plate_no"),
            pl.col("384-well").str.to_uppercase().alias("well"),
            pl.when(gene.is_in(list(BBBC017_CONTROLS)) | (gene == "UNK"))
            .then(None)
            .otherwise(gene)
            .alias("gene"),
            gene.replace_strict(BBBC017_CONTROLS, default=None).alias("control"),
            pl.col("class")
            .str.split(";")
            .list.eval(pl.element().filter(~pl.element().str.starts_with("geneCards.")))
            .list.eval(pl.element().filter(pl.element() != "NONE"))
            .list.unique(maintain_order=True)
            .alias("phenotype"),
        )
        if not self.class_as_phenotype:
            labels = labels.drop("phenotype")
        files = walk(raw, (".dib",))
        if not files:
            return labels.select(
                pl.format("p{}_{}", pl.col("plate_no"), "well").alias("key"),
                pl.format("NIRHTa*{}", pl.col("plate_no").cast(pl.String).str.zfill(3)).alias(
                    "path"
                ),
                pl.col("well").alias("filename"),
                pl.concat_list(
                    pl.format(
                        "NIRHTa*{}/*_{}f*d" + str(d) + ".DIB",
                        pl.col("plate_no").cast(pl.String).str.zfill(3),
                        "well",
                    )
                    for d in range(3)
                ).alias("channel_paths"),
                pl.col("plate_no").cast(pl.String).alias("plate"),
                "well",
                pl.exclude("plate_no", "well"),
            )
        frame = path_frame(raw, files).with_columns(
            pl.col("dir").str.extract(r"([^/]*)$").alias("plate"),
            pl.col("name").str.extract(DIB_RE, 1).alias("well"),
            pl.col("name").str.extract(DIB_RE, 2).alias("site"),
            pl.col("name").str.extract(DIB_RE, 3).alias("d"),
        )
        fields = (
            frame.filter(pl.col("well").is_not_null())
            .with_columns(
                pl.col("plate").str.extract(r"(\d+)\D*$").cast(pl.Int64).alias("plate_no")
            )
            .sort("d")
            .group_by("dir", "plate", "plate_no", "well", "site", maintain_order=True)
            .agg(pl.col("file").alias("channel_paths"), pl.col("name").first())
        )
        return (
            fields.join(labels, on=["plate_no", "well"], how="left")
            .select(
                (pl.col("plate") + "_" + pl.col("well") + "_s" + pl.col("site")).alias("key"),
                pl.col("dir").alias("path"),
                pl.col("name").str.replace(r"d\d\.[dD][iI][bB]$", "").alias("filename"),
                "channel_paths",
                "plate",
                "well",
                "site",
                pl.exclude("dir", "plate", "plate_no", "well", "site", "name", "channel_paths"),
            )
            .sort("key")
        )


#: DSB2018 ``Usage`` → the folder its images are published in.
BBBC038_SPLITS = {
    "Public": "stage1_test",
    "Private": "stage2_test_final",
    "Ignored": "stage2_test_final",
}


class Bbbc038Adapter(SourceAdapter):
    """BBBC038 (DSB2018): one record per ``ImageId`` at ``<split>/<id>/images/<id>.png``.

    Solution CSVs name the split by ``Usage`` (``Public`` → ``stage1_test``, ``Private``
    and ``Ignored`` → ``stage2_test_final``); ``stage1_train_labels.csv`` (no ``Usage``)
    lists ``stage1_train``. Image folders present on disk are enumerated too, so the
    ``stage1_train`` tree alone is enough. No class labels: the catalog's constants apply.
    """

    def read(self, raw: Path) -> pl.DataFrame:
        """Return one record per image, from the CSVs and any image folders present."""
        parts = [self._from_images(raw)]
        for path in find_files(raw, self.info.metadata_files):
            table = read_delimited(path)
            require_columns(table, ["ImageId"], path)
            split = (
                pl.col("Usage").replace_strict(BBBC038_SPLITS, default="stage2_test_final")
                if "Usage" in table.columns
                else pl.lit("stage1_train")
            )
            parts.append(table.select(pl.col("ImageId").alias("id"), split.alias("split")))
        frame = pl.concat(parts).unique("id", keep="first", maintain_order=True)
        if frame.height == 0:
            self.metadata_paths(raw)  # raises the standard "no metadata" error
        folder = pl.col("split") + "/" + pl.col("id") + "/images"
        return frame.select(
            pl.col("id").alias("key"),
            folder.alias("path"),
            (pl.col("id") + ".png").alias("filename"),
            pl.concat_list(folder + "/" + pl.col("id") + ".png").alias("channel_paths"),
            # No plates: the images come from many labs; the split is in the path, not a plate.
        ).sort("key")

    @staticmethod
    def _from_images(raw: Path) -> pl.DataFrame:
        frame = path_frame(raw, walk(raw, (".png",)))
        parsed = frame["file"].str.extract_groups(r"(?:^|/)([^/]+)/([^/]+)/images/([^/]+)\.png$")
        return (
            frame.with_columns(parsed.struct.rename_fields(["split", "id", "stem"]).alias("m"))
            .unnest("m")
            .filter(pl.col("id") == pl.col("stem"))
            .select("id", "split")
        )


#: BBBC041 categories that are a stage of the parasite inside a red blood cell.
BBBC041_STAGES = ("ring", "trophozoite", "schizont", "gametocyte")


class Bbbc041Adapter(SourceAdapter):
    """BBBC041 (malaria): one record per annotated *object* in ``training.json``/``test.json``.

    The key is the image stem plus the box, ``<stem>_r<r0>-<r1>_c<c0>-<c1>`` (stable,
    independent of list order); the record's ``filename`` is the smear image and the box
    is only in the key, since the record contract has no box columns. The smears are human
    blood infected with *Plasmodium vivax*: a ``red blood cell`` or ``leukocyte`` box is
    that human cell type; a parasite-stage box (ring, trophozoite, schizont, gametocyte)
    is an infected red blood cell, so its cell type is ``red blood cell``, its organisms
    human and *P. vivax*, and the stage its phenotype (``ring stage`` …). ``difficult``
    boxes (no class given by the annotators) are kept but excluded.
    """

    def read(self, raw: Path) -> pl.DataFrame:
        """Return one record per bounding box of every JSON file present."""
        parts = []
        for path in self.metadata_paths(raw):
            try:
                table = pl.DataFrame(json.loads(path.read_text(encoding="utf-8")))
            except (ValueError, OSError) as exc:
                raise MetadataError(f"{path}: not the BBBC041 JSON ({exc})") from exc
            require_columns(table, ["image", "objects"], path)
            base = relpath(path.parent, raw)
            base = f"{base}/" if base != "." else ""
            parts.append(
                table.select(
                    (
                        base + pl.col("image").struct.field("pathname").str.strip_chars_start("/")
                    ).alias("file"),
                    "objects",
                )
            )
        box = pl.col("bounding_box")
        frame = (
            pl.concat(parts)
            .explode("objects")
            .unnest("objects")
            .with_columns(
                *(
                    box.struct.field(end).struct.field(axis).cast(pl.String).alias(f"{axis}{i}")
                    for i, end in enumerate(("minimum", "maximum"))
                    for axis in ("r", "c")
                ),
                pl.col("file").str.extract(r"([^/]*)$").alias("filename"),
            )
        )
        stem = pl.col("filename").str.replace(r"\.\w+$", "")
        key = pl.format("{}_r{}-{}_c{}-{}", stem, "r0", "r1", "c0", "c1")
        frame = frame.with_columns(key.alias("key")).unique(
            ["key", "category"], maintain_order=True
        )
        # The same box given two categories: keep both, told apart by category.
        dup = pl.col("key").is_duplicated()
        category = pl.col("category").str.to_lowercase()
        difficult = category == "difficult"
        stage = category.is_in(list(BBBC041_STAGES))
        return frame.select(
            pl.when(dup).then(pl.col("key") + "_" + category).otherwise("key").alias("key"),
            pl.col("file").str.replace(r"/?[^/]*$", "").alias("path"),
            "filename",
            pl.concat_list("file").alias("channel_paths"),
            pl.when(difficult)
            .then(None)
            .when(stage)
            .then(pl.lit("red blood cell"))
            .otherwise(pl.col("category"))
            .alias("cell_type"),
            pl.when(stage).then(category + " stage").alias("phenotype"),
            pl.when(stage)
            .then(pl.lit("human|plasmodium vivax"))
            .otherwise(pl.lit("human"))
            .alias("organism"),
            pl.when(difficult)
            .then(pl.lit("bbbc041 box marked 'difficult': no class given"))
            .alias("exclude_reason"),
        ).sort("key")


register(Bbbc006Adapter("bbbc006"))
register(Bbbc017Adapter("bbbc017"))
register(Bbbc021Adapter("bbbc021"))
register(Bbbc038Adapter("bbbc038"))
register(Bbbc041Adapter("bbbc041"))
