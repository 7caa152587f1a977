"""Documents are cut into chunks at definitions and paragraphs, with overlap (pure)."""

import itertools

import pytest

from memory import chunking


def test_python_is_chunked_at_definitions_with_overlap():
    functions = [f"def f{i}(x):\n    '''Doc {i}.'''\n" + "    x += 1\n" * 12 + "    return x\n" for i in range(12)]
    source = "import os\n\n\n" + "\n\n".join(functions)
    chunks = chunking.chunk("tools.py", source, size=600, overlap=200)
    assert len(chunks) > 3 and all(len(c.text) <= 600 for c in chunks)
    for piece in chunks:  # every function is whole inside a chunk: none is cut in the middle
        for i in range(12):
            if f"def f{i}(" in piece.text:
                assert functions[i].strip() in piece.text
    assert any(c.text.count("def ") >= 2 for c in chunks)  # small ones share a chunk
    shared = [set(a.text.split("\n\n")) & set(b.text.split("\n\n")) for a, b in itertools.pairwise(chunks)]
    assert all(shared)  # consecutive chunks overlap by whole units
    assert chunks[0].first_line == 1 and chunks[-1].last_line == source.count("\n")


def test_prose_long_lines_and_broken_python_still_chunk():
    prose = "\n\n".join(f"Paragraph {i}. " + "word " * 60 for i in range(10))
    chunks = chunking.chunk("notes.md", prose, size=1000, overlap=200)
    assert all(len(c.text) <= 1000 for c in chunks) and all(c.text.startswith("Paragraph") for c in chunks)
    assert len(chunking.chunk("x.py", "def broken(:\n" + "y" * 2500, size=1000, overlap=100)) == 4
    with pytest.raises(ValueError):
        chunking.chunk("x.txt", "text", size=100, overlap=100)
