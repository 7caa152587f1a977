"""Answering from memory: a request the owner has had solved before gets the accepted code back,
without a model call, when that code passes this request's verdict tests.

A remembered solution is a candidate when it is among the owner's best-ranked solution memories
for the request (the hybrid search, at any cosine: a short request scores low against a memory
that is mostly code) and its request reads the same as this one once each side's function name
is set aside (difflib ratio ≥ GRYPHGEN_MEMORY_REUSE_MATCH). If only the name differs, the new
name is bound to the remembered function. The verdict tests decide in the sandbox, as for
generated code; a candidate that fails them costs one sandbox run and no round. A solution whose
deployment was rolled back is never a candidate. Nothing here executes code on the host: the
remembered code is only parsed.
"""

import ast
import difflib
import re
from dataclasses import dataclass

from agents import code_gate, policy, prompts, pysource, verdict
from memory import recall
from memory.models import MemoryEntry


@dataclass
class Candidate:
    entry: MemoryEntry
    match: float  # how alike the two requests read, 0..1
    files: dict  # the remembered code, with this request's name bound


def request_match(request, name, other, other_name, floor):
    """How alike two requests read, 0..1, with each one's entry point replaced by the same word
    (0 when difflib's cheap upper bound is already below `floor`)."""

    def normal(text, entry_point):
        if entry_point:
            text = re.sub(rf"\b{re.escape(entry_point)}\b", "ENTRY_POINT", text)
        return " ".join(text.split())

    a, b = normal(request, name), normal(other, other_name)
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    return matcher.ratio() if matcher.real_quick_ratio() >= floor else 0.0


def remembered_files(code, old_name, new_name):
    """A solution memory's code as files, with `new_name` bound to `old_name`'s function; None if unusable."""
    files = prompts.code_files(code)
    try:  # memory is text an admin can edit: it passes the same gate as generated code
        code_gate.code_files(files)
    except code_gate.Refused:
        return None
    source = files.get("solution.py")
    if source is None:
        return None
    try:
        tree = pysource.parse(source)
    except SyntaxError:
        return None
    defined = {node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}
    if not new_name or new_name in defined:
        return files
    if old_name not in defined:
        return None
    return {**files, "solution.py": f"{source.rstrip()}\n\n\n{new_name} = {old_name}  # this request's name\n"}


def candidate(task):
    """The remembered solution most worth trying for `task`, or None."""
    floor = policy.of(task).memory_reuse_match
    if floor > 1:  # reuse turned off
        return None
    best = None
    for hit in recall.recall(task, task.request, (MemoryEntry.Kind.SOLUTION,), min_similarity=0.0):
        parts = hit.entry.solution_parts()
        if parts is None or hit.entry.metadata.get("rolled_back"):
            continue
        other, code = parts
        other_name = verdict.entry_point(other)
        match = request_match(task.request, task.entry_point, other, other_name, floor)
        if match < floor or (best and best.match >= match):
            continue
        if (files := remembered_files(code, other_name, task.entry_point)) is not None:
            best = Candidate(hit.entry, match, files)
    return best
