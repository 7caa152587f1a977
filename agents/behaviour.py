"""What candidates *do*: extra inputs, and one sandbox run that records every candidate's outputs.

Consensus mode (agents/consensus.py) groups candidates whose outputs agree on every input. The
inputs need no expected values: the request's example inputs (read from the verdict tests),
type-aware mutations of them, and inputs the Task Monitor proposes (inputs only: a small model's
expected values are unreliable). Everything here parses text on the host; the candidates run only
inside the sandbox, all of one batch in a single run: a probe script there runs each candidate
in its own child process with a per-call and a per-candidate time limit, a memory limit and an
output cap, and reports which candidate hit which limit.
"""

import ast
import json
import random
from dataclasses import dataclass

from agents import pysource, sandbox
from agents.schemas import ProposedInput

PROBE_FILE = "gryphgen_probe.py"
SPEC_FILE = "gryphgen_probe.json"
RESULT_MARK = "GRYPHGEN-PROBE "
MAX_INPUT_CHARS = 300
OUTPUT_CHARS = 200  # of each output's repr: enough to tell results apart


# --- inputs -----------------------------------------------------------------------------------


def literal_args(call: ast.Call) -> str | None:
    """The call's positional arguments as a list literal, if all are literals (keywords: no)."""
    if call.keywords or any(isinstance(arg, ast.Starred) for arg in call.args):
        return None
    text = "[" + ", ".join(ast.unparse(arg) for arg in call.args) + "]"
    try:
        ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    return text if len(text) <= MAX_INPUT_CHARS else None


def calls_in(source: str, entry_point: str) -> list:
    """Argument lists of every literal call of `entry_point` in Python source or doctest text."""
    if "\n>>> " in "\n" + source:  # a doctest file: its `>>>` lines are the code
        source = "\n".join(line[4:] for line in source.splitlines() if line.startswith(">>> "))
    try:
        tree = pysource.parse(source)
    except SyntaxError:
        return []
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == entry_point:
            if (args := literal_args(node)) is not None:
                found.append(args)
    return found


def example_inputs(verdict_tests: dict, entry_point: str) -> list:
    """The inputs the verdict tests call the entry point with, in order, without repeats."""
    seen = []
    for name in sorted(verdict_tests or {}):
        for args in calls_in(verdict_tests[name], entry_point):
            if args not in seen:
                seen.append(args)
    return seen


def literal_output(output: str) -> str | None:
    """A probe output ("= <repr>") as a literal a test can compare with `==`, or None: raised,
    truncated (OUTPUT_CHARS), not a literal, or holding a float (the probe rounds floats)."""
    if not output.startswith("= ") or len(output) - 2 >= OUTPUT_CHARS:
        return None
    text = output[2:]
    try:
        value = ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None

    def exact(v):
        if isinstance(v, float | complex):
            return False
        if isinstance(v, list | tuple | set | frozenset):
            return all(exact(x) for x in v)
        if isinstance(v, dict):
            return all(exact(k) and exact(x) for k, x in v.items())
        return True

    return text if exact(value) else None


def parse_proposed(items: list[ProposedInput]) -> list:
    """The monitor's proposed argument lists that are literal lists; the rest are dropped."""
    inputs = []
    for item in items:
        text = item.args.strip()
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
        if isinstance(value, tuple):
            value = list(value)
        if isinstance(value, list) and len(repr(value)) <= MAX_INPUT_CHARS:
            inputs.append(repr(value))
    return inputs


def _variants(value) -> list:
    """Values of the same type near `value`: edge cases first."""
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        return [0, value + 1, value - 1, -value, value * 2 + 1] if abs(value) < 10**6 else [0, value + 1]
    if isinstance(value, float):
        return [0.0, value + 0.5, -value, value * 2]
    if isinstance(value, str):
        return ["", value[::-1], value.upper(), value[1:], value + value[:1], value.replace(" ", "  ")]
    if isinstance(value, list | tuple):
        kind = type(value)
        items = list(value)
        out = [kind(), kind(items[::-1]), kind(items[:-1]), kind(items + items[:1])]
        if items:
            out += [kind(items[1:]), kind([items[0]])]
            out += [kind([v, *items[1:]]) for v in _variants(items[0])[:2]]
        return out
    if isinstance(value, dict):
        keys = list(value)
        return [{}, {k: value[k] for k in keys[1:]}] if keys else []
    return []


def mutations(inputs: list, limit: int, seed: int = 0) -> list:
    """Up to `limit` new argument lists, each one argument of an example changed by its type.

    Deterministic for a seed; spread over the examples and arguments rather than exhausting one."""
    pools = []
    for text in inputs:
        args = ast.literal_eval(text)
        for position, value in enumerate(args):
            pool = []
            for variant in _variants(value):
                new = repr([*args[:position], variant, *args[position + 1 :]])
                if len(new) <= MAX_INPUT_CHARS:
                    pool.append(new)
            if pool:
                pools.append(pool)
    random.Random(seed).shuffle(pools)
    chosen, seen = [], set(inputs)
    while pools and len(chosen) < limit:
        for pool in list(pools):
            if not pool:
                pools.remove(pool)
                continue
            candidate = pool.pop(0)
            if candidate not in seen:
                seen.add(candidate)
                chosen.append(candidate)
                if len(chosen) >= limit:
                    break
    return chosen


# --- the batched run ------------------------------------------------------------------------------

PROBE = r'''
"""Run each candidate (a directory with solution.py) on every input, in its own child process."""
import ast, ctypes, json, os, resource, signal, subprocess, sys, time

def child(directory, entry, inputs, per_call, memory_bytes, out):
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # what the candidate prints goes nowhere; results go to `out`
    sys.stdout = open(os.devnull, "w")
    sys.path.insert(0, directory)
    def alarm(signum, frame):
        raise TimeoutError("per-call time limit")
    signal.signal(signal.SIGALRM, alarm)
    def emit(index, text):
        os.write(out, (json.dumps([index, text]) + "\n").encode())
    try:
        signal.setitimer(signal.ITIMER_REAL, per_call * 4)
        import solution
        signal.setitimer(signal.ITIMER_REAL, 0)
        function = getattr(solution, entry)
    except BaseException as exc:
        signal.setitimer(signal.ITIMER_REAL, 0)
        emit(-1, "import: " + type(exc).__name__)
        return
    for index, text in enumerate(inputs):
        try:
            signal.setitimer(signal.ITIMER_REAL, per_call)
            value = function(*ast.literal_eval(text))
            signal.setitimer(signal.ITIMER_REAL, 0)
            emit(index, "= " + shown(value))
        except TimeoutError:
            emit(index, "timeout")
        except BaseException as exc:
            signal.setitimer(signal.ITIMER_REAL, 0)
            emit(index, "raise " + type(exc).__name__)

def shown(value):
    def norm(v):
        if isinstance(v, float):
            return float("%.6g" % v)
        if isinstance(v, (list, tuple)):
            return type(v)(norm(x) for x in v)
        if isinstance(v, dict):
            return {k: norm(x) for k, x in v.items()}
        return v
    try:
        text = repr(norm(value))
    except BaseException as exc:
        text = "unprintable " + type(exc).__name__
    return text[:OUTPUT_CHARS]

def main():
    ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0: children cannot reach our fds
    spec = json.load(open(SPEC_FILE))
    report = {}
    for name in spec["candidates"]:
        read, write = os.pipe()
        started = time.monotonic()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            try:
                child(name, spec["entry"], spec["inputs"], spec["per_call"], spec["memory_bytes"], write)
            finally:
                os._exit(0)
        os.close(write)
        data, status, cap = b"", "ok", spec["output_bytes"]
        os.set_blocking(read, False)
        while True:
            try:
                chunk = os.read(read, 65536)
            except BlockingIOError:
                chunk = None
            if chunk == b"":
                break
            if chunk:
                data += chunk
                if len(data) > cap:
                    status = "output"
                    break
            if time.monotonic() - started > spec["per_candidate"]:
                status = "time"
                break
            if chunk is None:
                time.sleep(0.005)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _, code = os.waitpid(pid, 0)
        os.close(read)
        if status == "ok" and os.WIFSIGNALED(code):
            status = "killed"
        outputs = ["missing"] * len(spec["inputs"])
        for line in data[:cap].decode("utf-8", "replace").splitlines():
            try:
                index, text = json.loads(line)
            except (ValueError, TypeError):
                continue
            if index == -1:
                outputs = [text] * len(spec["inputs"])
                status = "crashed" if status == "ok" else status
            elif isinstance(index, int) and 0 <= index < len(outputs) and isinstance(text, str):
                outputs[index] = text[:OUTPUT_CHARS + 2]
        report[name] = {"status": status, "outputs": outputs}
    sys.__stdout__.write(RESULT_MARK + json.dumps(report) + "\n")

if __name__ == "__main__":
    main()
'''


@dataclass
class Probe:
    """One candidate's behaviour: a status (ok, crashed, time, output, killed, missing) and one
    output per input ("= repr", "raise TypeError", "timeout", "missing")."""

    status: str
    outputs: list


def probe_files(candidates: dict, inputs: list, entry_point: str, limits: dict) -> dict:
    """The sandbox files for one run over `candidates` ({number: files}) and `inputs`."""
    per_candidate = max(1.0, (limits["wall_seconds"] - 3) / max(len(candidates), 1))
    spec = {
        "entry": entry_point,
        "inputs": inputs,
        "candidates": [f"c{number}" for number in sorted(candidates)],
        "per_call": min(1.0, per_candidate / max(len(inputs), 1) * 2),
        "per_candidate": per_candidate,
        "memory_bytes": max(64, limits["memory_mb"] // 2) * 1024 * 1024,
        "output_bytes": 256 * 1024,
    }
    constants = f"SPEC_FILE = {SPEC_FILE!r}\nRESULT_MARK = {RESULT_MARK!r}\nOUTPUT_CHARS = {OUTPUT_CHARS}\n"
    files = {PROBE_FILE: constants + PROBE, SPEC_FILE: json.dumps(spec)}
    for number, code in candidates.items():
        for name, source in code.items():
            files[f"c{number}/{name}"] = source
    return files


def run(candidates: dict, inputs: list, entry_point: str) -> tuple[dict, sandbox.SandboxResult]:
    """Run every candidate on every input in one sandbox run: ({number: Probe}, the run's result).

    A run that ends without a report (a limit of the whole jail) gives every candidate status
    "missing"; the result says which limit."""
    from django.conf import settings

    limits = settings.GRYPHGEN_SANDBOX_LIMITS
    result = sandbox.run(
        probe_files(candidates, inputs, entry_point, limits), [f"{sandbox.JAIL_RUNTIME}/bin/python", "-B", PROBE_FILE]
    )
    return parse_report(result.stdout, candidates, inputs), result


def parse_report(stdout: str, candidates: dict, inputs: list) -> dict:
    """The probe's report, checked: every candidate gets exactly one output per input."""
    report = {}
    for line in stdout.splitlines():
        if line.startswith(RESULT_MARK):
            try:
                report = json.loads(line[len(RESULT_MARK) :])
            except json.JSONDecodeError:
                report = {}
    probes = {}
    for number in candidates:
        entry = report.get(f"c{number}") if isinstance(report, dict) else None
        outputs = entry.get("outputs") if isinstance(entry, dict) else None
        if not isinstance(outputs, list) or len(outputs) != len(inputs) or not all(isinstance(o, str) for o in outputs):
            probes[number] = Probe("missing", ["missing"] * len(inputs))
            continue
        status = entry.get("status") if entry.get("status") in ("ok", "crashed", "time", "output", "killed") else "ok"
        probes[number] = Probe(status, [o[: OUTPUT_CHARS + 2] for o in outputs])
    return probes
