"""Parsing Python text from owners and models: one way, which fails only with SyntaxError.

`ast.parse` raises RecursionError for code nested deeper than the compiler's stack, MemoryError
for huge input and ValueError for NUL bytes; each of those is bad input too, never a crash.
"""

import ast


def parse(source: str, filename: str = "<unknown>", mode: str = "exec") -> ast.AST:
    try:
        return ast.parse(source, filename, mode)
    except (RecursionError, MemoryError, ValueError) as exc:
        error = SyntaxError(f"cannot be parsed ({type(exc).__name__}: nested too deeply, too large or not text)")
        error.lineno = 1
        raise error from exc
