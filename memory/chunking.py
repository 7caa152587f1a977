"""Owner documents to memory-sized chunks, with overlap, aware of the language.

- Python: top-level definitions stay whole where they fit (one function, one class), found with
  `ast`; a file that does not parse is chunked as plain code.
- Markdown, reStructuredText and plain text: paragraphs, never split mid-paragraph if it fits.
- Other code: blocks between blank lines, then lines.
Units larger than a chunk are cut at line boundaries (and an over-long line at characters).
Consecutive chunks share up to `overlap` characters of whole units.
"""

from dataclasses import dataclass
from pathlib import PurePosixPath

from agents import pysource

PROSE = {".md", ".markdown", ".rst", ".txt", ""}


class DocumentError(ValueError):
    pass


@dataclass
class Chunk:
    text: str
    first_line: int
    last_line: int


@dataclass
class _Unit:
    text: str
    first_line: int  # 1-based
    last_line: int


def check_size(name, size, max_bytes):
    if size > max_bytes:
        raise DocumentError(f"{name}: {size:,} bytes is over the {max_bytes:,}-byte limit for one document")


def decode(name, data, max_bytes):
    """The document's text, or DocumentError for what cannot be remembered."""
    check_size(name, len(data), max_bytes)
    if b"\x00" in data:
        raise DocumentError(f"{name}: a binary file (it contains NUL bytes); upload text or source code")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DocumentError(f"{name}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    if not text.strip():
        raise DocumentError(f"{name}: the document is empty")
    return text.replace("\r\n", "\n")


def _blocks(lines, first=1):
    """Runs of non-blank lines (paragraphs or code blocks)."""
    units, start = [], None
    for i, line in enumerate(lines + [""]):
        if line.strip() and start is None:
            start = i
        elif not line.strip() and start is not None:
            units.append(_Unit("\n".join(lines[start:i]), first + start, first + i - 1))
            start = None
    return units


def _python_units(text, lines):
    try:
        tree = pysource.parse(text)
    except SyntaxError:
        return None
    units, start = [], 0
    for node in tree.body:
        begin = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])]) - 1
        while begin > start and lines[begin - 1].lstrip().startswith("#"):  # its leading comments
            begin -= 1
        if begin > start:
            units += _blocks(lines[start:begin], start + 1)
        units.append(_Unit("\n".join(lines[begin : node.end_lineno]), begin + 1, node.end_lineno))
        start = node.end_lineno
    return units + _blocks(lines[start:], start + 1)


def _split(unit, size):
    """A unit larger than `size` as line windows (an over-long line as character slices)."""
    out, buf, first = [], [], unit.first_line
    for offset, line in enumerate(unit.text.split("\n")):
        number = unit.first_line + offset
        while len(line) > size:
            if buf:
                out.append(_Unit("\n".join(buf), first, number - 1))
                buf = []
            out.append(_Unit(line[:size], number, number))
            line = line[size:]
        if buf and len("\n".join(buf)) + 1 + len(line) > size:
            out.append(_Unit("\n".join(buf), first, number - 1))
            buf = []
        if not buf:
            first = number
        buf.append(line)
    if buf and "".join(buf).strip():
        out.append(_Unit("\n".join(buf), first, unit.first_line + unit.text.count("\n")))
    return out


def chunk(name, text, size=1000, overlap=200):
    """The document as chunks of at most `size` characters."""
    if overlap >= size:
        raise ValueError("overlap must be smaller than the chunk size")
    lines = text.split("\n")
    suffix = PurePosixPath(name).suffix.lower()
    units = _python_units(text, lines) if suffix == ".py" else None
    if units is None:
        units = _blocks(lines)
    units = [piece for unit in units for piece in (_split(unit, size) if len(unit.text) > size else [unit])]

    chunks, current = [], []
    for unit in units:
        if current and sum(len(u.text) + 2 for u in current) + len(unit.text) > size:
            chunks.append(current)
            carried = []
            for previous in reversed(current):  # overlap: trailing whole units that fit
                if sum(len(u.text) + 2 for u in carried) + len(previous.text) > overlap:
                    break
                carried.insert(0, previous)
            while carried and sum(len(u.text) + 2 for u in carried) + len(unit.text) > size:
                carried.pop(0)
            current = carried
        current.append(unit)
    if current:
        chunks.append(current)
    return [Chunk("\n\n".join(u.text for u in c), c[0].first_line, c[-1].last_line) for c in chunks]
