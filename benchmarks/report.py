"""Merges ``results/parts/*.json`` into ``latest.json``, ``latest.md`` and ``latest.png``
and computes the ratios against the targets (``nox -s docs`` then copies the table into
the README).

Usage: ``python -m benchmarks.report [--quick] [--check]``. ``--check`` exits 1 when a
ratio misses its target (not used in CI: timings on shared runners are noise).
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
from pathlib import Path

from benchmarks.common import ROOT, write_json

OURS = "MultimodalDataset"
BOUND = "numpy gather (bound)"
PEERS = ("tf.data", "torch DataLoader", "grain MapDataset")
KERAS_IMAGES = ("image_dataset_from_directory (tf)", "image_dataset_from_directory (grain)")
TARGETS = {
    "vs_bound_bs32": (">=", 0.8),
    "vs_bound_bs256": (">=", 0.9),
    "vs_best_peer_bs32": (">=", 3.0),
    "images_vs_keras": (">=", 1.5),
    "fit_vs_arrays_tensorflow": (">=", 1.0),
    "fit_vs_arrays_jax": (">=", 1.0),
    "fit_vs_arrays_torch": (">=", 1.0),
    "memmap_rss_growth_mb": ("<", 200.0),
    "tables_vs_best_datasets_loader": (">=", 1.5),
    "tables_vs_image_files": (">=", 0.85),
    "shards_vs_best_peer": (">=", 1.5),
    "remote_20ms_delay_vs_no_delay": (">=", 0.7),
    "text_buckets_vs_fixed": (">=", 2.0),
    "text_padding_fraction": ("<", 0.25),
    "text_jax_compiled_shapes": ("<=", 5),
    "pipeline_cache_vs_decoding": (">=", 10.0),
    "pipeline_10_epochs_vs_best_pipeline": (">=", 1.2),
}
TABLES_OURS = "from_table: Parquet image bytes"
TABLES_FILES = "ImageFiles (the same JPEGs as files)"
TABLES_PEERS = (
    "datasets numpy + hand-written PyDataset",
    "datasets.to_tf_dataset + collate decode",
)
SHARDS_OURS = "from_webdataset: tar shards by offset"
REMOTE_NO_DELAY = "from_webdataset: S3 shards (local server)"
REMOTE_DELAYED = "from_webdataset: S3 shards, 20 ms per request"
TEXT_FIXED = "fixed length 128"
TEXT_FIVE = "buckets 8..128 (5) + group_by_length"
TEXT_SEVEN = "buckets 8..128 (7) + group_by_length"
PIPELINE_DECODING = "images decode-only: decoded every epoch"
PIPELINE_CACHED_READS = "images decode-only: cache=, epochs after the first"
PIPELINE_UNCACHED = "from_table, no cache"
PIPELINE_CACHED = "from_table, cache= (empty: epoch 1 fills it)"
PIPELINE_PEERS = ("tf.data: map + cache() + prefetch()", "torch DataLoader(num_workers=2)")
PIPELINE_BOUND = "bound: PyDataset of precomputed batches (no decoding)"
SHARDS_PEERS = (
    "webdataset pipeline (streaming, buffer shuffle)",
    "wids.ShardListDataset (random order)",
)


def rate(measurements, name, backend=None, batch_size=None, group="assembly"):
    for m in measurements:
        if (
            m["name"] == name
            and m["group"] == group
            and (backend is None or m["backend"] == backend)
            and (batch_size is None or m["batch_size"] == batch_size)
        ):
            return m["samples_per_s"]
    return None


def ratios(measurements, memory) -> dict[str, float | None]:
    backends = sorted({m["backend"] for m in measurements})
    out: dict[str, float | None] = {}
    for bs in (32, 256):
        values = [
            rate(measurements, OURS, b, bs) / rate(measurements, BOUND, b, bs)
            for b in backends
            if rate(measurements, OURS, b, bs) and rate(measurements, BOUND, b, bs)
        ]
        out[f"vs_bound_bs{bs}"] = round(min(values), 3) if values else None
    # Each peer against MultimodalDataset measured in the same process; the worst case.
    peer_ratios = [
        rate(measurements, OURS, m["backend"], 32) / m["samples_per_s"]
        for m in measurements
        if m["name"] in PEERS and m["batch_size"] == 32
    ]
    out["vs_best_peer_bs32"] = round(min(peer_ratios), 3) if peer_ratios else None
    ours = rate(measurements, "ImageFiles in MultimodalDataset", "tensorflow", group="images")
    keras_rates = [rate(measurements, k, "tensorflow", group="images") for k in KERAS_IMAGES]
    keras_rates = [r for r in keras_rates if r]
    out["images_vs_keras"] = round(ours / max(keras_rates), 3) if ours and keras_rates else None
    # TensorFlow's loader alternates between a slow and a fast mode from epoch to epoch;
    # also compare with its fastest epoch, so a slow-mode median cannot flatter us.
    keras_best = [
        m["max"] for m in measurements if m["name"] in KERAS_IMAGES and m["group"] == "images"
    ]
    out["images_vs_keras_fastest_epoch"] = (
        round(ours / max(keras_best), 3) if ours and keras_best else None
    )
    for backend in ("tensorflow", "jax", "torch"):
        ds = rate(measurements, "fit on MultimodalDataset", backend, group="fit")
        raw = rate(measurements, "fit on arrays", backend, group="fit")
        out[f"fit_vs_arrays_{backend}"] = round(ds / raw, 3) if ds and raw else None
    out["memmap_rss_growth_mb"] = memory.get("rss_growth_mb") if memory else None
    # Images inside Parquet and tar shards: against the faster peer and the same images as
    # files, each measured in the same process; the worst backend. "_worst_round" divides
    # our slowest round by the peer's fastest: the ratio's spread over rounds.
    out.update(_versus(measurements, "tables", TABLES_OURS, TABLES_PEERS, "best_datasets_loader"))
    out.update(_versus(measurements, "tables", TABLES_OURS, (TABLES_FILES,), "image_files"))
    out.update(_versus(measurements, "shards", SHARDS_OURS, SHARDS_PEERS, "best_peer"))
    # Shards on a local S3 server: with 20 ms added to every request against none.
    out.update(_versus(measurements, "remote", REMOTE_DELAYED, (REMOTE_NO_DELAY,), "no_delay"))
    out["remote_20ms_delay_vs_no_delay"] = out.pop("remote_vs_no_delay")
    out["remote_20ms_delay_vs_no_delay_worst_round"] = out.pop("remote_vs_no_delay_worst_round")
    out.update(_text(measurements))
    # End to end (10 epochs of the reference model from JPEG files): the cache against
    # decoding on image reads alone, and against the pipeline a user writes on TensorFlow
    # (tf.data cache + prefetch) and PyTorch (DataLoader, 2 workers); the worst backend.
    # The bound: a PyDataset serving the batches already decoded, against the same pipeline
    # (what no PyDataset can exceed through Keras's adapter), and ours against the bound.
    for ours, peers, label, key in (
        (PIPELINE_CACHED_READS, (PIPELINE_DECODING,), "decoding", "cache_vs_decoding"),
        (PIPELINE_CACHED, PIPELINE_PEERS, "best", "10_epochs_vs_best_pipeline"),
        (PIPELINE_BOUND, PIPELINE_PEERS, "best", "bound_vs_best_pipeline"),
        (PIPELINE_CACHED, (PIPELINE_BOUND,), "bound", "10_epochs_vs_bound"),
        (PIPELINE_CACHED, (PIPELINE_UNCACHED,), "uncached", "10_epochs_cached_vs_uncached"),
    ):
        versus = _versus(measurements, "pipeline", ours, peers, label)
        out[f"pipeline_{key}"] = versus[f"pipeline_vs_{label}"]
        out[f"pipeline_{key}_worst_round"] = versus[f"pipeline_vs_{label}_worst_round"]
    return out


def _text(measurements) -> dict[str, float | None]:
    """Bucketed, length-grouped text against a fixed length: the worst backend's speed-up,
    the padding, and JAX's compiled step shapes; the same for seven boundaries, and the
    least padding any five boundaries could give these lengths."""
    text = [m for m in measurements if m["group"] == "text"]

    def detail(name, key, backend=None):
        values = [
            m["details"][key]
            for m in text
            if m["name"] == name and (backend is None or m["backend"] == backend)
        ]
        return max(values) if values else None

    out: dict[str, float | None] = {}
    for label, name in (("buckets", TEXT_FIVE), ("7_buckets", TEXT_SEVEN)):
        # The worst backend's speed-up, and its worst round (our slowest epoch over the
        # fixed length's fastest).
        versus = _versus(measurements, "text", name, (TEXT_FIXED,), "fixed")
        out[f"text_{label}_vs_fixed"] = versus["text_vs_fixed"]
        out[f"text_{label}_vs_fixed_worst_round"] = versus["text_vs_fixed_worst_round"]
        suffix = "" if label == "buckets" else "_7_buckets"
        out[f"text_padding_fraction{suffix}"] = detail(name, "padding_fraction")
        out[f"text_jax_compiled_shapes{suffix}"] = detail(name, "step_shapes", "jax")
    out["text_lowest_possible_padding_5_buckets"] = detail(TEXT_FIVE, "lowest_possible_padding")
    out["text_fixed_padding_fraction"] = detail(TEXT_FIXED, "padding_fraction")
    return out


def _versus(measurements, group, ours_name, peer_names, label) -> dict[str, float | None]:
    medians, worst = [], []
    for backend in sorted({m["backend"] for m in measurements}):
        ours = [
            m
            for m in measurements
            if m["group"] == group and m["backend"] == backend and m["name"] == ours_name
        ]
        peers = [
            m
            for m in measurements
            if m["group"] == group and m["backend"] == backend and m["name"] in peer_names
        ]
        if ours and peers:
            best = max(peers, key=lambda m: m["samples_per_s"])
            medians.append(ours[0]["samples_per_s"] / best["samples_per_s"])
            worst.append(ours[0]["min"] / max(p["max"] for p in peers))
    key = f"{group}_vs_{label}"
    return {
        key: round(min(medians), 3) if medians else None,
        f"{key}_worst_round": round(min(worst), 3) if worst else None,
    }


def met(key: str, value: float | None) -> bool | None:
    if value is None or key not in TARGETS:
        return None
    op, target = TARGETS[key]
    return {">=": value >= target, "<": value < target, "<=": value <= target}[op]


def markdown(report) -> str:
    machine = report["machine"]
    libs = ", ".join(f"{k} {v}" for k, v in machine["libraries"].items())
    lines = [
        f"Measured {report['date']} on {machine['cpu']}, {machine['cores']} cores, "
        f"{machine['memory_gib']} GiB ({machine['python']}; {libs}). "
        f"{report['settings']['samples']} samples, median of {report['settings']['repetitions']} "
        "epochs after a warm-up epoch.",
        "",
        "| ratio | value | target | met |",
        "| --- | --- | --- | --- |",
    ]
    for key, value in report["ratios"].items():
        op, target = TARGETS.get(key, ("", None))
        ok = met(key, value)
        shown = "n/a" if value is None else f"{value:g}"
        verdict = "-" if ok is None else "yes" if ok else "**no**"
        goal = "(for information)" if target is None else f"{op} {target:g}"
        lines.append(f"| `{key}` | {shown} | {goal} | {verdict} |")
    lines += [
        "",
        "| group | loader | backend | batch | samples/s (median) | min | max |",
        "| --- | --- | --- | --- | ---: | ---: | ---: |",
    ]
    for m in report["measurements"]:
        lines.append(
            f"| {m['group']} | {m['name']} | {m['backend']} | {m['batch_size']} | "
            f"{m['samples_per_s']:,.0f} | {m['min']:,.0f} | {m['max']:,.0f} |"
        )
    text = [m for m in report["measurements"] if m["group"] == "text"]
    if text:
        lines += [
            "",
            "| text batches | backend | samples/s | padding (of token slots) | step shapes |",
            "| --- | --- | ---: | ---: | ---: |",
        ]
        for m in text:
            details = m.get("details", {})
            lines.append(
                f"| {m['name']} | {m['backend']} | {m['samples_per_s']:,.0f} | "
                f"{details.get('padding_fraction', float('nan')):.1%} | "
                f"{details.get('step_shapes', '?')} |"
            )
    if report.get("memory"):
        mem = report["memory"]
        lines += [
            "",
            f"Memory: one epoch over a {mem['file_mb']:,.0f} MiB memory-mapped `.npy` (batch "
            f"{mem['batch_size']}) grew anonymous RSS by {mem['rss_growth_mb']} MiB.",
        ]
    return "\n".join(lines) + "\n"


def chart(report, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("assembly", 32, "Batch assembly, batch 32"),
        ("assembly", 256, "Batch assembly, batch 256"),
        ("images", 32, "JPEG files 256->64 px, batch 32"),
        ("tables", 32, "JPEGs inside Parquet 256->64 px, batch 32"),
        ("shards", 32, "JPEGs in WebDataset tar shards 256->64 px, batch 32"),
        ("remote", 32, "The same shards on a local S3 server (moto), batch 32"),
        ("fit", None, "model.fit, tiny 3-input model"),
        ("text", None, "model.fit, embedding + masked GRU on 20,000 long-tailed captions"),
    ]
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 19))
    for ax, (group, bs, title) in zip(axes, panels, strict=True):
        rows: dict[str, list[float]] = {}
        for m in report["measurements"]:
            if m["group"] != group or (bs is not None and m["batch_size"] != bs):
                continue
            if "->" not in m["name"]:  # a one-time conversion is not a loader's rate
                per_backend = group in ("fit", "tables", "shards", "remote", "text")
                label = f"{m['name']} ({m['backend']})" if per_backend else m["name"]
                rows.setdefault(label, []).append(m["samples_per_s"])
        labels = list(rows)
        values = [statistics.median(v) for v in rows.values()]
        colours = [_colour(label) for label in labels]
        ax.barh(labels[::-1], values[::-1], color=colours[::-1])
        ax.set_title(title, fontsize=10)
        ax.tick_params(labelsize=8)
        for y, v in enumerate(values[::-1]):
            ax.text(v, y, f" {v:,.0f}", va="center", fontsize=7)
        ax.set_xlim(0, max(values) * 1.2 if values else 1)
    axes[-1].set_xlabel("samples per second (higher is better)")
    fig.suptitle(f"{report['machine']['cpu']}, {report['machine']['cores']} cores", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _colour(label: str) -> str:
    if "(bound)" in label:
        return "tab:gray"
    ours = (
        OURS in label
        or "ImageFiles" in label
        or label.startswith(("from_table", "from_webdataset", "buckets"))
    )
    return "tab:orange" if ours else "tab:blue"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args()
    folder = ROOT / "results" / ("quick" if args.quick else "")
    parts = [json.loads(p.read_text()) for p in sorted((folder / "parts").glob("*.json"))]
    if not parts:
        print(f"No results in {folder / 'parts'}; run benchmarks/run.py first.")
        return 1
    measurements = [m for p in parts for m in p["measurements"]]
    memory = next((p["memory"] for p in parts if "memory" in p), None)
    report = {
        "date": datetime.date.today().isoformat(),
        "machine": parts[0]["machine"] | {"libraries": _libraries(parts)},
        "settings": parts[0]["settings"],
        "backends": [p["backend"] for p in parts],
        "measurements": measurements,
        "memory": memory,
        "ratios": ratios(measurements, memory),
    }
    report["targets_met"] = {k: met(k, v) for k, v in report["ratios"].items()}
    write_json(folder / "latest.json", report)
    table = markdown(report)
    (folder / "latest.md").write_text(table)
    chart(report, folder / "latest.png")
    print(table)
    if not args.quick:
        print("README.md is refreshed from these results by `nox -s docs`.")
    missed = [k for k, ok in report["targets_met"].items() if ok is False]
    if args.check and missed:
        print(f"Targets missed: {', '.join(missed)}")
        return 1
    return 0


def _libraries(parts) -> dict[str, str]:
    libraries: dict[str, str] = {}
    for part in parts:
        libraries.update(part["machine"]["libraries"])
    return libraries


if __name__ == "__main__":
    sys.exit(main())
