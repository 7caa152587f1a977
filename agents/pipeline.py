"""The steps of request processing, one function each; `agents.tasks` wraps them for Celery.

Every step loads by id, returns at once when the task is finished or its stage is already done
(a redelivered message), and writes its result together with its done-marker in one conditional
update (agents.kernel), so running twice never duplicates a checkpoint, a sandbox run or a
decision. The guardians are never called from here: the steps announce what happened
(agents.signals) and the guardians listen.
"""

from django.db import transaction
from django.utils import timezone

from agents import deploy as deployer
from agents import kernel, lint, loop_guard, policy, prompts, replies, reuse, safety_review, sandbox, schemas, verdict
from agents.kernel import advance, finish, load_checkpoint, load_running, over_budget
from agents.llm import LLMClient, LLMFormatError
from agents.models import CONSENSUS_MODES, ONE_ROUND_MODES, Checkpoint, Mode, SandboxRun, StopReason, Task
from agents.progress import publish
from agents.signals import announce, code_reviewed, deployed, round_decided
from memory import recall, store

Stage = Checkpoint.Stage
TaskStage = Task.Stage
Decision = Checkpoint.Decision


# --- route and plan ---------------------------------------------------------------------------


def route(task_id):
    claimed = Task.objects.filter(pk=task_id, status=Task.Status.QUEUED).update(
        status=Task.Status.RUNNING, started=timezone.now(), stage=TaskStage.ROUTE
    )
    task = load_running(task_id)
    if task is None or not claimed and task.stage != TaskStage.ROUTE:
        return
    task.entry_point = verdict.entry_point(task.request)
    Task.objects.filter(pk=task.pk).update(entry_point=task.entry_point)
    publish(task, "route", f"routed to {task.mode} mode, up to {task.max_rounds} rounds", entry_point=task.entry_point)


def plan_tests(task_id):
    """Fix the verdict tests once per task, before any code exists."""
    task = load_running(task_id)
    if task is None or task.verdict_tests is not None:
        return
    if task.acceptance_tests.strip():
        tests, source = verdict.acceptance_file(task.acceptance_tests), "acceptance"
    elif files := verdict.doctest_files(task.request):
        tests, source = files, "doctest"
    else:
        tests, source, error = monitor_tests(task)
        if not tests:
            finish(task, Task.Status.FAILED, f"The task monitor could not write verdict tests: {error}")
            return
    updated = Task.objects.filter(pk=task.pk, verdict_tests__isnull=True).update(
        verdict_tests=tests, verdict_source=source, stage=TaskStage.PLAN
    )
    if updated:
        publish(task, "plan", f"{len(tests)} verdict test file(s) from {source}", files=sorted(tests))


def monitor_tests(task):
    """The monitor's verdict tests, asked at most twice: a second time with the reason the first
    answer was unusable. ({file: source}, "monitor", ""), or in a consensus mode, when no case had
    a literal expected value but some call had literal arguments, (its calls, "calls", "") for the
    candidates' agreement to settle (agents.consensus); else ({}, "", the last reason)."""
    error, calls = "", {}
    for _ in range(2):
        try:
            reply = LLMClient().chat(
                "monitor", prompts.monitor_tests_messages(task, error), purpose="monitor_tests",
                schema=schemas.MonitorTests, task=task,
            )  # fmt: skip
        except LLMFormatError as exc:
            error = str(exc)
            continue
        tests = verdict.monitor_test_file(reply.data.tests)
        if tests:
            return tests, "monitor", ""
        calls = calls or verdict.calls_file(task.entry_point, reply.data.tests)
        error = "no test case parses as Python (a call and an expected literal)"
        publish(task, "plan", f"the task monitor's tests were unusable ({error}); asking once more")
    if calls and task.mode in CONSENSUS_MODES:
        publish(task, "plan", "no expected value of the task monitor's was usable: its calls stand in, and "
                "only a clear majority of candidates agreeing on their answers can be accepted")  # fmt: skip
        return calls, "calls", ""
    return {}, "", error


# --- answer from memory ----------------------------------------------------------------------


def answer_from_memory(task_id):
    """Answer with a remembered solution that passes the verdict tests (see agents.reuse), before
    round 1. Tried once per task: the stage moves from "plan" to "reuse" with the outcome.

    A remembered solution that passes becomes round 1's accepted checkpoint, without a model call,
    and is deployed here (deploy runs the tests again on the deployed tree), so the task is
    finished before the first round's steps run; they stop at once. One that fails costs a
    sandbox run and no round.
    """
    task = load_running(task_id)
    if task is None:
        return
    if task.stage == TaskStage.PLAN:
        try_memory(task)
    if Checkpoint.objects.filter(task=task, round=1, reused__isnull=False).exists():
        deploy(task.pk, 1)  # idempotent: a redelivered step finishes what a lost worker began


def try_memory(task):
    found, result = reuse.candidate(task), None
    if found is not None:
        review = safety_review.review(found.files)
        if review.blocked:
            publish(task, "reuse", f"memory #{found.entry.pk} is not reused: {review.reasons()}"[:500])
        else:
            publish(task, "reuse", f"memory #{found.entry.pk} answered a request that reads {found.match:.0%} "
                    "the same; running its code against the verdict tests")  # fmt: skip
            result = sandbox.run_tests(found.files, task.verdict_tests)
    passed = result is not None and result.status == "passed" and bool(result.tests)
    with transaction.atomic():
        if not Task.objects.filter(pk=task.pk, stage=TaskStage.PLAN).update(stage=TaskStage.REUSE):
            return  # another delivery tried
        checkpoint = None
        if passed:
            tests = len(result.tests)
            reason = (
                f"answered from memory #{found.entry.pk}: the accepted solution to a request that reads "
                f"{found.match:.0%} the same passes {tests}/{tests} verdict tests"
            )
            checkpoint = Checkpoint.objects.create(
                task=task, round=1, files=found.files, reused=found.entry, stage=Stage.DECIDED,
                test_results=result.tests, tests_passed=tests, tests_total=tests, good=True,
                verdict={"aligned": True, "evidence": reason, "tests": f"{tests}/{tests}"},
                decision=Decision.ACCEPT, reason=reason,
            )  # fmt: skip
        if result is not None:
            SandboxRun.record(task, checkpoint, result, purpose="reuse")
    if passed:
        publish(task, "reuse", f"round 1: {checkpoint.reason}; no model call", decision=Decision.ACCEPT)
    elif result is not None:
        publish(task, "reuse", f"memory #{found.entry.pk}'s code did not pass the verdict tests "
                f"({result.status}); the code generator writes new code")  # fmt: skip


# --- one round: generate, analyze, execute, monitor, decide ----------------------------------


def generate(task_id, round_no, candidate=0, model="", variant=None):
    """One candidate's code. `model`: a roster model key (default: the task's generator model);
    `variant`: 0 for the greedy answer, else a sample with its own seed (default: the candidate)."""
    task = load_running(task_id)
    if task is None or Checkpoint.objects.filter(task=task, round=round_no, candidate=candidate).exists():
        return
    if spent := over_budget(task):
        finish(task, Task.Status.FAILED, f"Stopped before round {round_no}: {StopReason(spent).label}.", spent)
        return
    base, variant = None, candidate if variant is None else variant
    model = model or task.generator_model or policy.of(task).roster["generator"]
    if round_no > 1:
        previous = Checkpoint.objects.get(task=task, round=round_no - 1, chosen=True)
        base = previous.repair_from
        if loop_guard.repeats(previous)[0] and not variant:  # a repeat of earlier code: break it with a variant
            variant = round_no
    kernel.at(task, TaskStage.GENERATE)
    who = f"round {round_no}" + (f", candidate {candidate + 1}/{task.candidates}" if task.candidates > 1 else "")
    publish(task, "generate", f"{who}: code generator ({model}) writing" + (" a repair" if base else ""))
    memories = recall.recall(task, task.request, recall.FOR_GENERATOR)
    messages = prompts.generator_messages(task, base, memories)
    reply = LLMClient().chat(
        "generator", messages, purpose="generate", task=task, variant=variant, memories=recall.records(memories),
        model=model,
    )  # fmt: skip
    files, error = replies.extract_files(prompts.reply_text(messages, reply.text))
    if base is not None and task.mode == Mode.HIERARCHICAL:  # a repair keeps the workers' parts
        files = {**{name: src for name, src in base.files.items() if name.startswith("part_")}, **files}
    chosen = task.candidates == 1 and task.mode not in CONSENSUS_MODES  # consensus: the judge chooses
    checkpoint, created = Checkpoint.objects.get_or_create(
        task=task,
        round=round_no,
        candidate=candidate,
        defaults={
            "parent": base,
            "files": files,
            "generation_error": error,
            "chosen": chosen,
            "model": reply.call.model,
        },  # fmt: skip
    )
    reply.call.checkpoint = checkpoint
    reply.call.save(update_fields=["checkpoint"])
    if created:
        lines = sum(source.count("\n") + 1 for source in files.values())
        publish(task, "generate", error or f"{who}: {lines} lines in {len(files)} file(s)", files=sorted(files))


def analyze(task_id, round_no, candidate=0):
    """ruff always; the LLM review only where the optimizer will read it: one candidate going on
    to a decision with a round left (single mode has no loop to use it; parallel candidates are
    told apart by tests, then by ruff's findings or a vote; in the last round one move is allowed)."""
    task = load_running(task_id)
    checkpoint = task and load_checkpoint(task, round_no, Stage.GENERATED, candidate)
    if checkpoint is None:
        return
    kernel.at(task, TaskStage.ANALYZE)
    findings = []
    if checkpoint.files and not checkpoint.generation_error:
        static = lint.check(checkpoint.files)
        findings = [{"source": "ruff", **f} for f in static]
    # the review is read only by the optimizer: not in modes judged by tests and behaviour, nor in
    # the last round, where decide allows one move whatever the review says
    reviewed = task.mode not in ONE_ROUND_MODES and rounds_left(task, checkpoint)
    if checkpoint.files and not checkpoint.generation_error and task.candidates == 1 and reviewed:
        try:
            reply = LLMClient().chat(
                "analyzer",
                prompts.analyzer_messages(task, checkpoint.files, static),
                purpose="analyze",
                schema=schemas.AnalyzerReview,
                task=task,
                checkpoint=checkpoint,
            )
            findings += [{"source": "review", **issue.model_dump()} for issue in reply.data.issues]
        except LLMFormatError as exc:
            findings.append({"source": "review", "severity": "info", "message": f"review unusable: {exc}"})
    if advance(checkpoint, Stage.GENERATED, Stage.ANALYZED, findings=findings):
        publish(task, "analyze", f"round {round_no}: {len(findings)} finding(s)", findings=findings[:10])


def execute(task_id, round_no, candidate=0):
    task = load_running(task_id)
    checkpoint = task and load_checkpoint(task, round_no, Stage.ANALYZED, candidate)
    if checkpoint is None:
        return
    kernel.at(task, TaskStage.EXECUTE)
    review = None
    if checkpoint.files and not checkpoint.generation_error:
        review = safety_review.review(checkpoint.files)
        announce(code_reviewed, "execute", checkpoint=checkpoint, review=review, when="ran")
    if checkpoint.generation_error:
        result = sandbox.SandboxResult("refused", stderr=checkpoint.generation_error)
    elif review.blocked:
        result = sandbox.SandboxResult("refused", stderr=f"{safety_review.BLOCKED_MARK}: {review.reasons()}")
        publish(task, "execute", f"round {round_no}: {result.stderr}"[:500], candidate=candidate)
    else:
        publish(task, "execute", f"round {round_no}: running verdict tests in the sandbox", candidate=candidate)
        result = sandbox.run_tests(checkpoint.files, task.verdict_tests)
    if result.status == "unavailable":
        with transaction.atomic():
            if advance(checkpoint, Stage.ANALYZED, Stage.EXECUTED):
                SandboxRun.record(task, checkpoint, result)
        finish(task, Task.Status.ERROR, f"The sandbox could not run the code, so nothing ran: {result.stderr}")
        return
    tests = result.tests
    if result.status == "refused" or not tests:
        # nothing was collected (syntax error, crash, limit): every verdict file counts as failed
        reason = result.limit and f"{result.limit} limit" or (result.stderr or result.stdout)[-300:]
        tests = [{"name": name, "outcome": "failed", "message": reason.strip()} for name in task.verdict_tests]
    passed = sum(1 for t in tests if t["outcome"] == "passed")
    total = max(len(tests), 1)
    with transaction.atomic():
        if not advance(
            checkpoint, Stage.ANALYZED, Stage.EXECUTED,
            test_results=tests, tests_passed=passed, tests_total=total, good=passed == total,
        ):  # fmt: skip
            transaction.set_rollback(True)
            return
        SandboxRun.record(task, checkpoint, result)
    publish(
        task, "execute", f"round {round_no}: {passed}/{total} verdict tests passed",
        run_status=result.status, limit=result.limit, duration_ms=result.duration_ms, candidate=candidate,
    )  # fmt: skip


def choose(task_id, round_no):
    """Join of a round's parallel candidates: once all have run their tests, choose one.

    Each candidate's chain ends here; the last to finish sees them all and chooses: the most
    verdict tests passed, then (collaborative) the judges' vote or (competitive) the fewest
    analyzer errors, then the earliest candidate. The choice is written once, under the task's
    row lock, and starts the decision canvas on it.
    """
    from agents import cooperation, workflows

    task = load_running(task_id)
    if task is None:
        return
    candidates = list(Checkpoint.objects.filter(task=task, round=round_no))
    done = [cp for cp in candidates if cp.stage not in (Stage.GENERATED, Stage.ANALYZED)]
    if len(done) < task.candidates or any(cp.chosen for cp in candidates):
        return
    top = max(cp.tests_passed for cp in done)
    tied = sorted((cp for cp in done if cp.tests_passed == top), key=lambda cp: cp.candidate)
    if task.mode == Mode.COLLABORATIVE and len(tied) > 1:
        best, how = cooperation.vote(task, tied)
    else:
        best = min(tied, key=lambda cp: (sum(f.get("severity") == "error" for f in cp.findings), cp.candidate))
        how = "by verdict tests, then analyzer errors"
    with transaction.atomic():
        Task.objects.select_for_update().filter(pk=task_id).first()
        if Checkpoint.objects.filter(task=task, round=round_no, chosen=True).exists():
            return  # another candidate's join chose first
        Checkpoint.objects.filter(pk=best.pk).update(chosen=True)
        transaction.on_commit(lambda: workflows.start_decision(task.pk, round_no))
    scores = ", ".join(
        f"{cp.candidate + 1}: {cp.tests_passed}/{cp.tests_total}" for cp in sorted(done, key=lambda c: c.candidate)
    )
    publish(task, "choose", f"round {round_no}: candidate {best.candidate + 1} chosen {how} (tests {scores})")


def monitor(task_id, round_no):
    from agents import cooperation

    task = load_running(task_id)
    checkpoint = task and load_checkpoint(task, round_no, Stage.EXECUTED)
    if checkpoint is None:
        return
    kernel.at(task, TaskStage.MONITOR)
    if checkpoint.generation_error:
        result = {"aligned": False, "evidence": checkpoint.generation_error}
    elif task.mode == Mode.SINGLE:
        result = {"aligned": checkpoint.good, "evidence": "single mode: judged by the verdict tests alone"}
    elif task.mode in CONSENSUS_MODES:
        result = {"aligned": checkpoint.good, "evidence": cooperation_evidence(checkpoint)}
    elif task.mode == Mode.DEBATE:
        transcript = cooperation.debate(task, checkpoint)
        result = {"aligned": checkpoint.good, "evidence": transcript[-2]["points"], "debate": transcript}
    elif len(allowed_decisions(task, checkpoint, best_checkpoint(task) or checkpoint)) == 1:
        # the verdict is read only by the optimizer, and decide will not ask it: one move is allowed
        result = {"aligned": checkpoint.good, "evidence": "not asked: one move is allowed, so judged by the tests"}
    else:
        try:
            reply = LLMClient().chat(
                "monitor",
                prompts.monitor_verdict_messages(task, checkpoint),
                purpose="monitor_verdict",
                schema=schemas.MonitorVerdict,
                task=task,
                checkpoint=checkpoint,
            )
            result = reply.data.model_dump()
        except LLMFormatError as exc:
            result = {"aligned": checkpoint.good, "evidence": f"monitor reply unusable ({exc}); judged by tests"}
    result["tests"] = f"{checkpoint.tests_passed}/{checkpoint.tests_total}"
    if advance(checkpoint, Stage.EXECUTED, Stage.MONITORED, verdict=result):
        publish(task, "monitor", f"round {round_no}: {'aligned' if result['aligned'] else 'not aligned'}", **result)


def cooperation_evidence(checkpoint):
    from agents import consensus

    return consensus.evidence_text(checkpoint.evidence) if checkpoint.evidence else "judged by the verdict tests"


def rounds_left(task, checkpoint):
    return checkpoint.round < task.max_rounds and not over_budget(task) and not loop_guard.looping(checkpoint)


def allowed_decisions(task, checkpoint, best):
    """What the optimizer may choose; the first entry is the default when its reply is unusable."""
    more = rounds_left(task, checkpoint)
    if checkpoint.good:
        return [Decision.ACCEPT, Decision.REPAIR] if more else [Decision.ACCEPT]
    if not more:
        return [Decision.GIVE_UP]
    # giving up before one repair was tried wastes the round budget (small models pick it readily)
    give_up = [Decision.GIVE_UP] if checkpoint.round > 1 else []
    if best.pk != checkpoint.pk and best.tests_passed > checkpoint.tests_passed:
        return [Decision.REVERT, Decision.REPAIR, *give_up]
    return [Decision.REPAIR, *give_up]


def best_checkpoint(task):
    """The last good checkpoint: most verdict tests passed so far, earliest on ties."""
    done = Checkpoint.objects.filter(task=task, stage__in=[Stage.MONITORED, Stage.DECIDED])
    return done.order_by("-tests_passed", "round").first()


def decide(task_id, round_no):
    task = load_running(task_id)
    if task is None:
        return
    checkpoint = load_checkpoint(task, round_no, Stage.MONITORED)
    if checkpoint is not None:
        kernel.at(task, TaskStage.DECIDE)
        best = best_checkpoint(task)
        allowed = allowed_decisions(task, checkpoint, best)
        decision, reason = allowed[0], "the only allowed move"
        if task.mode in CONSENSUS_MODES:  # decided by the vote: say what it rested on
            reason = checkpoint.verdict.get("evidence") or reason
        if len(allowed) > 1:
            try:
                reply = LLMClient().chat(
                    "optimizer",
                    prompts.optimizer_messages(task, checkpoint, best, allowed),
                    purpose="decide",
                    schema=schemas.decision(tuple(allowed)),
                    task=task,
                    checkpoint=checkpoint,
                )
                decision, reason = reply.data.decision, reply.data.reason
            except LLMFormatError as exc:
                reason = f"optimizer reply unusable ({exc}); default move"
        repair_from = {Decision.REPAIR: checkpoint, Decision.REVERT: best}.get(decision)
        with transaction.atomic():
            if advance(checkpoint, Stage.MONITORED, Stage.DECIDED, decision=decision, reason=reason,
                       repair_from=repair_from):  # fmt: skip
                transaction.on_commit(lambda: announce(round_decided, "decide", checkpoint=checkpoint))
        publish(task, "decide", f"round {round_no}: {decision} - {reason}", decision=decision)
    checkpoint = Checkpoint.objects.filter(task=task, round=round_no, stage=Stage.DECIDED).first()
    if checkpoint is not None:
        follow_decision(task, checkpoint)


def follow_decision(task, checkpoint):
    """Carry out a recorded decision. Idempotent: a redelivered decide step repeats it safely.

    ACCEPT needs nothing here: the round's last step, `deploy`, takes it from there.
    """
    from agents import workflows

    if checkpoint.decision == Decision.GIVE_UP:
        best = best_checkpoint(task)
        stop = (
            over_budget(task)
            or (StopReason.LOOP if loop_guard.looping(checkpoint) else "")
            or (StopReason.ROUNDS if checkpoint.round >= task.max_rounds else StopReason.GAVE_UP)
        )
        finish(
            task,
            Task.Status.FAILED,
            f"Stopped after {checkpoint.round} round(s) ({StopReason(stop).label}): {checkpoint.reason}. "
            f"Best: round {best.round}, {best.tests_passed}/{best.tests_total} verdict tests.",
            stop,
        )
    elif checkpoint.decision in (Decision.REPAIR, Decision.REVERT):
        next_round = checkpoint.round + 1
        if not Checkpoint.objects.filter(task=task, round=next_round).exists():
            transaction.on_commit(lambda: workflows.start_round(task.pk, next_round, task.candidates))


def hold(task, checkpoint):
    """Hold the accepted code for the owner's review when its evidence is below the project's bar
    (Project.hold_below), or when its winning group is smaller than the policy's
    consensus_accept_group; True when the task now waits (or waited and the owner has not decided)."""
    from agents import consensus

    evidence = checkpoint.evidence or {"strong_verdict": consensus.strong_verdict(task)}
    lone = "group" in evidence and evidence.get("agreeing", 0) < policy.of(task).consensus_accept_group
    if task.reviewed_by_id is not None or not (lone or task.project.hold_below):
        return False
    strength = consensus.strength(evidence)
    if lone:
        message = (
            f"Held for your review: round {checkpoint.round}'s code won the vote, but no other candidate behaves "
            f"like it ({checkpoint.verdict.get('evidence', '')})"
        )[:2000]
    elif strength >= task.project.hold_below:
        return False
    else:
        message = (
            f"Held for your review: the evidence for round {checkpoint.round}'s code is {strength:.2f}, below the "
            f"project's {task.project.hold_below:.2f} ({checkpoint.verdict.get('evidence', '')})"
        )[:2000]
    if Task.objects.filter(pk=task.pk, status=Task.Status.RUNNING).update(
        status=Task.Status.HELD, stage=TaskStage.HELD, message=message
    ):
        publish(task, "held", message[:500], status=Task.Status.HELD)
    return True


def deploy(task_id, round_no):
    """Deploy the round's checkpoint if the optimizer accepted it; see `agents.deploy`."""
    task = load_running(task_id)
    checkpoint = (
        task
        and Checkpoint.objects.filter(task=task, round=round_no, stage=Stage.DECIDED, decision=Decision.ACCEPT).first()
    )
    if checkpoint is None:
        return
    kernel.at(task, TaskStage.DEPLOY)
    review = safety_review.review(checkpoint.files)
    if review.blocked:
        announce(code_reviewed, "deploy", checkpoint=checkpoint, review=review, when="deployed")
        finish(task, Task.Status.FAILED, f"Accepted round {round_no}, but not deployed: {safety_review.BLOCKED_MARK}: "
               f"{review.reasons()}", StopReason.NOT_DEPLOYED)  # fmt: skip
        return
    if task.project.staging:  # an A/B trial of the improvement cycle: judged, never deployed or remembered
        finish(task, Task.Status.ACCEPTED, f"Accepted round {round_no}: {checkpoint.tests_passed}/"
               f"{checkpoint.tests_total} verdict tests passed; staging, so not deployed.")  # fmt: skip
        return
    if hold(task, checkpoint):
        return
    publish(
        task, "deploy", f"round {round_no}: accepted; deploying once the verdict tests pass against the tree it becomes"
    )
    try:
        deployment = deployer.deploy(checkpoint)
    except deployer.DeployError as exc:
        status = Task.Status.FAILED if exc.kind == "tests" else Task.Status.ERROR
        finish(
            task,
            status,
            f"Accepted round {round_no}, but it was not deployed: {exc}. The previous deployment stays.",
            StopReason.NOT_DEPLOYED,
        )
        return
    if checkpoint.reused_id is None:  # a reused solution is remembered already
        store.remember_solution(task, checkpoint, prompts.code_block(checkpoint.files))
    announce(deployed, "deploy", task=task, checkpoint=checkpoint, deployment=deployment)
    finish(
        task,
        Task.Status.ACCEPTED,
        f"Accepted round {round_no}: {checkpoint.tests_passed}/{checkpoint.tests_total} verdict tests passed; "
        f"deployed commit {deployment.commit_sha[:10]}.",
    )
