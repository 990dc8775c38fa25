"""File formats shared by the mobility readers and writers: CSV dialects and escaped XML."""
from __future__ import annotations

import csv
from pathlib import Path
from xml.etree import ElementTree


def sniff_dialect(text: str, delimiters: str = ",;\t"):
    """The CSV dialect of `text` (csv.Sniffer on its first lines); plain comma-separated when it cannot tell."""
    sample = "\n".join(text.splitlines()[:50])
    try:
        return csv.Sniffer().sniff(sample, delimiters=delimiters)
    except csv.Error:
        return csv.excel


def write_xml(path: str | Path, root: ElementTree.Element, comment: str = "") -> Path:
    """Write `root` indented, with an XML declaration and an optional leading comment (values escaped)."""
    ElementTree.indent(root, space="    ")
    head = '<?xml version="1.0" encoding="UTF-8"?>\n'
    if comment:
        head += ElementTree.tostring(ElementTree.Comment(f" {comment} "), encoding="unicode") + "\n"
    Path(path).write_text(head + ElementTree.tostring(root, encoding="unicode") + "\n", encoding="utf-8")
    return Path(path)
