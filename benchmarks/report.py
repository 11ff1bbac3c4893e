"""Merges ``results/parts/*.json`` into ``latest.json``, ``latest.md`` and ``latest.png``
and computes the ratios against the targets (the documentation site includes the table:
``docs/explanation/performance.md``).

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
from typing import Any

from benchmarks.common import ROOT, write_json

OURS = "MultimodalDataset"
BOUND = "numpy gather (bound)"
PEERS = ("tf.data", "torch DataLoader", "grain MapDataset")
KERAS_IMAGES = ("image_dataset_from_directory (tf)", "image_dataset_from_directory (grain)")
IMAGES_OURS = "ImageFiles in MultimodalDataset"
IMAGES_BOUND = "simplejpeg alone, 2 threads, bytes in memory (bound)"
FIT_OURS = "fit on MultimodalDataset"
FIT_ARRAYS = "fit on arrays"
FIT_AGAIN = "fit on arrays (again: the noise)"
TARGETS = {
    "vs_bound_bs32": (">=", 0.8),
    "vs_bound_bs256": (">=", 0.9),
    "vs_best_peer_bs32": (">=", 3.0),
    "images_vs_keras": (">=", 1.5),
    "fit_vs_arrays_tensorflow": (">=", 0.95),
    "fit_vs_arrays_jax": (">=", 1.0),
    "fit_vs_arrays_torch": (">=", 1.0),
    "memmap_rss_growth_mb": ("<", 200.0),
    "tables_vs_best_datasets_loader": (">=", 1.5),
    "tables_vs_image_files": (">=", 0.85),
    "shards_vs_best_peer": (">=", 1.5),
    "remote_20ms_delay_vs_no_delay": (">=", 0.7),
    "waits_prefetch_4_vs_prefetch_1": (">=", 2.0),
    "text_buckets_vs_fixed": (">=", 2.0),
    "text_padding_fraction": ("<", 0.25),
    "text_jax_compiled_shapes": ("<=", 5),
    "pipeline_files_vs_keras_pool": (">=", 1.2),
    "pipeline_cache_vs_decoding": (">=", 10.0),
    "pipeline_10_epochs_vs_best_pipeline": (">=", 1.2),
    "spawn_first_batch_s": ("<", 1.0),
    "spawn_worker_rss_mib": ("<", 120.0),
    "scale_order_first_batch_exponent": ("<=", 0.1),
    "scale_order_step_exponent": ("<=", 0.1),
    "scale_grouped_first_batch_exponent": ("<=", 0.1),
    "scale_grouped_step_exponent": ("<=", 0.1),
    "scale_flagged_step_exponent": ("<=", 0.1),
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
WAITS_PREFETCH_1 = "per-batch wait: MultimodalDataset(prefetch=1)"
WAITS_PREFETCH_4 = "per-batch wait: MultimodalDataset(prefetch=4)"
WAITS_KERAS_POOL = "per-batch wait: hand-written PyDataset, Keras pool workers=4"
TEXT_FIXED = "fixed length 128"
TEXT_FIVE = "buckets 8..128 (5) + group_by_length"
TEXT_SEVEN = "buckets 8..128 (7) + group_by_length"
PIPELINE_DECODING = "images decode-only: decoded every epoch"
PIPELINE_CACHED_READS = "images decode-only: cache=, epochs after the first"
PIPELINE_UNCACHED = "from_table, workers=2, no cache"
PIPELINE_CACHED = "from_table, workers=2, cache= (empty: epoch 1 fills it)"
PIPELINE_KERAS_POOL = "hand-written PyDataset, Keras pool workers=2 (Pillow)"
PIPELINE_PEERS = ("tf.data: map + cache() + prefetch()", "torch DataLoader(num_workers=2)")
PIPELINE_BOUND = "bound: PyDataset of precomputed batches (no decoding)"
SHARDS_PEERS = (
    "webdataset pipeline (streaming, buffer shuffle)",
    "wids.ShardListDataset (random order)",
)


def ratios(measurements, memory, startups=(), scale=None) -> dict[str, Any]:
    """Every ratio, computed round by round (see `spread`), and the untimed figures."""
    out: dict[str, Any] = {}
    for bs in (32, 256):
        out[f"vs_bound_bs{bs}"] = spread(measurements, "assembly", OURS, (BOUND,), bs)
    # Against the fastest peer of each round, measured in the same process.
    out["vs_best_peer_bs32"] = spread(measurements, "assembly", OURS, PEERS, 32)
    # The numpy gather against the same peer: the ceiling of any loader's ratio.
    out["bound_vs_best_peer_bs32"] = spread(measurements, "assembly", BOUND, PEERS, 32)
    out["images_vs_keras"] = spread(measurements, "images", IMAGES_OURS, KERAS_IMAGES)
    # What decoding alone reaches on this machine: the ceiling of any loader's ratio.
    out["images_bound_vs_keras"] = spread(measurements, "images", IMAGES_BOUND, KERAS_IMAGES)
    # With, per backend, two fits on the same arrays in each round: the noise the fit
    # ratio carries (identical work, so any spread is the machine's).
    for backend in ("tensorflow", "jax", "torch"):
        out[f"fit_vs_arrays_{backend}"] = spread(
            measurements, "fit", FIT_OURS, (FIT_ARRAYS,), backend=backend
        )
        out[f"fit_arrays_vs_arrays_again_{backend}"] = spread(
            measurements, "fit", FIT_AGAIN, (FIT_ARRAYS,), backend=backend
        )
    out["memmap_rss_growth_mb"] = memory.get("rss_growth_mb") if memory else None
    # Growth with the sample count (benchmarks/scale.py): exponents, not timed rounds.
    for key in (
        "order_first_batch_exponent",
        "order_step_exponent",
        "grouped_first_batch_exponent",
        "grouped_step_exponent",
        "flagged_step_exponent",
    ):
        out[f"scale_{key}"] = scale.get(key) if scale else None
    # Images inside Parquet and tar shards: against the faster peer and the same images as
    # files; shards on a local S3 server with 20 ms added to every request against none.
    out["tables_vs_best_datasets_loader"] = spread(
        measurements, "tables", TABLES_OURS, TABLES_PEERS
    )
    out["tables_vs_image_files"] = spread(measurements, "tables", TABLES_OURS, (TABLES_FILES,))
    out["shards_vs_best_peer"] = spread(measurements, "shards", SHARDS_OURS, SHARDS_PEERS)
    out["remote_20ms_delay_vs_no_delay"] = spread(
        measurements, "remote", REMOTE_DELAYED, (REMOTE_NO_DELAY,)
    )
    # A source that waits once per batch: prefetch=4 overlaps up to four waits.
    out["waits_prefetch_4_vs_prefetch_1"] = spread(
        measurements, "waits", WAITS_PREFETCH_4, (WAITS_PREFETCH_1,)
    )
    out["waits_prefetch_4_vs_keras_pool_4"] = spread(
        measurements, "waits", WAITS_PREFETCH_4, (WAITS_KERAS_POOL,)
    )
    out.update(_text(measurements))
    out.update(_startup(startups))
    # End to end (10 epochs of the reference model from JPEG files, workers=2): against a
    # hand-written PyDataset in Keras's own pool of 2 (every backend), the cache against
    # decoding on image reads alone, and against the pipeline a user writes on TensorFlow
    # (tf.data cache + prefetch) and PyTorch (DataLoader, 2 workers). The bound: a
    # PyDataset serving the batches already decoded, against the same pipeline (what no
    # PyDataset can exceed through Keras's adapter), and ours against the bound.
    for ours, peers, key in (
        (PIPELINE_UNCACHED, (PIPELINE_KERAS_POOL,), "files_vs_keras_pool"),
        (PIPELINE_CACHED, (PIPELINE_KERAS_POOL,), "cached_files_vs_keras_pool"),
        (PIPELINE_CACHED_READS, (PIPELINE_DECODING,), "cache_vs_decoding"),
        (PIPELINE_CACHED, PIPELINE_PEERS, "10_epochs_vs_best_pipeline"),
        (PIPELINE_BOUND, PIPELINE_PEERS, "bound_vs_best_pipeline"),
        (PIPELINE_CACHED, (PIPELINE_BOUND,), "10_epochs_vs_bound"),
        (PIPELINE_CACHED, (PIPELINE_UNCACHED,), "10_epochs_cached_vs_uncached"),
    ):
        out[f"pipeline_{key}"] = spread(measurements, "pipeline", ours, peers)
    return out


def spread(measurements, group, ours_name, peer_names, batch_size=None, backend=None):
    """``ours_name`` against the fastest of ``peer_names``, round by round.

    In each round (one epoch or one ``fit`` of every loader, back to back) the ratio is
    our rate over the fastest peer's rate in that round. Per backend that gives one ratio
    per round; the result is the worst backend's median (``median``, ``backend``), the
    lowest and highest ratio of any round on any backend (``min``, ``max``) and the number
    of rounds per backend (``rounds``). None when nothing was measured.
    """
    per_backend: dict[str, list[float]] = {}
    for name in sorted({m["backend"] for m in measurements}):
        if backend is not None and name != backend:
            continue

        def rows(names, name=name):
            return [
                m
                for m in measurements
                if m["group"] == group
                and m["backend"] == name
                and m["name"] in names
                and (batch_size is None or m["batch_size"] == batch_size)
                and m.get("rounds")
            ]

        ours, peers = rows((ours_name,)), rows(peer_names)
        if ours and peers:
            count = min(len(m["rounds"]) for m in [*ours, *peers])
            per_backend[name] = [
                ours[0]["rounds"][i] / max(p["rounds"][i] for p in peers) for i in range(count)
            ]
    if not per_backend:
        return None
    worst = min(per_backend, key=lambda b: statistics.median(per_backend[b]))
    every = [r for values in per_backend.values() for r in values]
    return {
        "median": round(statistics.median(per_backend[worst]), 3),
        "min": round(min(every), 3),
        "max": round(max(every), 3),
        "rounds": min(len(v) for v in per_backend.values()),
        "backend": worst,
    }


def _text(measurements) -> dict[str, Any]:
    """Bucketed, length-grouped text against a fixed length: the speed-up round by round,
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

    out: dict[str, Any] = {}
    for label, name in (("buckets", TEXT_FIVE), ("7_buckets", TEXT_SEVEN)):
        out[f"text_{label}_vs_fixed"] = spread(measurements, "text", name, (TEXT_FIXED,))
        suffix = "" if label == "buckets" else "_7_buckets"
        out[f"text_padding_fraction{suffix}"] = detail(name, "padding_fraction")
        out[f"text_jax_compiled_shapes{suffix}"] = detail(name, "step_shapes", "jax")
    out["text_lowest_possible_padding_5_buckets"] = detail(TEXT_FIVE, "lowest_possible_padding")
    out["text_fixed_padding_fraction"] = detail(TEXT_FIXED, "padding_fraction")
    return out


def _startup(startups) -> dict[str, Any]:
    """Time to the first batch with 2 spawned workers (the worst backend's median and the
    range of rounds on any backend) and the largest worker RSS; "eager": the same
    workers importing the whole package (Keras and the backend), as before #24."""
    out: dict[str, Any] = {}
    if not startups:
        return out
    for variant, suffix in (("lazy", ""), ("eager", "_eager_imports")):
        rows = [s[variant] for s in startups]
        out[f"spawn_first_batch_s{suffix}"] = {
            "median": max(r["first_batch_s"] for r in rows),
            "min": min(r["first_batch_min_s"] for r in rows),
            "max": max(r["first_batch_max_s"] for r in rows),
            "backend": max(startups, key=lambda s: s[variant]["first_batch_s"])["backend"],
            "rounds": min(r["rounds"] for r in rows),
        }
        out[f"spawn_worker_rss_mib{suffix}"] = max(r["worker_rss_mib"] for r in rows)
    return out


def lower_end(key: str, value: Any) -> float | None:
    """The end of a ratio's spread that decides its target: the lowest round for a
    higher-is-better target, the highest for a lower-is-better one; an untimed figure
    is its own value."""
    if not isinstance(value, dict):
        return value
    op = TARGETS.get(key, (">=", None))[0]
    return value["min"] if op == ">=" else value["max"]


def met(key: str, value: Any) -> bool | None:
    """Whether ``value`` meets its target at the worse end of its spread."""
    value = lower_end(key, value)
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
        f"{report['settings']['samples']} samples. Every ratio is computed round by round "
        "(each round runs both sides back to back): the median of the rounds (the worst "
        "backend's) and the spread (the lowest and highest round on any backend); a target "
        "counts as met only when the worse end of the spread meets it.",
        "",
        "| ratio | median | spread (rounds) | target | met |",
        "| --- | --- | --- | --- | --- |",
    ]
    for key, value in report["ratios"].items():
        op, target = TARGETS.get(key, ("", None))
        ok = met(key, value)
        if value is None:
            shown, spread_ = "n/a", ""
        elif isinstance(value, dict):
            shown = f"{value['median']:g}"
            spread_ = f"{value['min']:g} - {value['max']:g} ({value['rounds']})"
        else:
            shown, spread_ = f"{value:g}", "(not timed)"
        verdict = "-" if ok is None else "yes" if ok else "**no**"
        goal = "(for information)" if target is None else f"{op} {target:g}"
        lines.append(f"| `{key}` | {shown} | {spread_} | {goal} | {verdict} |")
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
    if report.get("scale"):
        lines += scale_table(report["scale"])
    return "\n".join(lines) + "\n"


def scale_table(scale) -> list[str]:
    """The bookkeeping's cost against the sample count N (benchmarks/scale.py)."""
    flagged = {row["n"]: row["step_us"] for row in scale["flagged"]}
    grouped = {row["n"]: row for row in scale.get("grouped", ())}
    lines = [
        "",
        f"Scale (batch {scale['batch_size']}; no data, so only the bookkeeping is timed): the "
        "first batch of a new epoch, the next batches, the memory Python allocates for them, "
        "the same for captions padded per step and grouped by length (the order alone), "
        "and the look-up of 1% flagged samples per batch.",
        "",
        "| N | first batch (ms) | per batch (us) | peak (MiB) | grouped: first batch (ms) "
        "| grouped: per batch (us) | grouped: peak (MiB) | 1% flagged, per batch (us) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in scale["order"]:
        flag = flagged.get(row["n"])
        group = grouped.get(row["n"])
        by_length = (
            "- | - | -"
            if group is None
            else f"{group['first_batch_ms']:.2f} | {group['step_us']:.1f} | {group['peak_mib']:.1f}"
        )
        lines.append(
            f"| {row['n']:.0e} | {row['first_batch_ms']:.2f} | {row['step_us']:.1f} | "
            f"{row['peak_mib']:.1f} | {by_length} | {'-' if flag is None else f'{flag:.1f}'} |"
        )
    lines += [
        "",
        f"Growth exponents (slope of log cost on log N; target <= 0.1): first batch "
        f"{scale['order_first_batch_exponent']}, per batch {scale['order_step_exponent']}, "
        f"grouped first batch {scale.get('grouped_first_batch_exponent')}, grouped per batch "
        f"{scale.get('grouped_step_exponent')}, flagged per batch "
        f"{scale['flagged_step_exponent']}.",
    ]
    if scale.get("construction"):
        lines += construction_table(scale["construction"])
    return lines


def construction_table(built) -> list[str]:
    """`from_table` construction and text fitting against N, with the peers, and what a
    billion rows would take at the largest N's per-row figures."""
    peers = {row["n"]: row for row in built.get("datasets_from_parquet", ())}
    lines = [
        "",
        "Construction (`from_table` over Parquet: a tiny embedded JPEG, a caption, 5 numbers "
        "and a label per row; each N in a fresh process). Memory is resident memory not "
        "backed by a file (memory-mapped data excluded); what the dataset's arrays hold is "
        "apart from what the allocators keep of memory freed while building.",
        "",
        "| N | from_table (s) | us/row | peak (B/row) | kept (B/row) | arrays held (B/row) "
        "| datasets.from_parquet (s) | its peak (B/row) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    nan = float("nan")
    for row in built["from_table"]:
        peer = peers.get(row["n"], {})
        peer_peak = peer.get("anonymous_peak_bytes_per_row", nan)
        lines.append(
            f"| {row['n']:.0e} | {row['seconds']:.1f} | {row['us_per_row']:.1f} | "
            f"{row['anonymous_peak_bytes_per_row']:.0f} | "
            f"{row['anonymous_kept_bytes_per_row']:.0f} | {row['held_bytes_per_row']:.0f} | "
            f"{peer.get('seconds', nan):.1f} | {peer_peak:.0f} |"
        )
    last = built["from_table"][-1]
    hours = last["us_per_row"] * 1e9 / 1e6 / 3600
    lines += [
        "",
        f"Growth exponents: time {built.get('time_exponent')}, peak memory "
        f"{built.get('peak_exponent')}. At 1e9 rows, the largest N's per-row figures give "
        f"about {hours:.1f} h of construction and {last['held_bytes_per_row']:.0f} GB held "
        f"by the dataset's arrays ({last['anonymous_peak_bytes_per_row']:.0f} GB peak "
        "resident beyond the memory-mapped data).",
    ]
    workers = built.get("workers", ())
    if workers:
        lines += [
            "",
            "A spawned worker process reading a dataset of precomputed arrays (24 token ids, "
            "5 numbers and a label a sample, in the parent's memory), after 20 batches: its "
            "resident memory, in all and not backed by a file. Growth exponent of the "
            f"latter: {built.get('worker_rss_exponent')} (target at most 0.1).",
            "",
            "| N | arrays (MiB) | worker RSS (MiB) | not file-backed (MiB) |",
            "| ---: | ---: | ---: | ---: |",
        ]
        for row in workers:
            lines.append(
                f"| {row['n']:.0e} | {row['arrays_mib']:.0f} | {row['worker_rss_mib']:.0f} | "
                f"{row['worker_anonymous_mib']:.0f} |"
            )
    fitting = built.get("text", ())
    if fitting:
        lines += [
            "",
            "Text fitting and tokenizing to 24 ids (fresh process each): ours (`TextTokens` "
            "with the word vocabulary, with BPE) against Hugging Face `tokenizers` BPE "
            "(train_from_iterator, then encode_batch on every text) and Keras "
            "`TextVectorization.adapt` (run in the TensorFlow test venv, "
            "`.nox/tests-backend-tensorflow`)."
            + (
                ""
                if any(row["fitter"] == "TextVectorization" for row in fitting)
                else " TextVectorization was not measured in this run: no TensorFlow venv."
            ),
            "",
            "| fitter | N | seconds | us/text | peak (B/text) |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for row in fitting:
            lines.append(
                f"| {row['fitter']} | {row['n']:.0e} | {row['seconds']:.2f} | "
                f"{row['us_per_text']:.1f} | {row['anonymous_peak_bytes_per_text']:.0f} |"
            )
    lines += shards_table(built.get("shards", ()), built.get("shards_cached_exponent"))
    return lines


def shards_table(rows, cached_exponent) -> list[str]:
    """`from_webdataset` up to the first batch, with and without cached indexes, against
    the webdataset library's streaming pipeline."""
    if not rows:
        return []
    peers = {row["n"]: row for row in rows if row["mode"] == "webdataset"}
    lines = [
        "",
        "WebDataset shards (10,000 samples a shard: a tiny JPEG, a caption and a class; each "
        "run in a fresh process): `from_webdataset` up to its first batch of 256 with no "
        "index cached (every header read, in one process per core), with the indexes of an "
        "earlier run (images and classes), and with the captions too (a word vocabulary "
        "fitted on them and every caption tokenized); against the webdataset library's "
        "pipeline (shard shuffle and a 1,000-sample buffer: streaming, no exact epochs) up "
        "to its first batch of raw samples. Memory as above, per sample.",
        "",
        "| N | run | dataset built (s) | first batch (s) | peak (B/sample) "
        "| arrays held (B/sample) | webdataset first batch (s) |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        if row["mode"] == "webdataset":
            continue
        peer = peers.get(row["n"], {}).get("first_batch_seconds", float("nan"))
        lines.append(
            f"| {row['n']:.0e} | {row['mode']} | {row['dataset_seconds']:.2f} | "
            f"{row['first_batch_seconds']:.2f} | "
            f"{row['anonymous_peak_bytes_per_sample']:.0f} | "
            f"{row['held_bytes_per_sample']:.0f} | {peer:.2f} |"
        )
    lines += ["", f"Growth exponent of the cached first batch: {cached_exponent}."]
    return lines


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
        ("pipeline", None, "10 epochs of the reference model from 2,000 JPEG files"),
    ]
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 22))
    for ax, (group, bs, title) in zip(axes, panels, strict=True):
        rows: dict[str, list[float]] = {}
        for m in report["measurements"]:
            if m["group"] != group or (bs is not None and m["batch_size"] != bs):
                continue
            # A one-time conversion is not a loader's rate; decode-only rows train nothing.
            if "->" not in m["name"] and "decode-only" not in m["name"]:
                per_backend = group in ("fit", "tables", "shards", "remote", "text", "pipeline")
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
    if "(bound)" in label or label.startswith("bound"):
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
    startups = [p["startup"] for p in parts if "startup" in p]
    scale = next((p["scale"] for p in parts if "scale" in p), None)
    report = {
        "date": datetime.date.today().isoformat(),
        "machine": parts[0]["machine"] | {"libraries": _libraries(parts)},
        "settings": parts[0]["settings"],
        "backends": [p["backend"] for p in parts],
        "measurements": measurements,
        "memory": memory,
        "startup": startups,
        "scale": scale,
        "ratios": ratios(measurements, memory, startups, scale),
    }
    report["targets_met"] = {k: met(k, v) for k, v in report["ratios"].items()}
    write_json(folder / "latest.json", report)
    table = markdown(report)
    (folder / "latest.md").write_text(table)
    chart(report, folder / "latest.png")
    print(table)
    if not args.quick:
        print("The documentation includes these results: docs/explanation/performance.md.")
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
