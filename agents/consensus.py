"""Consensus mode: sample candidates, let their behaviour vote, escalate what stays uncertain.

    draft (greedy, the generator's model) → verdict tests
      strong verdict and all pass → accept the draft
      else → a batch of samples (higher temperature, own seeds) → verdict tests → behaviour probe
        the largest group agreeing on every extra input, among the candidates passing the most
        verdict tests, is confident (all pass, group big enough, verdict strong) → accept it
        else (and `consensus`, not `consensus_one`) → escalate: a batch from the stronger model
        (its first greedy) → verdict tests → probe → the group vote over all candidates decides

A candidate that does not parse, lacks the entry point or crashes simply loses the vote: the
next batch resamples from the fresh prompt; nobody is asked to repair it. The extra inputs come
from agents.behaviour; each candidate is probed once. The judge step is the join of a batch: the
last candidate to finish runs it, under the task's row lock, and `Task.candidates` (candidates
started so far) is the claim that starts each batch once.
"""

from collections import Counter
from dataclasses import dataclass, field

from django.db import transaction

from agents import behaviour, kernel, policy, prompts, schemas, verdict
from agents.llm import LLMClient, LLMFormatError
from agents.models import Checkpoint, Mode, SandboxRun, Task
from agents.progress import publish

Stage = Checkpoint.Stage


@dataclass
class Ballot:
    number: int
    passed: int
    total: int
    outputs: list | None  # one per input, None when the candidate was not probed
    model: str = ""
    error: str = ""  # generation error: the candidate has no usable code
    escalated: bool = False  # written by the escalation model

    @property
    def good(self):
        return not self.error and self.total > 0 and self.passed == self.total


@dataclass
class Vote:
    winner: Ballot | None
    group: list = field(default_factory=list)  # the winner's agreeing group (numbers)
    considered: int = 0  # candidates with the most verdict tests passed
    candidates: int = 0  # all candidates with code
    splitting: list = field(default_factory=list)  # indexes of inputs on which the considered disagree
    used: list = field(default_factory=list)  # indexes of inputs every considered candidate answered
    set_aside: list = field(default_factory=list)  # monitor cases no candidate passed, taken out


def vote(ballots: list, inputs: list) -> Vote:
    """Among candidates passing the most verdict tests, the largest group whose outputs agree on
    every usable input wins; ties go to the group with more escalated candidates, then
    to the earliest candidate. An input is usable when every considered candidate returned a value
    on it: one that makes a candidate raise or time out may lie outside the request's domain."""
    runnable = [b for b in ballots if not b.error]
    if not runnable:
        return Vote(None)
    top = max(b.passed for b in runnable)
    considered = [b for b in runnable if b.passed == top]
    probed = [b for b in considered if b.outputs is not None]
    used = [i for i in range(len(inputs)) if probed and all(b.outputs[i].startswith("= ") for b in probed)]

    def signature(ballot):
        if ballot.outputs is None:
            return ("unprobed", ballot.number)
        return tuple(ballot.outputs[i] for i in used)

    groups = {}
    for ballot in considered:
        groups.setdefault(signature(ballot), []).append(ballot)
    best = min(
        groups.values(),
        key=lambda g: (-len(g), -sum(b.escalated for b in g), min(b.number for b in g)),
    )
    winner = min(best, key=lambda b: b.number)
    splitting = [i for i in used if len({b.outputs[i] for b in probed}) > 1]
    return Vote(winner, sorted(b.number for b in best), len(considered), len(runnable), splitting, used)


def strong_verdict(task: Task) -> bool:
    """Owner's acceptance tests, or at least two examples; the monitor's own tests are weak."""
    tests = task.verdict_tests or {}
    if task.verdict_source == "acceptance":
        return True
    return task.verdict_source == "doctest" and len(tests) >= policy.of(task).consensus_strong_examples


def confident(task: Task, result: Vote) -> bool:
    return (
        result.winner is not None
        and result.winner.good
        and len(result.group) >= policy.of(task).consensus_min_group
        and strong_verdict(task)
    )


# --- the judge step -----------------------------------------------------------------------------


def judge(task_id: int, round_no: int = 1):
    """Join of a batch: once every started candidate has run its verdict tests, decide the next
    move: accept the draft, sample a batch, escalate, or choose by the vote."""
    from agents import workflows

    task = kernel.load_running(task_id)
    if task is None:
        return
    with transaction.atomic():
        task = Task.objects.select_for_update().filter(pk=task_id).first()
        if task is None or task.is_finished:
            return
        checkpoints = list(Checkpoint.objects.filter(task=task, round=round_no).order_by("candidate"))
        executed = [cp for cp in checkpoints if cp.stage not in (Stage.GENERATED, Stage.ANALYZED)]
        if len(executed) < task.candidates or any(cp.chosen for cp in checkpoints):
            return  # a batch is still running, or the vote is done
        kernel.at(task, Task.Stage.JUDGE)
        move, result = next_move(task, executed)
        if move == "sample" or move == "escalate":
            start_batch(task, round_no, escalate=move == "escalate")
            return
        choose(task, round_no, executed, result, move)
        transaction.on_commit(lambda: workflows.start_decision(task.pk, round_no))


def next_move(task: Task, executed: list) -> tuple[str, Vote | None]:
    """("draft" | "vote", the vote) when the round can be decided; ("sample" | "escalate", None)
    when another batch should run first."""
    if len(executed) == 1:
        draft = executed[0]
        if draft.good and strong_verdict(task):
            return "draft", None
        return "sample", None
    result = vote(ballots(task, executed), probe_inputs(task))
    final = task.escalated or task.mode != Mode.CONSENSUS
    if not final and not confident(task, result):
        return "escalate", None
    if not result.winner or not result.winner.good or task.verdict_source == "calls":
        if replaced := set_aside_unpassed(task, executed) or adopt_agreement(task, executed, result):
            result = vote(ballots(task, executed), probe_inputs(task))
            result.set_aside = replaced
        elif task.verdict_source == "calls":
            withhold(task, executed)
            result = vote(ballots(task, executed), probe_inputs(task))
    return "vote", result


def adopt_agreement(task: Task, executed: list, result: Vote) -> list:
    """When no case of the monitor's stands (every candidate fails every one), or the monitor wrote
    calls without expected values (verdict source "calls"), let a clear majority's behaviour be the
    verdict: the outputs its group agrees on, on the extra inputs,
    become the task's verdict tests (`test_agreement.py`, run again for real at deploy). Returns
    the monitor's cases it replaced, or [] when the group is too small (the policy's consensus_min_group
    and more than half of the candidates with code) or agrees on fewer than two different literal
    outputs (code that answers everything alike agrees too easily)."""
    values = policy.of(task)
    if task.verdict_source not in ("monitor", "calls") or not values.consensus_set_aside:
        return []
    ran = [cp for cp in executed if not cp.generation_error and cp.files]
    group = [cp for cp in executed if result.winner and cp.candidate in result.group and cp.behaviour]
    if len(group) < values.consensus_min_group or 2 * len(group) <= len(ran):
        return []
    if task.verdict_source == "monitor" and any(t["outcome"] == "passed" for cp in ran for t in cp.test_results):
        return []  # a monitor case stands: set_aside_unpassed's business
    inputs = probe_inputs(task)
    agreed = []
    for i, args in enumerate(inputs):
        outputs = {cp.behaviour["outputs"][i] for cp in group}
        if len(outputs) == 1 and (expected := behaviour.literal_output(outputs.pop())) is not None:
            agreed.append((i, args, expected))
    if len({expected for _, _, expected in agreed}) < 2:
        return []  # fewer than two cases, or one answer to everything: a constant is no verdict
    replaced = sorted({t["name"] for cp in ran for t in cp.test_results})
    source = task.verdict_source
    task.verdict_tests = verdict.agreement_file(task.entry_point, [(args, expected) for _, args, expected in agreed])
    task.verdict_source = "agreement"
    Task.objects.filter(pk=task.pk).update(verdict_tests=task.verdict_tests, verdict_source="agreement")
    for cp in executed:
        outputs = (cp.behaviour or {}).get("outputs") or []
        results = []
        for n, (i, _, expected) in enumerate(agreed):
            same = len(outputs) > i and outputs[i] == "= " + expected
            results.append({
                "name": f"{verdict.AGREEMENT_FILE}::test_agrees_{n + 1}", "outcome": "passed" if same else "failed",
                "message": "" if same else "differs from the majority (probe)",
            })  # fmt: skip
        rescore(cp, results)
    why = (
        "the task monitor wrote no expected values" if source == "calls"
        else f"no case of the task monitor's stood ({len(replaced)} failed by every candidate)"
    )  # fmt: skip
    publish(
        task, "judge", f"{why}; {len(group)} of {len(ran)} candidates agree: their outputs on {len(agreed)} "
        "input(s) are now the verdict tests (run again at deploy)", set_aside=replaced,
    )  # fmt: skip
    return replaced


def withhold(task: Task, executed: list):
    """A task whose verdict is the monitor's calls alone, without a clear majority: no candidate
    may be accepted, so each gets a failed `agreement` result that says why."""
    reason = "no clear majority of candidates agreed on the answers to the task monitor's calls"
    for cp in executed:
        rescore(cp, [*cp.test_results, {"name": "agreement", "outcome": "failed", "message": reason}])
    publish(task, "judge", reason + ": nothing can be accepted")


def rescore(cp: Checkpoint, test_results: list):
    """Give a candidate new verdict-test results (the verdict changed under it) and count them."""
    cp.test_results = test_results
    cp.tests_passed = sum(t["outcome"] == "passed" for t in test_results)
    cp.tests_total = len(test_results)
    cp.good = cp.tests_total > 0 and cp.tests_passed == cp.tests_total
    Checkpoint.objects.filter(pk=cp.pk).update(
        test_results=cp.test_results, tests_passed=cp.tests_passed, tests_total=cp.tests_total, good=cp.good
    )


def set_aside_unpassed(task: Task, executed: list) -> list:
    """Before the final vote, take out of the task's verdict tests the monitor's cases that no
    candidate passes; return their names. A small monitor writes wrong expected values (see
    bench/monitor_accuracy.py): when every candidate's code contradicts one, the case is the
    likelier culprit. Only the monitor's tests (never the owner's or the request's examples), only
    with the policy's consensus_min_group candidates that ran, and never every case: the winner must
    still pass all that stand, and the deploy runs exactly those."""
    values = policy.of(task)
    if task.verdict_source != "monitor" or not values.consensus_set_aside:
        return []
    ran = [cp for cp in executed if not cp.generation_error and cp.test_results]
    if len(ran) < values.consensus_min_group:
        return []
    cases = sorted({t["name"] for cp in ran for t in cp.test_results if "::" in t["name"]})
    passed = {t["name"] for cp in ran for t in cp.test_results if t["outcome"] == "passed"}
    unpassed = [name for name in cases if name not in passed]
    if not unpassed or len(unpassed) == len(cases):
        return []
    task.verdict_tests = verdict.without_monitor_cases(task.verdict_tests, set(unpassed))
    Task.objects.filter(pk=task.pk).update(verdict_tests=task.verdict_tests)
    for cp in executed:
        rescore(cp, [t for t in cp.test_results if t["name"] not in unpassed])
    short = ", ".join(name.partition("::")[2] for name in unpassed)
    publish(
        task, "judge", f"set aside {len(unpassed)} of the task monitor's {len(cases)} cases that no candidate "
        f"passes ({short}): their expected values are more likely wrong than every candidate", set_aside=unpassed,
    )  # fmt: skip
    return unpassed


def ballots(task: Task, executed: list) -> list:
    """Probe the candidates that have not been probed yet (one sandbox run), then ballot them all."""
    inputs = probe_inputs(task)
    pending = {
        cp.candidate: cp.files for cp in executed if cp.behaviour is None and cp.files and not cp.generation_error
    }
    if pending and inputs:
        probes, result = behaviour.run(pending, inputs, task.entry_point)
        SandboxRun.record(task, None, result, purpose="probe")
        limited = {n: p.status for n, p in probes.items() if p.status not in ("ok",)}
        for cp in executed:
            if cp.candidate in probes:
                probe = probes[cp.candidate]
                cp.behaviour = {"status": probe.status, "outputs": probe.outputs}
                Checkpoint.objects.filter(pk=cp.pk).update(behaviour=cp.behaviour)
        notes = ", ".join(f"candidate {n + 1}: {status}" for n, status in sorted(limited.items()))
        publish(
            task, "probe", f"{len(pending)} candidate(s) run on {len(inputs)} extra input(s) in one sandbox run"
            + (f" ({result.limit} limit)" if result.limit else "") + (f"; {notes}" if notes else ""),
            limits=limited,
        )  # fmt: skip
    first_escalated = task.candidates - policy.of(task).consensus_escalation_samples if task.escalated else None
    return [
        Ballot(
            cp.candidate,
            cp.tests_passed,
            cp.tests_total,
            cp.behaviour["outputs"] if cp.behaviour and len(cp.behaviour["outputs"]) == len(inputs) else None,
            cp.model,
            cp.generation_error,
            first_escalated is not None and cp.candidate >= first_escalated,
        )  # fmt: skip
        for cp in executed
    ]


def plan_inputs(task_id: int):
    """Fix the extra inputs once per task, before the draft: the verdict tests' example inputs,
    inputs the monitor proposes when the examples are few (an LLM call: this step runs on the
    llm queue, so the judge, which runs generated code, never needs an LLM), and mutations."""
    task = kernel.load_running(task_id)
    if task is None or task.probe_inputs is not None or task.verdict_tests is None:
        return
    values = policy.of(task)
    examples = behaviour.example_inputs(task.verdict_tests, task.entry_point)
    proposed = []
    if len(examples) < values.consensus_strong_examples and task.entry_point:
        proposed = propose_inputs(task)
    seeds = examples + [p for p in proposed if p not in examples]
    limit = values.consensus_inputs
    inputs = (seeds + behaviour.mutations(seeds, max(0, limit - len(seeds)), seed=task.pk))[:limit]
    if Task.objects.filter(pk=task.pk, probe_inputs__isnull=True).update(probe_inputs=inputs) and not inputs:
        publish(task, "probe", "no extra input could be derived or proposed: candidates are told apart by "
                "the verdict tests alone")  # fmt: skip


def probe_inputs(task: Task) -> list:
    return task.probe_inputs or []


def propose_inputs(task: Task) -> list:
    try:
        reply = LLMClient().chat(
            "monitor", prompts.monitor_inputs_messages(task), purpose="monitor_inputs",
            schema=schemas.MonitorInputs, task=task,
        )  # fmt: skip
    except LLMFormatError as exc:
        publish(task, "probe", f"the task monitor's inputs were unusable ({exc})"[:500])
        return []
    inputs = behaviour.parse_proposed(reply.data.inputs)
    if not inputs:
        publish(task, "probe", "the task monitor proposed no input that parses as a list of Python literals")
    return inputs


def start_batch(task: Task, round_no: int, *, escalate: bool):
    """Claim and start the next batch of candidates, once (inside the judge's transaction)."""
    from agents import workflows

    values = policy.of(task)
    size = values.consensus_escalation_samples if escalate else values.consensus_samples
    first = task.candidates
    claimed = Task.objects.filter(pk=task.pk, candidates=first, escalated=False).update(
        candidates=first + size, escalated=escalate
    )
    if not claimed:
        return
    model = values.roster["escalation"] if escalate else (task.generator_model or values.roster["generator"])
    # the escalation batch opens with the stronger model's greedy answer; every other sample varies
    variants = [0 if escalate and i == 0 else first + i for i in range(size)]
    transaction.on_commit(lambda: workflows.start_batch(task.pk, round_no, first, model, variants))
    why = "escalating to the " + model + " model" if escalate else "sampling"
    publish(task, "judge", f"round {round_no}: {why}: candidates {first + 1}-{first + size}")


def choose(task: Task, round_no: int, executed: list, result: Vote | None, move: str):
    """Mark the chosen candidate and write the evidence an owner reads (inside the judge's transaction)."""
    inputs = probe_inputs(task)
    if move == "draft":
        winner = executed[0]
        evidence = {
            "how": "the greedy draft passed strong verdict tests",
            "agreeing": 1, "candidates": 1, "inputs": 0, "splitting_inputs": [],
        }  # fmt: skip
    elif result.winner is None:
        winner = executed[0]
        evidence = {"how": "no candidate had usable code", "agreeing": 0, "candidates": len(executed), "inputs": 0}
    else:
        winner = next(cp for cp in executed if cp.candidate == result.winner.number)
        models = Counter(cp.model for cp in executed if cp.candidate in result.group)
        evidence = {
            "how": f"largest agreeing group among the {result.considered} candidate(s) passing the most verdict tests",
            "agreeing": len(result.group),
            "candidates": result.candidates,
            "group": [n + 1 for n in result.group],
            "group_models": dict(models),
            "inputs": len(result.used),
            "splitting_inputs": [inputs[i] for i in result.splitting[:5]],
        }
        if result.set_aside:
            evidence["set_aside"] = [name.partition("::")[2] for name in result.set_aside]
    evidence.update(
        tests=f"{winner.tests_passed}/{winner.tests_total}",
        verdict=task.verdict_source,
        strong_verdict=strong_verdict(task),
        model=winner.model,
        escalated=task.escalated,
    )
    Checkpoint.objects.filter(pk=winner.pk).update(chosen=True, evidence=evidence)
    publish(
        task, "judge",
        f"round {round_no}: candidate {winner.candidate + 1} ({winner.model}) chosen: {evidence_text(evidence)}",
        evidence=evidence,
    )  # fmt: skip


def evidence_text(evidence: dict) -> str:
    """The evidence in one line, as the task page and the decision show it."""
    text = f"{evidence['tests']} verdict tests ({evidence['verdict']}"
    text += ", strong)" if evidence.get("strong_verdict") else ", weak)"
    if evidence.get("candidates", 1) > 1:
        text += (
            f"; {evidence['agreeing']} of {evidence['candidates']} candidates agree on {evidence['inputs']} input(s)"
        )
    else:
        text += "; " + evidence.get("how", "")
    if evidence.get("set_aside") and evidence["verdict"] == "agreement":
        text += f"; the majority's answers replaced the task monitor's {len(evidence['set_aside'])} case(s)"
    elif evidence.get("set_aside"):
        text += f"; {len(evidence['set_aside'])} monitor case(s) no candidate passed set aside"
    if evidence.get("splitting_inputs"):
        text += "; split by " + ", ".join(evidence["splitting_inputs"][:3])
    if evidence.get("model"):
        text += f"; written by {evidence['model']}"
    return text


def strength(evidence: dict) -> float:
    """How much the evidence supports the chosen code, 0..1: the agreeing share of candidates,
    halved for a weak verdict; an accepted draft on strong tests counts 1."""
    share = evidence.get("agreeing", 1) / max(evidence.get("candidates", 1), 1)
    return share if evidence.get("strong_verdict") else share / 2
