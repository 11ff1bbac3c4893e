"""Combines the portability parts into report.json, report.md and loss_curves.png."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

from portability.config import BACKENDS, LOADERS, MIN_LEAD, TOLERANCE


def main(folder: Path, quick: bool, check: bool) -> int:
    trains = {
        b: json.loads((folder / "parts" / f"train_{b}.json").read_text())
        for b in BACKENDS
        if (folder / "parts" / f"train_{b}.json").exists()
    }
    checks = {
        loader: json.loads((folder / "parts" / f"check_{loader}.json").read_text())
        for loader in LOADERS
        if (folder / "parts" / f"check_{loader}.json").exists()
    }
    versions: dict[str, str] = {}
    for part in (*trains.values(), *checks.values()):
        versions.update(part["versions"])
    report = {
        "date": datetime.date.today().isoformat(),
        "backends": list(trains),
        "digests": {b: t["digest"] for b, t in trains.items()},
        "loss": {b: t["loss"] for b, t in trains.items()},
        "val_accuracy": {b: t["val_accuracy"] for b, t in trains.items()},
        "chance": {b: t["chance"] for b, t in trains.items()},
        "seconds_per_epoch": {b: t["seconds_per_epoch"] for b, t in trains.items()},
        "max_abs_diff": {
            b: {loader: c["max_abs_diff"].get(b) for loader, c in checks.items()} for b in trains
        },
        "loads_compiled": {
            b: {loader: c.get("loads_compiled", {}).get(b) for loader, c in checks.items()}
            for b in trains
        },
        "tolerance": TOLERANCE,
        "versions": versions,
    }
    failures = criteria(report)
    report["criteria_failed"] = failures
    (folder / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    table = markdown(report)
    (folder / "report.md").write_text(table)
    chart(report, folder / "loss_curves.png")
    print(table)
    if not quick:
        print("The documentation includes this report: docs/explanation/portability.md.")
    for failure in failures:
        print(f"FAILED: {failure}")
    return 1 if check and failures else 0


def criteria(report) -> list[str]:
    failures = []
    missing = [b for b in BACKENDS if b not in report["digests"]]
    if missing:
        failures.append(f"no training results from {', '.join(missing)}")
    for trained, row in report["max_abs_diff"].items():
        absent = [loader for loader in LOADERS if loader not in row]
        if absent:
            failures.append(f"{trained}'s model was not loaded on {', '.join(absent)}")
    if len(set(report["digests"].values())) > 1:
        failures.append(f"batch-stream digests differ: {report['digests']}")
    for trained, row in report["max_abs_diff"].items():
        for loader, diff in row.items():
            if diff is None or diff > TOLERANCE:
                failures.append(
                    f"{trained}'s model predicted on {loader} differs by {diff} (> {TOLERANCE})"
                )
    for backend, accuracy in report["val_accuracy"].items():
        if accuracy[-1] < report["chance"][backend] + MIN_LEAD:
            failures.append(
                f"{backend}: validation accuracy {accuracy[-1]:.3f} is not far above chance "
                f"({report['chance'][backend]:.3f})"
            )
    return failures


def markdown(report) -> str:
    loaders = sorted(
        {loader for row in report["max_abs_diff"].values() for loader in row}, key=LOADERS.index
    )
    libraries = ", ".join(f"{k} {v}" for k, v in report["versions"].items())
    lines = [
        f"Generated {report['date']} ({libraries}).",
        "",
        "| backend | batch-stream digest (2 epochs) | final loss | validation accuracy "
        "| s/epoch (after the 1st) |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for b in report["backends"]:
        seconds = report["seconds_per_epoch"][b][1:] or report["seconds_per_epoch"][b]
        lines.append(
            f"| {b} | `{report['digests'][b][:16]}…` | {report['loss'][b][-1]:.4f} | "
            f"{report['val_accuracy'][b][-1]:.3f} (chance {report['chance'][b]:.3f}) | "
            f"{sum(seconds) / len(seconds):.2f} |"
        )
    lines += [
        "",
        "Max |prediction difference| of each trained model (rows) loaded on each backend "
        "(columns), against the training backend's own predictions on the same batch "
        f"(tolerance {report['tolerance']:g}):",
        "",
        "| trained on \\ loaded on | " + " | ".join(loaders) + " |",
        "| --- |" + " ---: |" * len(loaders),
    ]
    for trained, row in report["max_abs_diff"].items():
        cells = ["n/a" if row.get(x) is None else f"{row[x]:.1e}" for x in loaders]
        lines.append(f"| {trained} | " + " | ".join(cells) + " |")
    refused = [
        f"{trained}'s model on {loader}: {outcome}"
        for trained, row in report["loads_compiled"].items()
        for loader, outcome in row.items()
        if outcome not in (None, "ok")
    ]
    if refused:
        lines += [
            "",
            "Loading with the optimizer (`keras.saving.load_model(path)`, compile=True) "
            "failed for: " + "; ".join(refused) + ". The predictions above load with "
            "`compile=False`.",
        ]
    failed = report["criteria_failed"]
    verdict = "all hold" if not failed else "FAILED: " + "; ".join(failed)
    lines += [
        "",
        "Criteria (identical digests, every difference within tolerance, validation accuracy "
        f"far above chance): {verdict}.",
    ]
    return "\n".join(lines) + "\n"


def chart(report, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    styles = {"tensorflow": ("o", "-"), "jax": ("s", "--"), "torch": ("^", ":")}
    for b, losses in report["loss"].items():
        marker, line = styles.get(b, ("o", "-"))
        ax.plot(range(1, len(losses) + 1), losses, marker=marker, linestyle=line, label=b)
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss")
    ax.set_title("Reference model, same stream and initial weights (JAX = PyTorch)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
