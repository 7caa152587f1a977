"""The improvement workflow: gather → candidate policies → safety review → A/B in staging → decide.

A cycle takes one policy line (the global one, or a project's own, in turn: `next_line`), its
live version and up to GRYPHGEN_CYCLE_ARMS candidates: the optimizer guardian's open proposals
first, then known variants from CATALOGUE that no earlier cycle tried against the same version. Every candidate passes the safety review (guardians.safety) or
never runs. Each arm (the live policy and every candidate) then works the same problems, one
staging task at a time and only while no owner's task is queued or running: the accepted tasks of
the owners' projects (a project's line: that project's only; judged again by the verdict tests
their accepted code passed) and, for the global line, HumanEval dev problems (judged by their hidden check, after the task ends; it never reaches a
task). Staging tasks never deploy and never read or write memory.

The decision is a paired test on per-problem outcomes: a candidate wins when the 95% bootstrap
interval of its difference from the live policy lies above 0, or when it solves at least as many
at clearly lower cost (wall seconds and tokens each at most GRYPHGEN_CYCLE_COST_RATIO of the
live policy's). The best winner becomes live; every proposal tested is marked adopted or
rejected, which frees its target for the next proposal. After adoption `canary` watches live
tasks and rolls the version back when they do worse than under the old one.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from agents import policy, sandbox
from agents.models import Deployment, Project, SandboxRun, Task
from agents.services import submit_task
from benchmarks import scoring, statistics, task_request
from benchmarks.problems import load_humaneval, select
from guardians import meta, optimizer, recovery, safety
from guardians.models import FailureClass, Proposal
from improvement.models import Arm, Cycle, Trial

log = logging.getLogger(__name__)

STAGING_OWNER = "gryphgen-staging"
MAX_ERROR_SHARE = 1 / 3  # more trials than this in error: the cycle cannot decide
CANARY_RECORD = 50  # the old version's latest tasks the canary compares with

# Known variants: (label, policy path, the new value from the live values)
CATALOGUE = [
    ("consensus with escalation", "mode", lambda v: "consensus"),
    ("consensus on one model", "mode", lambda v: "consensus_one"),
    ("one plain call", "mode", lambda v: "single"),
    ("the generator on the large model", "roster.generator", lambda v: "large"),
    (
        "the model's own prompt format",
        "generator_prompt",
        lambda v: "qwen" if v.generator_prompt != "qwen" else "gryphgen",
    ),
    ("two fewer consensus samples", "consensus_samples", lambda v: max(1, v.consensus_samples - 2)),
    ("one repair round fewer", "max_rounds", lambda v: max(1, v.max_rounds - 1)),
]


class CycleError(Exception):
    pass


# --- gather and build ----------------------------------------------------------------------------


def staging_project() -> Project:
    """The project the trials run in: owned by a user nobody signs in as, memory off, never deployed."""
    owner, created = get_user_model().objects.get_or_create(username=STAGING_OWNER)
    if created:
        owner.set_unusable_password()
        owner.save(update_fields=["password"])
    project, _ = Project.objects.get_or_create(
        owner=owner, name="improvement staging", defaults={"use_memory": False, "staging": True}
    )
    return project


def problem_set(cycle_no: int, project=None) -> list:
    """The accepted tasks (latest first) of `project`, or for the global line of every owner's
    project followed by HumanEval dev problems, taken in turn from where the last cycle stopped:
    GRYPHGEN_CYCLE_PROBLEMS in all. Never the test split."""
    size = settings.GRYPHGEN_CYCLE_PROBLEMS
    history = Task.objects.filter(status=Task.Status.ACCEPTED, project__staging=False).exclude(verdict_tests=None)
    if project is not None:
        history = history.filter(project=project)
    history = history.order_by("-finished").values_list("pk", flat=True)[:size]
    problems = [{"key": f"task-{pk}", "source": "history", "task": pk} for pk in history]
    if project is None and len(problems) < size:
        dev = select(load_humaneval(), "dev")
        start = (cycle_no * size) % len(dev)
        turn = (dev[start:] + dev[:start])[: size - len(problems)]
        problems += [{"key": pid, "source": "humaneval"} for pid in turn]
    return problems


def catalogue_order() -> list:
    """CATALOGUE, the modes the meta-guardian saw accepted most often first (on at least the
    optimizer's MIN_EVIDENCE owners' tasks in its window); the rest in their own order."""
    since = timezone.now() - timedelta(hours=settings.GRYPHGEN_META_WINDOW_HOURS)
    figures = meta.system_view(since)["modes"]

    def rate(entry):
        label, path, value = entry
        seen = figures.get(value(None)) if path == "mode" else None
        return -seen["pass_rate"] if seen and seen["tasks"] >= optimizer.MIN_EVIDENCE else 0

    return sorted(CATALOGUE, key=rate)  # stable: entries without figures keep their order


def candidates(base) -> list:
    """[(label, Values, Proposal or None)]: open proposals on policy values, then catalogue
    variants not yet tried against this live version; at most GRYPHGEN_CYCLE_ARMS, none alike."""
    values = policy.values_of(base)
    tried = {tuple(sorted(policy.diff(values, policy.values_of(a.policy)))) for a in Arm.objects.filter(
        cycle__baseline=base, baseline=False).select_related("policy")}  # fmt: skip
    found, seen = [], {values.model_dump_json()}
    for proposal in Proposal.objects.filter(status=Proposal.Status.PROPOSED).order_by("id"):
        try:
            changed = policy.changed(values, proposal.target, proposal.proposed)
        except policy.PolicyError as exc:
            if "not a value of the policy" not in str(exc):  # an operator setting (llm.timeout) stays open
                Proposal.objects.filter(pk=proposal.pk).update(status=Proposal.Status.BLOCKED, safety_review=str(exc))
            continue
        label = f"proposal #{proposal.pk}: {proposal.target} {proposal.current!r} → {proposal.proposed!r}"
        if changed.model_dump_json() not in seen:
            found.append((label, changed, proposal))
            seen.add(changed.model_dump_json())
    for label, path, value in catalogue_order():
        try:
            changed = policy.changed(values, path, value(values))
        except policy.PolicyError:
            continue
        if changed.model_dump_json() not in seen and tuple(sorted(policy.diff(values, changed))) not in tried:
            found.append((label, changed, None))
            seen.add(changed.model_dump_json())
    return found[: settings.GRYPHGEN_CYCLE_ARMS]


def review(base_values, values) -> str:
    """The safety monitor's word on each changed value; "" when every change may be tested."""
    for path, _, new in policy.diff(base_values, values):
        if refusal := safety.review_proposal(path, new):
            return refusal
    return ""


def next_line():
    """The policy line whose turn it is: the global one or a project's own, whichever was tested
    longest ago (never first; the global line first on a tie). Returns a Project or None."""
    lines = [None, *Project.objects.filter(policies__live=True, staging=False).distinct().order_by("pk")]

    def last(project):
        done = Cycle.objects.filter(project=project).order_by("-started").values_list("started", flat=True).first()
        return (done is not None, done)

    return min(lines, key=last)


def begin() -> Cycle | None:
    """Open a cycle on the line whose turn it is, or return the one running (one at a time, over
    all lines); None when cycles are off."""
    if not settings.GRYPHGEN_CYCLES:
        return None
    if running := Cycle.objects.filter(status=Cycle.Status.RUNNING).first():
        return running
    project = next_line()
    base = policy.live(project)
    found = candidates(base)
    try:
        with transaction.atomic():
            cycle = Cycle.objects.create(project=project, baseline=base, problems=[])
            cycle.problems = problem_set(Cycle.objects.filter(project=project).count() - 1, project)
            cycle.save(update_fields=["problems"])
            arms = [Arm.objects.create(cycle=cycle, policy=base, label=f"live: v{base.version}", baseline=True)]
            refused = []
            for label, values, proposal in found:
                if refusal := review(policy.values_of(base), values):
                    refused.append(f"{label}: {refusal}")
                    if proposal is not None:
                        Proposal.objects.filter(pk=proposal.pk).update(
                            status=Proposal.Status.BLOCKED, safety_review=refusal
                        )
                    continue
                version = policy.publish(
                    values.model_dump(), project=project, parent=base, go_live=False,
                    note=f"cycle {cycle.pk} candidate: {label}"[:300],
                )  # fmt: skip
                arms.append(Arm.objects.create(cycle=cycle, policy=version, label=label[:300], proposal=proposal))
            Trial.objects.bulk_create(Trial(arm=arm, problem=p["key"]) for p in cycle.problems for arm in arms)
    except IntegrityError:  # another beat opened one first
        return Cycle.objects.filter(status=Cycle.Status.RUNNING).first()
    if len(arms) == 1 or not cycle.problems:
        why = "no candidate to test" if not found else "every candidate was refused: " + "; ".join(refused)
        end(cycle, Cycle.Status.FAILED, why if cycle.problems else "no problem to test on")
    return cycle


# --- A/B in staging ------------------------------------------------------------------------------


def owners_waiting() -> bool:
    """An owner's task is queued or running: owners' work goes first on a small machine."""
    return Task.objects.filter(status__in=[Task.Status.QUEUED, Task.Status.RUNNING], project__staging=False).exists()


def advance(cycle_id: int) -> bool:
    """One look at a running cycle: score the trials whose tasks ended, start trials while fewer
    than GRYPHGEN_CYCLE_IN_FLIGHT run and no owner waits. True when every trial is judged (or the
    cycle is not running): time for `decide`."""
    cycle = Cycle.objects.get(pk=cycle_id)
    if cycle.status != Cycle.Status.RUNNING:
        return True
    trials = Trial.objects.filter(arm__cycle=cycle).select_related("arm__policy", "task")
    for trial in trials.filter(task__isnull=False, passed__isnull=True, error=""):
        if trial.task.is_finished:
            score(cycle, trial)
    with transaction.atomic():  # one look at a time: a second loop never starts a second trial
        Cycle.objects.select_for_update().get(pk=cycle.pk)
        in_flight = trials.filter(task__isnull=False, passed__isnull=True, error="").count()
        pending = list(trials.filter(task__isnull=True, passed__isnull=True, error="").order_by("id"))
        if not in_flight and not pending:
            return True
        room = settings.GRYPHGEN_CYCLE_IN_FLIGHT - in_flight
        for trial in pending[: max(0, room)] if not owners_waiting() else []:
            start(cycle, trial)
    return False


def problem_of(cycle: Cycle, key: str) -> dict:
    return next(p for p in cycle.problems if p["key"] == key)


def start(cycle: Cycle, trial: Trial) -> None:
    """Submit the trial's staging task under its arm's policy, once (the row is locked)."""
    problem = problem_of(cycle, trial.problem)
    if problem["source"] == "history":
        original = Task.objects.filter(pk=problem["task"]).first()
        if original is None:
            Trial.objects.filter(pk=trial.pk).update(error="the original task was deleted")
            return
        request, tests = original.request, original.acceptance_tests
    else:
        request, tests = task_request.build_request(load_humaneval()[trial.problem])[0], ""
    with transaction.atomic():
        locked = Trial.objects.select_for_update().get(pk=trial.pk)
        if locked.task_id is not None or locked.error:
            return
        try:
            task = submit_task(
                staging_project(),
                request,
                tests,
                under=trial.arm.policy,
                memory_key=f"cycle {cycle.pk} {trial.problem}",
            )
        except ValidationError as exc:
            Trial.objects.filter(pk=trial.pk).update(error=f"refused: {'; '.join(exc.messages)}"[:2000])
            return
        Trial.objects.filter(pk=trial.pk).update(task=task)


def score(cycle: Cycle, trial: Trial) -> None:
    """Accepted and right: HumanEval's hidden check, or the verdict and acceptance tests the
    original task's accepted code passed. Infrastructure errors are recorded, not counted as losses."""
    task = trial.task
    cost = {"wall_seconds": task.wall_seconds, "tokens": task.tokens_spent()}
    if task.status == Task.Status.ERROR:
        Trial.objects.filter(pk=trial.pk).update(
            error=f"the staging task ended in error: {task.message}"[:2000], **cost
        )
        return
    passed = False
    if task.status == Task.Status.ACCEPTED and (final := scoring.final_checkpoint(task)) is not None:
        files = final.files
        problem = problem_of(cycle, trial.problem)
        if problem["source"] == "humaneval":
            passed, result = scoring.hidden_check(files, load_humaneval()[trial.problem])
        else:
            original = Task.objects.get(pk=problem["task"])
            tests = dict(original.verdict_tests or {})
            if original.acceptance_tests.strip():
                tests["test_acceptance.py"] = original.acceptance_tests
            result = sandbox.run_tests(files, tests)
            passed = result.status == SandboxRun.Status.PASSED
        SandboxRun.record(task, None, result, purpose="score")
        if result.status == SandboxRun.Status.UNAVAILABLE:
            Trial.objects.filter(pk=trial.pk).update(error=f"the sandbox could not score: {result.stderr[-300:]}")
            return
    Trial.objects.filter(pk=trial.pk).update(passed=passed, **cost)


# --- the decision --------------------------------------------------------------------------------


def arm_row(arm: Arm, base: dict | None) -> dict:
    judged = {t.problem: t for t in arm.trials.all() if t.passed is not None}
    row = {
        "arm": arm.label, "policy": arm.policy_id, "version": arm.policy.version, "baseline": arm.baseline,
        "solved": sum(t.passed for t in judged.values()), "judged": len(judged),
        "errors": arm.trials.exclude(error="").count(),
        "seconds": round(sum(t.wall_seconds or 0 for t in judged.values()) / max(1, len(judged)), 2),
        "tokens": round(sum(t.tokens or 0 for t in judged.values()) / max(1, len(judged)), 1),
        "passes": {p: {"pass": t.passed} for p, t in judged.items()},  # rows as the benchmark's statistics read them
    }  # fmt: skip
    if base is not None:  # the benchmark's paired bootstrap, over the problems both arms judged
        paired = statistics.paired_bootstrap(row["passes"], base["passes"], list(row["passes"])) or {"problems": 0}
        row.update(paired=paired["problems"], difference=paired.get("difference"), ci95=paired.get("ci95"))
    return row


def verdict(row: dict, base: dict) -> str:
    """ "better", "cheaper" (as good at clearly lower cost) or "" (not adopted)."""
    if not row.get("paired"):
        return ""
    if row["ci95"] and row["ci95"][0] > 0:
        return "better"
    ratio = settings.GRYPHGEN_CYCLE_COST_RATIO
    if row["difference"] >= 0 and row["seconds"] <= ratio * base["seconds"] and row["tokens"] <= ratio * base["tokens"]:
        return "cheaper"
    return ""


@transaction.atomic
def decide(cycle: Cycle) -> None:
    """The paired test and what follows from it, once (a cycle that is no longer running is left alone)."""
    cycle = Cycle.objects.select_for_update().get(pk=cycle.pk)
    if cycle.status != Cycle.Status.RUNNING:
        return
    arms = list(cycle.arms.select_related("policy", "proposal"))
    base_arm = next(a for a in arms if a.baseline)
    base = arm_row(base_arm, None)
    rows = [base] + [arm_row(a, base) for a in arms if not a.baseline]
    trials = Trial.objects.filter(arm__cycle=cycle)
    errors = trials.exclude(error="").count()
    for row in rows[1:]:
        row["verdict"] = verdict(row, base)
    table = [{k: v for k, v in row.items() if k != "passes"} for row in rows]
    if errors > MAX_ERROR_SHARE * trials.count():
        Cycle.objects.filter(pk=cycle.pk).update(table=table)
        end(cycle, Cycle.Status.FAILED, f"{errors} of {trials.count()} trials could not be judged; nothing changed")
        reject(arms, None, "the cycle could not decide")
        return
    winners = [
        (row, arm) for row, arm in zip(rows[1:], [a for a in arms if not a.baseline], strict=True) if row["verdict"]
    ]
    rule = (
        f"rule: adopt a candidate whose paired 95% interval against the live policy lies above 0, or that solves "
        f"at least as many with seconds and tokens each at most {settings.GRYPHGEN_CYCLE_COST_RATIO:.0%} of the live policy's"
    )
    Cycle.objects.filter(pk=cycle.pk).update(table=table)
    if not winners:
        reject(arms, None, f"cycle {cycle.pk}: no candidate beat the live policy")
        end(cycle, Cycle.Status.KEPT, f"No candidate won; v{base_arm.policy.version} stays live. {rule}.")
        return
    row, arm = max(winners, key=lambda w: (w[0]["difference"], -w[0]["seconds"]))
    if policy.live(cycle.project).pk != cycle.baseline_id:  # someone changed the live version meanwhile
        end(
            cycle,
            Cycle.Status.KEPT,
            f"The live policy changed during the cycle; v{arm.policy.version} was not adopted.",
        )
        reject(arms, None, f"cycle {cycle.pk}: the live policy changed during the test")
        return
    policy.make_live(arm.policy)
    Cycle.objects.filter(pk=cycle.pk).update(adopted=arm.policy, canary=Cycle.Canary.WATCHING)
    reject(arms, arm, f"cycle {cycle.pk}: {arm.label} won instead")
    how = "better beyond the interval" if row["verdict"] == "better" else "as good at clearly lower cost"
    end(cycle, Cycle.Status.ADOPTED, f"Adopted v{arm.policy.version} ({arm.label}): {row['solved']}/{row['judged']} "
        f"against {base['solved']}/{base['judged']}, Δ {row['difference']:+.2f} (95% CI {row['ci95']}), {how}. {rule}.")  # fmt: skip


def reject(arms, winner, why: str) -> None:
    for arm in arms:
        if arm.proposal_id is None:
            continue
        won = winner is not None and arm.pk == winner.pk
        Proposal.objects.filter(pk=arm.proposal_id, status=Proposal.Status.PROPOSED).update(
            status=Proposal.Status.ADOPTED if won else Proposal.Status.REJECTED,
            safety_review=F("safety_review") if won else why[:500],
        )


def end(cycle: Cycle, status: str, decision: str) -> None:
    Cycle.objects.filter(pk=cycle.pk).update(status=status, decision=decision, finished=timezone.now())
    cycle.refresh_from_db()
    log.info("improvement %s: %s", cycle, decision)


# --- the canary ----------------------------------------------------------------------------------


def record(tasks: list) -> dict:
    """Acceptance rate, the share of accepted tasks whose deployment was later rolled back, and
    mean wall seconds per task."""
    rolled_back = Deployment.objects.filter(
        kind=Deployment.Kind.ROLLBACK, project=OuterRef("project"), pk__gt=OuterRef("pk"),
        checkpoint__deployments__kind=Deployment.Kind.DEPLOY, checkpoint__deployments__pk__lt=OuterRef("pk"),
    )  # fmt: skip
    deploys = Deployment.objects.filter(kind=Deployment.Kind.DEPLOY, checkpoint__task__in=tasks)
    undone = deploys.annotate(undone=Exists(rolled_back)).filter(undone=True).count()
    accepted = sum(t.status == Task.Status.ACCEPTED for t in tasks)
    seconds = [t.wall_seconds for t in tasks]
    return {
        "accepted": accepted / len(tasks),
        "rolled_back": undone / accepted if accepted else 0.0,
        "seconds": sum(seconds) / len(seconds),
    }


def regressions(new: dict, old: dict) -> list:
    """What got worse beyond the stated bounds, in words ([] when nothing did)."""
    drop, cost = settings.GRYPHGEN_CANARY_DROP, settings.GRYPHGEN_CANARY_COST
    found = []
    if new["accepted"] < old["accepted"] - drop:
        found.append(f"accepted {new['accepted']:.0%} against {old['accepted']:.0%} (bound: {drop:.0%} lower)")
    if new["rolled_back"] > old["rolled_back"] + drop:
        found.append(f"rolled back by owners {new['rolled_back']:.0%} against {old['rolled_back']:.0%}")
    if new["seconds"] > cost * old["seconds"]:
        found.append(f"{new['seconds']:.0f} s per task against {old['seconds']:.0f} s (bound: {cost:.1f}×)")
    return found


def canary() -> str:
    """Watch the latest adopted version: once GRYPHGEN_CANARY_TASKS owners' tasks have finished
    under it, compare their record with the old version's latest tasks; a regression beyond the
    bounds (GRYPHGEN_CANARY_DROP in acceptance or rollbacks, GRYPHGEN_CANARY_COST in seconds)
    makes the old version live again, with an alert."""
    cycle = Cycle.objects.filter(status=Cycle.Status.ADOPTED, canary=Cycle.Canary.WATCHING).first()
    if cycle is None:
        return "nothing to watch"
    finished = Task.objects.filter(project__staging=False, status__in=Task.TERMINAL).order_by("finished")
    if cycle.project_id is not None:
        finished = finished.filter(project=cycle.project_id)
    new = list(finished.filter(policy=cycle.adopted, finished__gte=cycle.finished)[: settings.GRYPHGEN_CANARY_TASKS])
    if len(new) < settings.GRYPHGEN_CANARY_TASKS:
        return f"{cycle}: {len(new)} of {settings.GRYPHGEN_CANARY_TASKS} tasks so far"
    old = list(finished.filter(policy=cycle.baseline).order_by("-finished")[:CANARY_RECORD])
    worse = regressions(record(new), record(old)) if old else []
    if not worse:
        Cycle.objects.filter(pk=cycle.pk).update(canary=Cycle.Canary.PASSED)
        return f"cycle {cycle.pk}: policy v{cycle.adopted.version} holds up over {len(new)} tasks; kept"
    message = (
        f"Rolled back policy v{cycle.adopted.version} (adopted by cycle {cycle.pk}): its first {len(new)} tasks "
        f"against the last {len(old)} under v{cycle.baseline.version}: {'; '.join(worse)}."
    )
    with transaction.atomic():
        if policy.live(cycle.project).pk == cycle.adopted_id:
            policy.make_live(cycle.baseline)
        Cycle.objects.filter(pk=cycle.pk).update(canary=Cycle.Canary.ROLLED_BACK)
    recovery.raise_alert(new[-1], FailureClass.REGRESSION, message, f"policy regression {cycle.adopted_id}")
    return message
