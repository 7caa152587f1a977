"""The workflow's loop guard: a round that repeats the code, or the failures, of earlier rounds.

`generate` answers a repeat with a sampled variant; `decide` stops a task whose rounds repeat
twice. The watcher (guardians.watcher) reports the same repeats.
"""

from agents.models import Checkpoint


def failing(checkpoint):
    return sorted(t["name"] for t in checkpoint.test_results if t.get("outcome") != "passed")


def repeats(checkpoint):
    """(rounds whose code this round repeats, rounds whose failures it repeats), earlier chosen ones."""
    earlier = Checkpoint.objects.filter(task_id=checkpoint.task_id, round__lt=checkpoint.round, chosen=True)
    fails = failing(checkpoint)
    same_code = [c.round for c in earlier if checkpoint.files and c.files == checkpoint.files]
    same_failures = [c.round for c in earlier if fails and failing(c) == fails]
    return same_code, same_failures


def looping(checkpoint):
    """This round repeats the code, or the failures, of two earlier rounds."""
    same_code, same_failures = repeats(checkpoint)
    return len(same_code) >= 2 or len(same_failures) >= 2
