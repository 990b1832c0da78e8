"""The layouts of the BBBC datasets labelled by file names: one :class:`Layout` each.

Importing this module registers a :class:`PathPatternAdapter` per dataset.
"""

from __future__ import annotations

from cytoimagenet.sources.base import register
from cytoimagenet.sources.bbbc_images import FOLDER, Derived, Layout, PathPatternAdapter

_WELL = r"(?P<well>(?P<row>[A-P])(?P<col>\d{2}))"
_UUID_TAIL = r"(?:[_-]?[^/]*)?"
#: BBBC013 and BBBC014 publish one layout: ``Channel N-NN-R-CC-00.BMP``, channel 2 the DNA.
_BBBC013_14_LAYOUT = Layout(
    suffixes=(".bmp",),
    pattern=FOLDER
    + r"Channel ?(?P<ch>[12])-(?P<n>\d+)-(?P<row>[A-H])-(?P<col>\d{2})(?:-\d+)?\.bmp",
    key="{folder}{row}{col}",
    channel="ch",
    channels=("2",),
    columns={"well": "{row}{col}"},
)
#: BBBC010: the published description splits the 384-well plate by column: columns 1-12
#: are the positive control (ampicillin, worms stay alive), 13-24 the negative control.
_BBBC010_LIVE = {f"{c:02d}": "alive" for c in range(1, 13)} | {
    f"{c:02d}": "dead" for c in range(13, 25)
}
#: BBBC051 class folders → cell types, as the original curation named them.
_KIDNEY = {
    "cd_cnt": "collecting duct",
    "dct": "distal convoluted tubule",
    "nestin": "podocyte",
    "tal": "thick ascending limb",
    "cd31int": "endothelial",
    "cd31glom": "endothelial",
    "s1s2": "proximal tubule segments",
    "s2s3": "proximal tubule segments",
    "cd45": "white blood cell",
}
_PHASES = {"g1": "g1 phase", "s": "s phase", "g2": "g2 phase"} | {
    p: p for p in ("prophase", "metaphase", "anaphase", "telophase")
}

LAYOUTS: dict[str, Layout] = {
    "bbbc005": Layout(
        suffixes=(".tif", ".tiff"),
        pattern=FOLDER
        + r"(?P<stem>SIMCEPImages_(?P<well>[A-P]\d{2})_C(?P<count>\d+)_F(?P<blur>\d+)"
        r"_s(?P<site>\d+)_w(?P<ch>[12]))\.tiff?",
        key="{folder}{stem}",
        channel="ch",
        channels=("2", "1"),
        merge=False,
        columns={"well": "{well}", "site": "{site}"},
        channel_labels={
            "1": {"cell_visible": "cell body"},
            "2": {"cell_visible": "nucleus"},
        },
        exclude=((r"ground_truth[^/]*/", "ground-truth mask of BBBC005, not a microscopy image"),),
    ),
    "bbbc010": Layout(
        suffixes=(".tif", ".tiff"),
        pattern=FOLDER
        + r"(?P<prefix>[^/]*?)_"
        + _WELL
        + r"_w(?P<ch>[12])"
        + _UUID_TAIL
        + r"\.tiff?",
        key="{folder}{prefix}_{well}",
        channel="ch",
        channels=("2", "1"),
        columns={"plate": "{prefix}", "well": "{well}"},
        derived={
            "phenotype": Derived("col", _BBBC010_LIVE),
            "compound": Derived("col", {f"{c:02d}": "ampicillin" for c in range(1, 13)}),
            "control": Derived(
                "col",
                {
                    c: ("positive control" if v == "alive" else "negative control")
                    for c, v in _BBBC010_LIVE.items()
                },
            ),
        },
    ),
    "bbbc011": Layout(
        suffixes=(".png",),
        pattern=FOLDER + r"(?P<stem>[^/]+)\.png",
        key="{folder}{stem}",
        ignore=(r"(?:^|/)__MACOSX/",),
    ),
    "bbbc012": Layout(
        suffixes=(".tif", ".tiff"),
        pattern=FOLDER
        + r"(?P<prefix>[^/]*?)_?"
        + _WELL
        + r"_w(?P<ch>[123])"
        + _UUID_TAIL
        + r"\.tiff?",
        key="{folder}{prefix}_{well}",
        channel="ch",
        channels=("1", "2", "3"),
        columns={"plate": "{prefix}", "well": "{well}"},
    ),
    "bbbc013": _BBBC013_14_LAYOUT,
    "bbbc014": _BBBC013_14_LAYOUT,
    "bbbc015": Layout(
        suffixes=(".jpg", ".jpeg", ".bmp"),
        pattern=FOLDER + r"(?P<image>\d+)_(?P<site>\d+)_(?P<ch>[01])\.(?:jpe?g|bmp)",
        key="{folder}{image}_{site}",
        channel="ch",
        channels=("1", "0"),
        columns={"site": "{site}"},
    ),
    "bbbc020": Layout(
        suffixes=(".tif", ".tiff"),
        pattern=FOLDER + r"(?P<image>[^/]+)_c(?P<ch>[15])\.tiff?",
        key="{folder}{image}",
        channel="ch",
        channels=("5", "1"),
        ignore=(r"_\(c1\+c5\)\.tiff?$", r"outlines"),
    ),
    "bbbc026": Layout(
        suffixes=(".png",),
        pattern=FOLDER
        + r"(?P<plate>[^/]+?)_(?P<well>[A-P]\d{2})_s(?P<site>\d+)_w(?P<ch>1)[^/]*\.png",
        key="{folder}{plate}_{well}_s{site}",
        channel="ch",
        channels=("1",),
        columns={"plate": "{plate}", "well": "{well}", "site": "{site}"},
    ),
    "bbbc045": Layout(
        suffixes=(".tif", ".tiff"),
        pattern=FOLDER + r"(?P<stem>[^/]+)\.tiff?",
        key="{folder}{stem}",
    ),
    "bbbc048": Layout(
        suffixes=(".jpg", ".jpeg"),
        pattern=FOLDER + r"(?P<phase>G1|S|G2|Prophase|Metaphase|Anaphase|Telophase)/"
        r"(?P<cell>[^/]+?)_Ch(?P<ch>[346])\.jpe?g",
        key="{folder}{phase}/{cell}",
        channel="ch",
        channels=("4", "3", "6"),
        derived={"phenotype": Derived("phase", _PHASES)},
    ),
    "bbbc051": Layout(
        suffixes=(".tif", ".tiff"),
        pattern=FOLDER
        + r"(?P<cls>CD_CNT|DCT|Nestin|TAL|CD31int|CD31glom|S1S2|S2S3|CD45)(?P<sub>\.\d+)?/"
        r"(?P<inner>(?:[^/]+/)*)(?P<stem>[^/]+)\.tiff?",
        key="{folder}{cls}{sub}/{inner}{stem}",
        derived={"cell_type": Derived("cls", _KIDNEY)},
    ),
}


for _name, _layout in LAYOUTS.items():
    register(PathPatternAdapter(_name, _layout))
