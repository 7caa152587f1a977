"""What the cooperation modes add to the pipeline's steps.

- collaborative: parallel candidates; the most verdict tests win, ties go to a vote of two
  model judges (the analyzer's and the monitor's models), then to the earliest candidate;
- debate: two critics (prosecutor on the analyzer's model, defender on the monitor's) argue
  over the round's code for a bounded number of turns; the optimizer judges with the transcript,
  and a repair hears what the critics said;
- hierarchical: the lead (optimizer) splits the request into parts, workers (generator) write
  them in parallel, the lead (generator) integrates them into solution.py, and the integrated
  code goes through analyze → execute → monitor → decide like any round.

Steps follow the pipeline's rules: load by id, return at once when already done, write results
with conditional updates, so a redelivered message changes nothing twice.
"""

from collections import Counter

from django.db import transaction

from agents import kernel, policy, prompts, replies, schemas
from agents.llm import LLMClient, LLMFormatError
from agents.models import Checkpoint, Task
from agents.progress import publish

# --- collaborative ----------------------------------------------------------------------------


def vote(task, tied):
    """(winner, how) among candidates that passed equally many verdict tests."""
    numbers = [cp.candidate + 1 for cp in tied]
    votes = Counter()
    for role in ("analyzer", "monitor"):
        try:
            reply = LLMClient().chat(
                role,
                prompts.judge_messages(task, tied),
                purpose="vote",
                schema=schemas.vote(tuple(numbers)),
                task=task,
            )
        except LLMFormatError:
            continue  # an unusable ballot is not counted
        votes[reply.data.best] += 1
    if not votes:
        return tied[0], "no usable vote: the earliest candidate"
    top = max(votes.values())
    winner = min(number for number, count in votes.items() if count == top)
    return next(cp for cp in tied if cp.candidate + 1 == winner), f"judges' votes {dict(sorted(votes.items()))}"


# --- debate ------------------------------------------------------------------------------------


def debate(task, checkpoint):
    """The critics' transcript: [{"side", "points"}], prosecutor first, bounded turns."""
    transcript = []
    for _ in range(policy.of(task).debate_turns):
        for side, role in (("prosecutor", "analyzer"), ("defender", "monitor")):
            try:
                reply = LLMClient().chat(
                    role,
                    prompts.critic_messages(task, checkpoint, side, transcript),
                    purpose="critic",
                    schema=schemas.Critique,
                    task=task,
                    checkpoint=checkpoint,
                )
                points = reply.data.points
            except LLMFormatError as exc:
                points = f"(no usable argument: {exc})"
            transcript.append({"side": side, "points": points[:500]})
    return transcript


# --- hierarchical ------------------------------------------------------------------------------


def split(task_id):
    """The lead splits the request into parts, once; then the parts are built in parallel."""
    from agents import workflows

    task = kernel.load_running(task_id)
    if task is None or task.subtasks is not None or task.verdict_tests is None:
        return
    kernel.at(task, Task.Stage.SPLIT)
    max_parts = policy.of(task).max_parts
    try:
        reply = LLMClient().chat(
            "optimizer",
            prompts.lead_split_messages(task, max_parts),
            purpose="split",
            schema=schemas.LeadSplit,
            task=task,
        )
        parts = [part.model_dump() for part in reply.data.parts[:max_parts]]  # stored as JSON
    except LLMFormatError as exc:
        parts = [{"function": task.entry_point or "solve", "spec": task.request[:400]}]
        publish(task, "split", f"the lead's split was unusable ({exc}); one part: the whole request")
    with transaction.atomic():
        if Task.objects.filter(pk=task.pk, subtasks__isnull=True).update(subtasks=parts):
            transaction.on_commit(lambda: workflows.start_parts(task.pk, len(parts)))
            publish(task, "split", f"the lead split the work into {len(parts)} part(s)", parts=parts)


def part_name(index):
    return f"part_{index + 1}.py"


def generate_part(task_id, index):
    """A worker writes part `index` as candidate index + 1 of round 1 (never chosen itself)."""
    task = kernel.load_running(task_id)
    if task is None or Checkpoint.objects.filter(task=task, round=1, candidate=index + 1).exists():
        return
    part = task.subtasks[index]
    reply = LLMClient().chat("generator", prompts.worker_messages(task, part), purpose="part", task=task)
    files, error = replies.extract_files(reply.text)
    source = files.get("solution.py", "")
    checkpoint, created = Checkpoint.objects.get_or_create(
        task=task,
        round=1,
        candidate=index + 1,
        defaults={"files": {part_name(index): source} if source else {}, "generation_error": error, "chosen": False},
    )
    reply.call.checkpoint = checkpoint
    reply.call.save(update_fields=["checkpoint"])
    if created:
        publish(task, "part", error or f"part {index + 1} ({part['function']}) written")


def integrate(task_id):
    """Join of the parts: the last worker to finish has the lead write solution.py over them."""
    from agents import workflows

    task = kernel.load_running(task_id)
    if task is None or task.subtasks is None:
        return
    parts = Checkpoint.objects.filter(task=task, round=1, candidate__gt=0)
    if parts.count() < len(task.subtasks) or Checkpoint.objects.filter(task=task, round=1, candidate=0).exists():
        return
    part_files = {name: source for cp in parts.order_by("candidate") for name, source in cp.files.items()}
    reply = LLMClient().chat(
        "generator", prompts.lead_integrate_messages(task, part_files), purpose="integrate", task=task
    )
    files, error = replies.extract_files(reply.text)
    with transaction.atomic():
        checkpoint, created = Checkpoint.objects.get_or_create(
            task=task,
            round=1,
            candidate=0,
            defaults={"files": {**part_files, **files}, "generation_error": error, "chosen": True},
        )
        reply.call.checkpoint = checkpoint
        reply.call.save(update_fields=["checkpoint"])
        if created:
            transaction.on_commit(lambda: workflows.start_integrated(task.pk))
    if created:
        publish(task, "integrate", error or f"the lead integrated {len(part_files)} part(s) into solution.py")
