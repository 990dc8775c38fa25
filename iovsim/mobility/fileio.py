"""File formats shared by the mobility readers and writers: CSV dialects, escaped XML, gzip by name."""
from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path
from xml.etree import ElementTree


def sniff_dialect(text: str, delimiters: str = ",;\t"):
    """The CSV dialect of `text` (csv.Sniffer on its first lines); plain comma-separated when it cannot tell."""
    sample = "\n".join(text.splitlines()[:50])
    try:
        return csv.Sniffer().sniff(sample, delimiters=delimiters)
    except csv.Error:
        return csv.excel


def open_text(path: str | Path, mode: str = "r"):
    """A text file, gzip-compressed when its name ends in .gz (as SUMO reads any input); `mode` r or w.
    Written gzip files carry no time stamp, so the same content gives the same bytes."""
    path = Path(path)
    if path.name.endswith(".gz"):
        if mode.startswith("w"):
            return io.TextIOWrapper(gzip.GzipFile(path, "wb", mtime=0), encoding="utf-8")
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, mode, encoding="utf-8")


def gzip_copy(src: str | Path, dst: str | Path) -> Path:
    """Compress `src` into `dst` (no time stamp in the header: the same file gives the same bytes)."""
    import shutil

    with open(src, "rb") as fin, gzip.GzipFile(dst, "wb", mtime=0) as fout:
        shutil.copyfileobj(fin, fout)
    return Path(dst)


def write_xml(path: str | Path, root: ElementTree.Element, comment: str = "") -> Path:
    """Write `root` indented, with an XML declaration and an optional leading comment (values escaped);
    gzip-compressed when the name ends in .gz."""
    ElementTree.indent(root, space="    ")
    head = '<?xml version="1.0" encoding="UTF-8"?>\n'
    if comment:
        head += ElementTree.tostring(ElementTree.Comment(f" {comment} "), encoding="unicode") + "\n"
    with open_text(path, "w") as f:
        f.write(head + ElementTree.tostring(root, encoding="unicode") + "\n")
    return Path(path)
