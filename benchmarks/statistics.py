"""Statistics of a run: pass@1 with its 95% bootstrap interval, and the paired difference between modes.

`paired_bootstrap` gives the confidence interval of a mode's pass@1 against `single` (and, in the
improvement cycle, of a candidate policy against the live one).
"""

from agents.models import Mode
from benchmarks.runner import totals

BOOTSTRAP_SAMPLES = 10_000
BOOTSTRAP_SEED = 20_240_601


def bootstrap_ci(passes: list, samples: int = BOOTSTRAP_SAMPLES, seed: int = BOOTSTRAP_SEED) -> list | None:
    """95% percentile-bootstrap interval of pass@1."""
    import numpy as np

    if not passes:
        return None
    values = np.asarray(passes, dtype=float)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (samples, len(values)))].mean(axis=1)
    return [round(float(q), 4) for q in np.percentile(means, [2.5, 97.5])]


def paired_bootstrap(rows: dict, baseline: dict, selection: list, **kwargs) -> dict | None:
    """pass@1 difference (rows − baseline) on the problems both finished, with its 95% interval:
    the problems are resampled together, so each keeps its pair."""
    common = [pid for pid in selection if pid in rows and pid in baseline]
    if not common:
        return None
    diffs = [int(rows[pid]["pass"]) - int(baseline[pid]["pass"]) for pid in common]
    low_high = bootstrap_ci(diffs, **kwargs)
    return {"problems": len(common), "difference": round(sum(diffs) / len(diffs), 4), "ci95": low_high}


def summarize(files: dict, baseline: dict | None, selection: list) -> dict:
    """Per mode: totals, the 95% interval of pass@1, and the paired difference against `single`."""
    modes = {}
    for mode, result in files.items():
        rows = result.rows
        passes = [int(rows[pid]["pass"]) for pid in selection if pid in rows]
        entry = {**totals(rows, selection), "ci95": bootstrap_ci(passes), "partial": result.data["partial"]}
        if baseline is not None and mode != Mode.SINGLE:
            entry["vs_single"] = paired_bootstrap(rows, baseline, selection)
        modes[mode] = entry
    return modes
