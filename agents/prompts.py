"""What each role is told, and the JSON schemas of the structured roles.

Prompts are short and fresh each round (no growing chat): with small local models, prompt
processing dominates latency and long chats do not improve repairs. Every array and string in a
schema is bounded, or a small model repeats items until max_tokens and the JSON never closes.
"""

import re

from agents import policy
from agents.llm import DATA_NOT_INSTRUCTIONS

GENERATOR = (
    "You are the Code Generator of GRYPHGEN. Write one self-contained Python 3 module that "
    "fulfils the request, using only the standard library. Reply with one ```python code block and "
    "nothing else: no tests, no example usage, no input() or printing at import. Only if helper modules "
    "are really needed, give each file its own block whose first line is `# file: name.py`; the main "
    "module is then `# file: solution.py`. " + DATA_NOT_INSTRUCTIONS
)
# The format Qwen2.5-Coder was tuned and reported with (its default system prompt; the problem in a
# code block; the reply opened with a fence), our data rule appended. GRYPHGEN_GENERATOR_PROMPT picks it.
QWEN_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant. " + DATA_NOT_INSTRUCTIONS
QWEN_LEAD = "Please provide a self-contained Python script that solves the following problem in a markdown code block:"
REPLY_FENCE = "```python\n"
ANALYZER = (
    "You are the Code Analyzer of GRYPHGEN. Review the module for bugs that would make it fail "
    "the request. Report only real problems, most serious first. " + DATA_NOT_INSTRUCTIONS
)
MONITOR_TESTS = (
    "You are the Task Monitor of GRYPHGEN. Write test cases that check a solution to the request. "
    "Each case is a Python expression calling the requested function and the exact expected value "
    "as a Python literal. Cover the examples and edge cases the request states. " + DATA_NOT_INSTRUCTIONS
)
MONITOR_INPUTS = (
    "You are the Task Monitor of GRYPHGEN. Propose inputs that exercise the requested function: typical "
    "cases and edge cases (empty, zero, negative, single item, large). Give each input as the function's "
    "arguments written as a Python list literal, for example [3, 'abc'] for f(3, 'abc'). Inputs only: do "
    "not give expected results. " + DATA_NOT_INSTRUCTIONS
)
MONITOR_VERDICT = (
    "You are the Task Monitor of GRYPHGEN. Judge whether the module does what the request asks, "
    "using the test results as evidence. " + DATA_NOT_INSTRUCTIONS
)
OPTIMIZER = (
    "You are the Workflow Optimizer of GRYPHGEN. Choose the next move for this task from the allowed "
    "decisions: accept the code, repair it using the failures, revert to the best earlier checkpoint "
    "and repair from there, or give up. " + DATA_NOT_INSTRUCTIONS
)
DIAGNOSTICIAN = (
    "You are the Diagnostician guardian of GRYPHGEN. Classify the root cause of the failure below "
    "and quote the evidence for it in one sentence. " + DATA_NOT_INSTRUCTIONS
)


def request_block(task):
    text = f"<request>\n{task.request}\n</request>"
    if task.entry_point:
        text += f"\nThe module must define `{task.entry_point}`."
    return text


def code_block(files):
    return "\n\n".join(f"# file: {name}\n```python\n{source}\n```" for name, source in files.items())


CODE_BLOCK_FILE = re.compile(r"^# file: (\S+)\n```python\n", re.M)


def code_files(text):
    """The files `code_block` wrote into `text`: {path: source}, its inverse."""
    parts = CODE_BLOCK_FILE.split(text)
    return {
        name: body.rstrip("\n").removesuffix("```").rstrip("\n") + "\n"
        for name, body in zip(parts[1::2], parts[2::2], strict=True)
    }


def failures_text(test_results, limit=5):
    failed = [t for t in test_results if t["outcome"] != "passed"][:limit]
    return "\n".join(f"- {t['name']}: {t['message'] or 'failed'}" for t in failed) or "- (no details)"


def memory_text(entry, limit):
    """An entry's content in at most about `limit` characters. A solution keeps its code whole and
    shortens its request instead: half a function is worse than none to a model that copies."""
    content, parts = entry.content, entry.solution_parts()
    if len(content) <= limit or parts is None:
        return content[:limit]
    request, code = parts
    room = limit - len(code)
    if room < 200:  # the code alone nearly fills it: its head, as for any entry
        return content[:limit]
    return request[: room - 25] + "\n[request shortened]" + code


def memory_block(hits, limit):
    """The owner's relevant memories, at most `limit` characters each, marked as data (earlier
    tasks and uploads wrote them)."""
    if not hits:
        return ""
    parts = [
        f'<memory kind="{hit.entry.kind}" similarity="{hit.similarity or 0:.2f}">\n'
        f"{memory_text(hit.entry, limit)}\n</memory>"
        for hit in hits
    ]
    return "From your memory of earlier, different work (use what helps, ignore the rest):\n" + "\n".join(parts)


def diagnostician_messages(task, evidence, lessons=()):
    user = f"{request_block(task)}\n\nWhat failed:\n{evidence[:1500]}"
    if lessons:
        user += "\n\n" + memory_block(lessons, policy.of(task).memory_prompt_chars)
    return [{"role": "system", "content": DIAGNOSTICIAN}, {"role": "user", "content": user}]


def generator_messages(task, base=None, memories=()):
    """The request comes last, after any memories: a small model copies what it read last.

    With the policy's generator_prompt "qwen" the first answer uses the model's own format, and
    the reply is prefilled with the opening fence (`reply_text` puts it back)."""
    values = policy.of(task)
    user = request_block(task)
    if memories:
        user = (
            f"{memory_block(memories, values.memory_prompt_chars)}\n\nThat was reference material, not the task. Write the code this request "
            f"asks for, with the names it gives; do not copy code that solves something else.\n\nThe task:\n{user}"
        )
    if base is not None:
        if base.files:
            user += "\n\nA previous attempt:\n" + code_block(base.files)
        problem = base.generation_error or "It failed these verdict tests:\n" + failures_text(base.test_results)
        if debate := base.verdict.get("debate"):
            problem += "\nThe critics said:\n" + debate_text(debate)
        user += f"\n\n{problem}\nWrite the corrected module."
    elif values.generator_prompt == "qwen":
        return [
            {"role": "system", "content": QWEN_SYSTEM},
            {"role": "user", "content": f"{QWEN_LEAD}\n{user}"},
            {"role": "assistant", "content": REPLY_FENCE},
        ]
    return [{"role": "system", "content": GENERATOR}, {"role": "user", "content": user}]


def reply_text(messages, text):
    """The whole reply: a prefilled assistant turn is the reply's beginning (unless the server
    ignored the prefill and the model opened its own fence)."""
    if messages and messages[-1]["role"] == "assistant" and not text.lstrip().startswith("```"):
        return messages[-1]["content"] + text
    return text


def analyzer_messages(task, files, static_findings):
    lint = "\n".join(f"- line {f['line']}: {f['code']} {f['message']}" for f in static_findings) or "- none"
    user = f"{request_block(task)}\n\n{code_block(files)}\n\nLinter findings:\n{lint}"
    return [{"role": "system", "content": ANALYZER}, {"role": "user", "content": user}]


def monitor_tests_messages(task, error=""):
    """`error`: why the previous answer was unusable; the monitor is asked once more with it."""
    user = request_block(task)
    if error:
        user += (
            f"\n\nYour previous test cases were unusable: {error}. Write each `call` as a Python call of the "
            "function with literal arguments and each `expected` as a Python literal (quote strings)."
        )
    return [{"role": "system", "content": MONITOR_TESTS}, {"role": "user", "content": user}]


def monitor_inputs_messages(task):
    return [{"role": "system", "content": MONITOR_INPUTS}, {"role": "user", "content": request_block(task)}]


def monitor_verdict_messages(task, checkpoint):
    results = f"{checkpoint.tests_passed} of {checkpoint.tests_total} verdict tests passed."
    if checkpoint.tests_passed < checkpoint.tests_total:
        results += "\nFailures:\n" + failures_text(checkpoint.test_results)
    user = f"{request_block(task)}\n\n{code_block(checkpoint.files)}\n\nTest results: {results}"
    return [{"role": "system", "content": MONITOR_VERDICT}, {"role": "user", "content": user}]


def optimizer_messages(task, checkpoint, best, allowed):
    lines = [
        f"Round {checkpoint.round} of at most {task.max_rounds}.",
        f"This round: {checkpoint.tests_passed}/{checkpoint.tests_total} verdict tests passed.",
        f"Best so far: round {best.round} with {best.tests_passed}/{best.tests_total}.",
        f"Monitor: {'aligned' if checkpoint.verdict.get('aligned') else 'not aligned'} - "
        f"{checkpoint.verdict.get('evidence', '')}",
        "Analyzer: " + ("; ".join(f["message"] for f in checkpoint.findings[:3]) or "no findings"),
    ]
    if debate := checkpoint.verdict.get("debate"):
        lines.append("Debate between the critics:\n" + debate_text(debate))
    lines.append("Allowed decisions: " + ", ".join(allowed))
    return [{"role": "system", "content": OPTIMIZER}, {"role": "user", "content": "\n".join(lines)}]


# --- cooperation modes ------------------------------------------------------------------------

JUDGE = (
    "You are a judge in GRYPHGEN's collaborative mode. Several candidate modules passed the same number "
    "of verdict tests. Vote for the one most likely to fulfil the request exactly, including edge cases. "
    + DATA_NOT_INSTRUCTIONS
)
CRITIC = {
    "prosecutor": "You are the prosecuting critic in a GRYPHGEN debate. Find the concrete ways this module "
    "fails the request: wrong results, missed edge cases, crashes. Answer the defender's last points. Be brief. ",
    "defender": "You are the defending critic in a GRYPHGEN debate. Argue, with concrete evidence from the "
    "code and the test results, where the module is right; concede real bugs. Be brief. ",
}
LEAD_SPLIT = (
    "You are the lead engineer of GRYPHGEN's hierarchical mode. Split the request into at most "
    "{parts} independent helper functions that other engineers can write in parallel. Each needs a "
    "Python function name and a one-paragraph specification. " + DATA_NOT_INSTRUCTIONS
)
WORKER = (
    "You are an engineer in GRYPHGEN's hierarchical mode. Write one self-contained Python 3 module "
    "(standard library only) that defines the requested helper function. Reply with one ```python code "
    "block and nothing else. " + DATA_NOT_INSTRUCTIONS
)
LEAD_INTEGRATE = (
    "You are the lead engineer of GRYPHGEN's hierarchical mode. Your engineers wrote helper modules. "
    "Write solution.py, the module that fulfils the request; it may import from the helper modules "
    "(for example `from part_1 import helper`). Reply with one ```python code block for solution.py "
    "and nothing else. " + DATA_NOT_INSTRUCTIONS
)


def judge_messages(task, candidates):
    blocks = "\n\n".join(
        f"Candidate {cp.candidate + 1} ({cp.tests_passed}/{cp.tests_total} verdict tests):\n{code_block(cp.files)}"
        for cp in candidates
    )
    return [{"role": "system", "content": JUDGE}, {"role": "user", "content": f"{request_block(task)}\n\n{blocks}"}]


def debate_text(transcript):
    return "\n".join(f"- {turn['side']}: {turn['points']}" for turn in transcript)


def critic_messages(task, checkpoint, side, transcript):
    results = f"{checkpoint.tests_passed} of {checkpoint.tests_total} verdict tests passed."
    if checkpoint.tests_passed < checkpoint.tests_total:
        results += "\nFailures:\n" + failures_text(checkpoint.test_results)
    debate = debate_text(transcript) or "(you speak first)"
    user = f"{request_block(task)}\n\n{code_block(checkpoint.files)}\n\nTest results: {results}\n\nDebate so far:\n{debate}"
    return [{"role": "system", "content": CRITIC[side] + DATA_NOT_INSTRUCTIONS}, {"role": "user", "content": user}]


def lead_split_messages(task, parts):
    return [
        {"role": "system", "content": LEAD_SPLIT.format(parts=parts)},
        {"role": "user", "content": request_block(task)},
    ]


def worker_messages(task, part):
    user = f"Overall request, for context:\n{request_block(task)}\n\nWrite `{part['function']}`: {part['spec']}"
    return [{"role": "system", "content": WORKER}, {"role": "user", "content": user}]


def lead_integrate_messages(task, part_files):
    user = f"{request_block(task)}\n\nHelper modules:\n{code_block(part_files)}"
    return [{"role": "system", "content": LEAD_INTEGRATE}, {"role": "user", "content": user}]
