"""The run's picture: pass@1 by mode, and pass@1 against seconds per problem."""

from pathlib import Path


def plot(modes: dict, path: Path, title: str) -> Path:
    """Two panels: pass@1 with 95% bars by mode, and the frontier: pass@1 against seconds per problem."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(modes)
    rates = [modes[m]["pass_at_1"] or 0 for m in names]
    errors = [
        [rate - (modes[m]["ci95"] or [rate, rate])[0] for m, rate in zip(names, rates, strict=True)],
        [(modes[m]["ci95"] or [rate, rate])[1] - rate for m, rate in zip(names, rates, strict=True)],
    ]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2))
    left.bar(names, rates, yerr=errors, capsize=6, color="#4c72b0")
    left.set_ylim(0, 1)
    left.set_ylabel("pass@1: accepted and right (95% CI)")
    for i, m in enumerate(names):
        left.annotate(f"{modes[m]['passed']}/{modes[m]['done']}", (i, 0.02), ha="center", va="bottom",
                      color="white" if rates[i] > 0.1 else "black")  # fmt: skip
    left.tick_params(axis="x", labelrotation=30)
    for m, rate in zip(names, rates, strict=True):
        seconds = modes[m]["seconds_per_problem"] or 0
        right.scatter([seconds], [rate], color="#dd8452")
        right.annotate(m, (seconds, rate), textcoords="offset points", xytext=(4, 4), fontsize=8)
    right.set_xlabel("wall seconds per problem")
    right.set_ylabel("pass@1")
    right.set_ylim(0, 1)
    right.set_xlim(left=0)
    right.set_title("the frontier: up and to the left is better", fontsize=9)
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
