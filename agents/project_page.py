"""What the project page shows beyond its tasks: its settings (some of them policy values, kept as
the project's own policy line), deployments with the current one marked, open alerts, the owner's
memory, and charts of acceptance, seconds and tokens per task by day (server-drawn SVG)."""

from collections import defaultdict

from django.db.models import Sum
from django.utils.timezone import localtime

from agents import policy
from agents.charts import bars
from agents.models import Task

BUDGETS = ("budget_tokens", "budget_seconds")


def save_budgets(project, wanted: dict) -> bool:
    """The project's budgets as a version of its own policy line (only when they change)."""
    current = policy.live(project)
    values = policy.values_of(current)
    for name in BUDGETS:
        values = policy.changed(values, name, wanted[name])
    if values == policy.values_of(current):
        return False
    policy.publish(values.model_dump(), project=project, parent=current, note="budgets set on the project page")
    return True


def daily(project, days: int = 30) -> list:
    """[(day, tasks, accepted share, mean seconds, mean tokens)] of finished tasks, oldest first."""
    rows = defaultdict(list)
    finished = project.tasks.filter(status__in=Task.TERMINAL).exclude(finished=None).annotate(
        spent=Sum("calls__prompt_tokens") + Sum("calls__completion_tokens")
    )  # fmt: skip
    for task in finished.order_by("-finished")[:2000]:
        rows[localtime(task.finished).date()].append(
            (task.status == Task.Status.ACCEPTED, task.wall_seconds, task.spent or 0)
        )
    out = []
    for day in sorted(rows)[-days:]:
        items = rows[day]
        n = len(items)
        out.append((day, n, sum(i[0] for i in items) / n, sum(i[1] for i in items) / n, sum(i[2] for i in items) / n))
    return out


def charts(project) -> list:
    series = daily(project)
    return [
        bars("Accepted share of finished tasks, by day",
             [(f"{day} ({n})", share, f"{share:.0%}") for day, n, share, _, _ in series], top=1.0),
        bars("Seconds per task, by day", [(str(day), s, f"{s:,.0f} s") for day, _, _, s, _ in series]),
        bars("Tokens per task, by day", [(str(day), t, f"{t:,.0f}") for day, _, _, _, t in series]),
    ]  # fmt: skip
