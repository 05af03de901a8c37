"""The text of each page of a PDF that headless Chromium (Skia) printed, read with the standard
library only: page objects in order, their content streams (FlateDecode), and each font's ToUnicode
CMap to turn the glyph codes of Tj/TJ back into characters. Enough for Skia's output (plain objects,
no object streams); not a general PDF parser."""
import re
import zlib

_OBJ = re.compile(rb"(\d+) 0 obj(.*?)endobj", re.S)
_REF = rb"(\d+) 0 R"


def _objects(pdf):
    return dict((int(m.group(1)), m.group(2)) for m in _OBJ.finditer(pdf))


def _stream(obj):
    m = re.search(rb"stream\r?\n(.*)endstream", obj, re.S)
    if not m:
        return b""
    data = m.group(1)
    return zlib.decompress(data) if b"/FlateDecode" in obj.split(b"stream", 1)[0] else data


def _cmap(text):
    """{code (int): unicode str} from a ToUnicode CMap's bfchar and bfrange sections."""
    out = {}
    for block in re.findall(rb"beginbfchar(.*?)endbfchar", text, re.S):
        for src, dst in re.findall(rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>", block):
            out[int(src, 16)] = bytes.fromhex(dst.decode()).decode("utf-16-be", "replace")
    for block in re.findall(rb"beginbfrange(.*?)endbfrange", text, re.S):
        for lo, hi, dst in re.findall(rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>", block):
            base = int(dst, 16)
            for i, code in enumerate(range(int(lo, 16), int(hi, 16) + 1)):
                out[code] = chr(base + i)
    return out


def _fonts(objs, page):
    fonts = {}
    m = re.search(rb"/Font\s*<<(.*?)>>", page, re.S)
    for name, ref in re.findall(rb"/(\w+)\s+" + _REF, m.group(1) if m else b""):
        font = objs.get(int(ref), b"")
        to_unicode = re.search(rb"/ToUnicode\s+" + _REF, font)
        width = 1
        descendant = re.search(rb"/DescendantFonts\s*\[\s*" + _REF, font)
        if b"/Type0" in font or descendant:
            width = 2
        fonts[name] = (_cmap(_stream(objs[int(to_unicode.group(1))])) if to_unicode else {}, width)
    return fonts


def _decode(hexes, font):
    cmap, width = font
    raw = bytes.fromhex(hexes.decode())
    codes = [int.from_bytes(raw[i:i + width], "big") for i in range(0, len(raw), width)]
    return "".join(cmap.get(c, "?") for c in codes)


def _page_order(objs, number):
    """Page object numbers under the page tree node ``number``, depth first (the reading order)."""
    node = objs[number]
    if not re.search(rb"/Type\s*/Pages\b", node):
        return [number]
    kids = re.search(rb"/Kids\s*\[(.*?)\]", node, re.S)
    return [page for ref in re.findall(_REF, kids.group(1) if kids else b"") for page in _page_order(objs, int(ref))]


def pages_text(pdf):
    """[text of page 1, text of page 2, ...] in page order."""
    objs = _objects(pdf)
    catalog = next(o for o in objs.values() if re.search(rb"/Type\s*/Catalog\b", o))
    order = _page_order(objs, int(re.search(rb"/Pages\s+" + _REF, catalog).group(1)))
    texts = []
    for number in order:
        page = objs[number]
        fonts = _fonts(objs, page)
        contents = re.search(rb"/Contents\s+" + _REF, page)
        stream = _stream(objs[int(contents.group(1))]) if contents else b""
        font, parts = None, []
        for token in re.finditer(rb"/(\w+)\s+[\d.]+\s+Tf|\[(.*?)\]\s*TJ|<([0-9A-Fa-f]*)>\s*Tj|(ET)", stream, re.S):
            if token.group(1):
                font = fonts.get(token.group(1), ({}, 1))
            elif token.group(2) is not None and font:
                parts.append("".join(_decode(h, font) for h in re.findall(rb"<([0-9A-Fa-f]*)>", token.group(2))))
            elif token.group(3) is not None and font:
                parts.append(_decode(token.group(3), font))
            elif token.group(4):
                parts.append("\n")
        texts.append("".join(parts))
    return texts
