"""What the project page shows beyond its tasks: its settings (some of them policy values, kept as
the project's own policy line), deployments with the current one marked, open alerts, the owner's
memory, and charts of acceptance, seconds and tokens per task by day (server-drawn SVG)."""

from collections import defaultdict

from django.db.models import Sum
from django.utils.html import format_html, format_html_join
from django.utils.timezone import localtime

from agents import policy
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
        seconds = (task.finished - (task.started or task.created)).total_seconds()
        rows[localtime(task.finished).date()].append((task.status == Task.Status.ACCEPTED, seconds, task.spent or 0))
    out = []
    for day in sorted(rows)[-days:]:
        items = rows[day]
        n = len(items)
        out.append((day, n, sum(i[0] for i in items) / n, sum(i[1] for i in items) / n, sum(i[2] for i in items) / n))
    return out


def chart(series: list, index: int, title: str, unit: str, top: float | None = None) -> str:
    """One small bar chart of column `index` of `daily`'s rows, as inline SVG."""
    if not series:
        return ""
    width, height, bar = 600, 120, max(4, min(30, 560 // len(series) - 4))
    peak = top or max(row[index] for row in series) or 1
    bars = format_html_join(
        "",
        '<rect x="{}" y="{}" width="{}" height="{}" fill="#4c72b0"><title>{}: {}</title></rect>',
        (
            (
                30 + i * (bar + 4),
                height - 20 - round((height - 30) * row[index] / peak),
                bar,
                round((height - 30) * row[index] / peak),
                row[0].isoformat(),
                _shown(row[index], unit),
            )  # fmt: skip
            for i, row in enumerate(series)
        ),
    )
    return format_html(
        '<figure><figcaption>{}</figcaption><svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" role="img" '
        'aria-label="{}">{}<text x="0" y="12" font-size="11">{}</text>'
        '<text x="30" y="{}" font-size="11">{}</text><text x="{}" y="{}" font-size="11" text-anchor="end">{}</text>'
        "</svg></figure>",
        title, width, height, title, bars, _shown(peak, unit), height - 4, series[0][0].isoformat(),
        width - 10, height - 4, series[-1][0].isoformat(),
    )  # fmt: skip


def _shown(value: float, unit: str) -> str:
    return f"{value:.0%}" if unit == "%" else f"{value:,.0f} {unit}"


def charts(project) -> list:
    series = daily(project)
    return [
        chart(series, 2, "Accepted share of finished tasks, by day", "%", top=1.0),
        chart(series, 3, "Seconds per task, by day", "s"),
        chart(series, 4, "Tokens per task, by day", "tokens"),
    ]
