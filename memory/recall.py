"""What a task's agents are reminded of: the owner's relevant memories, never anyone else's."""

from agents import policy
from memory import retrieval
from memory.models import MemoryEntry

FOR_GENERATOR = (MemoryEntry.Kind.SOLUTION, MemoryEntry.Kind.DOCUMENT, MemoryEntry.Kind.LESSON)
FOR_DIAGNOSTICIAN = (MemoryEntry.Kind.LESSON,)


def recall(task, query, kinds, min_similarity=None):
    """The hits worth a prompt for `task` (at most the policy's memory_k, cosine ≥ `min_similarity`,
    default the policy's memory_min_similarity): [] when its project has memory off.

    A task never sees its own entry or one with its memory key (e.g. the same benchmark problem).
    """
    if not task.project.use_memory or not query.strip():
        return []
    own = MemoryEntry.objects.filter(task=task).values_list("pk", flat=True)
    values = policy.of(task)
    result = retrieval.search(
        task.project.owner_id, query, k=values.memory_k, kinds=kinds, exclude_key=task.memory_key,
        exclude_ids=list(own),
    )  # fmt: skip
    return result.relevant(values.memory_min_similarity if min_similarity is None else min_similarity)


def records(hits):
    return [hit.as_record() for hit in hits]
