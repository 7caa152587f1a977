"""The staff dashboard: the meta-guardian's figures as charts, computed when the page is opened."""

from datetime import timedelta

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.shortcuts import render
from django.utils import timezone

from agents import policy
from agents.charts import bars
from guardians import meta
from guardians.models import Alert, GuardianReport, Proposal


@staff_member_required
def dashboard(request):
    hours = settings.GRYPHGEN_META_WINDOW_HOURS
    view = meta.system_view(timezone.now() - timedelta(hours=hours))
    modes, roles = view["modes"], view["roles"]

    def seconds(ms):
        return (ms or 0) / 1000

    charts = [
        bars(f"Accepted share by mode (last {hours} h)",
             [(f"{m} ({v['tasks']})", v["pass_rate"], f"{v['pass_rate']:.0%}") for m, v in sorted(modes.items())], top=1),
        bars("Model call latency by role, p50", [(r, seconds(v["latency_ms_p50"]), f"{seconds(v['latency_ms_p50']):.1f} s")
                                                 for r, v in sorted(roles.items())]),
        bars("Model call latency by role, p95", [(r, seconds(v["latency_ms_p95"]), f"{seconds(v['latency_ms_p95']):.1f} s")
                                                 for r, v in sorted(roles.items())]),
        bars("Model calls that succeeded, by role",
             [(f"{r} ({v['calls']})", v["success_rate"], f"{v['success_rate']:.0%}") for r, v in sorted(roles.items())], top=1),
        bars("Tokens by role", [(r, v["tokens"], f"{v['tokens']:,}") for r, v in sorted(roles.items())]),
        bars("Failures by root cause", [(c, n, str(n)) for c, n in sorted(view["failure_classes"].items())]),
    ]  # fmt: skip
    context = {
        "charts": [c for c in charts if c],
        "view": view,
        "alerts": Alert.objects.filter(resolved=None)[:20],
        "proposals": Proposal.objects.filter(status=Proposal.Status.PROPOSED)[:20],
        "live_policy": policy.live(),
        "last_review": GuardianReport.objects.filter(guardian=GuardianReport.Guardian.META).first(),
        "hours": hours,
    }
    return render(request, "guardians/dashboard.html", context)
