"""Construction at scale: `from_table` over a Parquet file of N rows (a tiny embedded JPEG,
a caption of 8-24 words, 5 numbers, a label), each N in a fresh process, and fitting the
text alone (the word vocabulary and BPE, against Hugging Face ``tokenizers`` and Keras's
``TextVectorization.adapt`` on the same captions).

Measured: the seconds until the dataset exists, the process's peak resident memory
beyond what it had before (``VmHWM``, reset first; memory-mapped pages of the Arrow cache and the
token ids count when touched, so this is an upper bound), and what stays resident after
construction once Python frees what it can; per row, with growth exponents across N.
Targets (issue #27): time and memory exponent at most 1.0, peak at most ~100 B per row
beyond memory-mapped data, kept at most ~40 B per row.
"""

from __future__ import annotations

import gc
import io
import os
import shutil
import time
from pathlib import Path

import numpy as np

from benchmarks.common import DATA, Settings, in_fresh_process

WORDS = [f"w{i}" for i in range(5000)]


def captions(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(8, 25, n)
    # Zipf-like word frequencies, as in real captions.
    ids = np.minimum(rng.zipf(1.3, int(lengths.sum())), len(WORDS)) - 1
    ends = np.cumsum(lengths)
    words = np.array(WORDS)[ids]
    return [" ".join(words[e - k : e]) for e, k in zip(ends, lengths, strict=True)]


def tiny_jpegs(count: int = 16) -> list[bytes]:
    from PIL import Image

    out = []
    for k in range(count):
        buffer = io.BytesIO()
        Image.fromarray(np.full((8, 8, 3), 15 * k, np.uint8)).save(buffer, "JPEG")
        out.append(buffer.getvalue())
    return out


def table_file(n: int) -> Path:
    """A Parquet file of ``n`` rows (written once, kept in benchmarks/.data)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = DATA / f"construction-{n}.parquet"
    if path.exists():
        return path
    DATA.mkdir(parents=True, exist_ok=True)
    jpegs = tiny_jpegs()
    writer = None
    chunk = 250_000
    rng = np.random.default_rng(1)
    for start in range(0, n, chunk):
        rows = min(chunk, n - start)
        image = pa.array([jpegs[(start + i) % len(jpegs)] for i in range(rows)], pa.binary())
        columns = {
            "image": image,
            "caption": pa.array(captions(rows, seed=start), pa.string()),
            **{f"x{j}": pa.array(rng.normal(size=rows)) for j in range(5)},
            "label": pa.array(rng.integers(0, 10, rows)),
        }
        table = pa.table(columns)
        if writer is None:
            writer = pq.ParquetWriter(str(path) + ".tmp", table.schema)
        writer.write_table(table, row_group_size=65536)
    assert writer is not None
    writer.close()
    os.replace(str(path) + ".tmp", path)
    return path


def _status(field: str) -> int:
    """A field of /proc/self/status in bytes (VmRSS: resident now; VmHWM: the peak)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


class AnonymousPeak:
    """The peak of RssAnon (resident memory not backed by a file: what memory-mapped data
    is not), sampled every 5 ms in a thread while the block runs."""

    def __enter__(self) -> AnonymousPeak:
        import threading

        self.peak = _status("RssAnon")
        self._done = threading.Event()

        def sample() -> None:
            while not self._done.wait(0.005):
                self.peak = max(self.peak, _status("RssAnon"))

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()
        self.peak = max(self.peak, _status("RssAnon"))


def _reset_peak() -> None:
    """Resets the process's peak resident memory (VmHWM) to what it holds now."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def measure_from_table(path: str, n: str) -> dict:
    """In a fresh process: build the training dataset of the table (everything imported
    first, so only construction counts)."""
    import keras  # noqa: F401
    import PIL.Image  # noqa: F401
    import pyarrow.parquet  # noqa: F401

    from multimodal_dataset import from_table

    rows = int(n)
    shutil.rmtree(DATA / f"construction-cache-{rows}", ignore_errors=True)
    gc.collect()
    before, anonymous_before = _status("VmRSS"), _status("RssAnon")
    _reset_peak()
    start = time.perf_counter()
    with AnonymousPeak() as anonymous:
        train, _ = from_table(
            path,
            image="image",
            text="caption",
            numeric=[f"x{j}" for j in range(5)],
            target="label",
            image_size=(8, 8),
            text_length=24,
            validation_split=0,
            batch_size=256,
            seed=0,
            cache_dir=str(DATA / f"construction-cache-{rows}"),
        )
    seconds = time.perf_counter() - start
    peak = _status("VmHWM")
    gc.collect()
    kept = _status("VmRSS") - before
    kept_anonymous = _status("RssAnon") - anonymous_before
    held = held_bytes(train)
    train[0]
    return {
        "n": rows,
        "seconds": round(seconds, 3),
        "us_per_row": round(seconds / rows * 1e6, 2),
        "peak_bytes_per_row": round((peak - before) / rows, 1),
        "kept_bytes_per_row": round(kept / rows, 1),
        "anonymous_peak_bytes_per_row": round((anonymous.peak - anonymous_before) / rows, 1),
        "anonymous_kept_bytes_per_row": round(kept_anonymous / rows, 1),
        "held_bytes_per_row": round(held / rows, 1),
    }


def measure_datasets(path: str, n: str) -> dict:
    """In a fresh process: the peer, Hugging Face ``datasets.Dataset.from_parquet`` (it
    converts the file to its Arrow cache), with a fresh cache folder."""
    import datasets

    rows = int(n)
    folder = DATA / f"construction-hf-{rows}"
    shutil.rmtree(folder, ignore_errors=True)
    datasets.disable_progress_bars()
    anonymous_before = _status("RssAnon")
    start = time.perf_counter()
    with AnonymousPeak() as anonymous:
        table = datasets.Dataset.from_parquet(path, cache_dir=str(folder))
    seconds = time.perf_counter() - start
    assert len(table) == rows
    shutil.rmtree(folder, ignore_errors=True)
    return {
        "n": rows,
        "seconds": round(seconds, 3),
        "us_per_row": round(seconds / rows * 1e6, 2),
        "anonymous_peak_bytes_per_row": round((anonymous.peak - anonymous_before) / rows, 1),
    }


#: The text fitters compared: ours, and the peers that do the same job.
FITTERS = ("words", "bpe", "tokenizers bpe", "TextVectorization")


def measure_text(fitter: str, n: str) -> dict | None:
    """In a fresh process: fit ``fitter`` on ``n`` captions and tokenize them to 24 ids
    (seconds and peak anonymous memory beyond the captions themselves)."""
    count = int(n)
    texts = captions(count, seed=7)
    import keras

    from multimodal_dataset import TextTokens

    anonymous_before = _status("RssAnon")
    start = time.perf_counter()
    with AnonymousPeak() as anonymous:
        if fitter == "words":
            ids = TextTokens(texts, length=24).ids
        elif fitter == "bpe":
            ids = TextTokens(texts, length=24, tokenizer="bpe", max_tokens=8000).ids
        elif fitter == "tokenizers bpe":
            import tokenizers as hf

            tokenizer = hf.Tokenizer(hf.models.BPE(unk_token="[UNK]"))
            tokenizer.pre_tokenizer = hf.pre_tokenizers.Whitespace()
            trainer = hf.trainers.BpeTrainer(
                vocab_size=8000, special_tokens=["[PAD]", "[UNK]"], show_progress=False
            )
            tokenizer.train_from_iterator(texts, trainer)
            tokenizer.enable_padding(length=24)
            tokenizer.enable_truncation(24)
            ids = np.array([e.ids for e in tokenizer.encode_batch(texts)], np.int32)
        else:
            layer = keras.layers.TextVectorization(output_sequence_length=24)
            layer.adapt(texts, batch_size=4096)
            ids = np.concatenate(
                [np.asarray(layer(texts[i : i + 65536])) for i in range(0, count, 65536)]
            )
    seconds = time.perf_counter() - start
    assert ids.shape == (count, 24)
    return {
        "fitter": fitter,
        "n": count,
        "seconds": round(seconds, 3),
        "us_per_text": round(seconds / count * 1e6, 2),
        "anonymous_peak_bytes_per_text": round((anonymous.peak - anonymous_before) / count, 1),
    }


def tensorflow_python() -> str | None:
    """A Python with TensorFlow for the TextVectorization peer: this one, or that of the
    nox TensorFlow test session's venv (``nox -s "tests(backend='tensorflow')"``); None
    where there is none (that peer is then left out, and the report says so)."""
    import importlib.util
    import sys

    if importlib.util.find_spec("tensorflow") is not None:
        return sys.executable
    venv = DATA.parent.parent / ".nox" / "tests-backend-tensorflow" / "bin" / "python"
    return str(venv) if venv.exists() else None


def held_bytes(root: object) -> int:
    """The bytes of the in-memory numpy arrays reachable from ``root`` (memory maps and
    views of other arrays left out): what a dataset holds per row, apart from what the
    allocators keep of memory freed during construction."""
    seen: set[int] = set()
    total = 0
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, np.ndarray):
            if not isinstance(obj, np.memmap) and obj.base is None:
                total += obj.nbytes
            continue
        if isinstance(obj, dict):
            stack += obj.values()
        elif isinstance(obj, (list, tuple, set)):
            stack += obj
        elif hasattr(obj, "__dict__") and not isinstance(obj, type):
            stack += vars(obj).values()
    return total


def measure_worker(n: str) -> dict:
    """In a fresh process: a dataset of ``n`` samples of precomputed arrays (24 token ids,
    5 numbers, a label: 100 bytes a sample, in this process's memory) read by one spawned
    worker process; the worker's resident memory after serving 20 batches, in all and
    not backed by a file. A worker that received copies would hold the 100 bytes a
    sample; one that maps the shared files holds what its batches touched."""
    import multiprocessing

    multiprocessing.set_start_method("spawn", force=True)
    from multimodal_dataset import MultimodalDataset

    rows = int(n)
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 5000, (rows, 24), dtype=np.int32)
    numbers = rng.normal(size=(rows, 5)).astype(np.float32)
    labels = rng.integers(0, 10, rows).astype(np.int32)
    ds = MultimodalDataset(
        (ids, numbers), labels, batch_size=256, seed=0, workers=1, use_multiprocessing=True
    )
    for i in range(20):
        ds[i]
    executor = ds._gatherer._executor  # the one worker process
    (process,) = executor._processes.values()
    status = {}
    with open(f"/proc/{process.pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon"):
                status[key] = int(value.split()[0]) * 1024
    ds.close()
    return {
        "n": rows,
        "arrays_mib": round((ids.nbytes + numbers.nbytes + labels.nbytes) / 2**20, 1),
        "worker_rss_mib": round(status["VmRSS"] / 2**20, 1),
        "worker_anonymous_mib": round(status["RssAnon"] / 2**20, 1),
    }


#: Samples per tar shard in the shard benchmark (img2dataset writes 10,000 by default).
SHARD_SAMPLES = 10_000


def shard_folder(n: int) -> Path:
    """``n`` samples (a tiny JPEG, a caption and a class each) as tar shards of
    `SHARD_SAMPLES`, written once into benchmarks/.data, byte for byte as the webdataset
    library's ``TarWriter`` (Python's tarfile) writes them: a pax header per member, for
    its float mtime. Headers are filled into a template, which is fifty times faster
    than ``tarfile`` (10**7 samples: 3 * 10**7 members)."""
    folder = DATA / f"construction-shards-{n}"
    done = folder / "done"
    if done.exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    jpegs = tiny_jpegs()
    for k, start in enumerate(range(0, n, SHARD_SAMPLES)):
        count = min(SHARD_SAMPLES, n - start)
        texts = captions(count, seed=start)
        with open(folder / f"{k:06d}.tar", "wb") as out:
            for i in range(count):
                key = b"%09d" % (start + i)
                for extension, data in (
                    (b"jpg", jpegs[(start + i) % len(jpegs)]),
                    (b"txt", texts[i].encode()),
                    (b"cls", b"%d" % ((start + i) % 10)),
                ):
                    out.write(_member_header(key + b"." + extension, len(data)))
                    out.write(data + bytes(-len(data) % 512))
            out.write(bytes(2 * 512))
    done.write_text("")
    return folder


def _member_header(name: bytes, size: int) -> bytes:
    """The pax and ustar headers tarfile writes for ``name`` of ``size`` bytes (mtime
    1.7e9 + 0.5): the pax part is the same for every member, and the ustar header's
    checksum is the template's plus the name's and the size's bytes."""
    global _TEMPLATE
    if _TEMPLATE is None:
        import tarfile

        info = tarfile.TarInfo("")
        info.size, info.mtime = 0, 1.7e9 + 0.5
        whole = info.tobuf(format=tarfile.PAX_FORMAT)
        header = bytearray(whole[-512:])
        header[124:136] = bytes(12)
        header[148:156] = b" " * 8
        _TEMPLATE = (whole[:-512], bytes(header), sum(header))
    pax, header, base = _TEMPLATE
    size_field = b"%011o\0" % size
    checksum = base + sum(name) + sum(size_field)
    return b"".join(
        (
            pax,
            name.ljust(100, b"\0"),
            header[100:124],
            size_field,
            header[136:148],
            b"%06o\0 " % checksum,
            header[156:],
        )
    )


_TEMPLATE: tuple[bytes, bytes, int] | None = None


def measure_shards(folder: str, n: str, mode: str) -> dict:
    """In a fresh process: `from_webdataset` over the shards of ``folder`` up to the
    first batch. ``mode``: "first" (no index cached: every header read), "cached" (the
    indexes of an earlier run: images and classes), "cached, text" (also the captions,
    which are tokenized: the word vocabulary fitted on them)."""
    import keras  # noqa: F401
    import PIL.Image  # noqa: F401
    import pyarrow  # noqa: F401

    from multimodal_dataset import from_webdataset

    rows = int(n)
    cache = DATA / f"construction-shards-cache-{rows}"
    if mode == "first":
        shutil.rmtree(cache, ignore_errors=True)
    text = {"text": "txt", "text_length": 24} if mode != "cached" else {}
    gc.collect()
    anonymous_before = _status("RssAnon")
    start = time.perf_counter()
    with AnonymousPeak() as anonymous:
        train, _ = from_webdataset(
            folder,
            image="jpg",
            target="cls",
            image_size=(8, 8),
            validation_split=0,
            batch_size=256,
            seed=0,
            cache_dir=str(cache),
            **text,
        )
        built = time.perf_counter() - start
        train[0]
    seconds = time.perf_counter() - start
    assert train.num_samples == rows
    return {
        "n": rows,
        "mode": mode,
        "dataset_seconds": round(built, 3),
        "first_batch_seconds": round(seconds, 3),
        "us_per_sample": round(seconds / rows * 1e6, 2),
        "anonymous_peak_bytes_per_sample": round((anonymous.peak - anonymous_before) / rows, 1),
        "held_bytes_per_sample": round(held_bytes(train) / rows, 1),
    }


def measure_webdataset(folder: str, n: str) -> dict:
    """In a fresh process: the webdataset library's pipeline over the same shards
    (shard shuffle, a 1,000-sample shuffle buffer: streaming, no exact epochs) up to its
    first batch of 256 raw samples."""
    import webdataset

    shards = sorted(str(p) for p in Path(folder).glob("*.tar"))
    start = time.perf_counter()
    pipeline = (
        webdataset.WebDataset(shards, shardshuffle=len(shards), seed=0)
        .shuffle(1000)
        .to_tuple("jpg", "txt", "cls")
        .batched(256, collation_fn=lambda rows: rows)
    )
    batch = next(iter(pipeline))
    seconds = time.perf_counter() - start
    assert len(batch) == 256
    return {"n": int(n), "first_batch_seconds": round(seconds, 3)}


def shard_sizes(settings: Settings) -> list[int]:
    return [10**4] if settings.quick else [10**5, 10**6, 10**7]


def worker_sizes(settings: Settings) -> list[int]:
    return [10**4, 10**5] if settings.quick else [10**5, 10**6, 10**7]


def sizes(settings: Settings) -> list[int]:
    return [10**4] if settings.quick else [10**5, 10**6, 10**7]


#: Text fitting is timed up to this many captions (the peers' BPE takes minutes beyond).
TEXT_LARGEST = 10**6


def exponent(ns: list[int], costs: list[float]) -> float | None:
    if len(ns) < 2:
        return None
    return round(float(np.polyfit(np.log(ns), np.log(costs), 1)[0]), 3)


def run(settings: Settings) -> dict:
    rows, peers, fitting = [], [], []
    for n in sizes(settings):
        path = table_file(n)
        row = in_fresh_process("construction", "measure_from_table", str(path), n)
        rows.append(row)
        peer = in_fresh_process("construction", "measure_datasets", str(path), n)
        peers.append(peer)
        print(
            f"  construction datasets.from_parquet N={n:.0e}: {peer['seconds']:.1f} s, "
            f"peak {peer['anonymous_peak_bytes_per_row']:.0f} B/row",
            flush=True,
        )
        for fitter in FITTERS if n <= TEXT_LARGEST else ():
            fitted = None
            if fitter != "TextVectorization":
                fitted = in_fresh_process("construction", "measure_text", fitter, n)
            elif tensorflow_python() is not None:
                fitted = in_fresh_process(
                    "construction",
                    "measure_text",
                    fitter,
                    n,
                    python=tensorflow_python(),
                    backend="tensorflow",
                )
            if fitted is not None:
                fitting.append(fitted)
                print(
                    f"  construction text {fitter} N={n:.0e}: {fitted['seconds']:.2f} s "
                    f"({fitted['us_per_text']:.1f} us/text), peak "
                    f"{fitted['anonymous_peak_bytes_per_text']:.0f} B/text",
                    flush=True,
                )
        print(
            f"  construction from_table N={n:.0e}: {row['seconds']:.1f} s "
            f"({row['us_per_row']:.1f} us/row), beyond memory maps: peak "
            f"{row['anonymous_peak_bytes_per_row']:.0f} B/row, kept "
            f"{row['anonymous_kept_bytes_per_row']:.0f} B/row, arrays held "
            f"{row['held_bytes_per_row']:.0f} B/row (all resident: peak "
            f"{row['peak_bytes_per_row']:.0f}, kept {row['kept_bytes_per_row']:.0f})",
            flush=True,
        )
    workers = []
    for n in worker_sizes(settings):
        worker = in_fresh_process("construction", "measure_worker", n)
        workers.append(worker)
        print(
            f"  construction spawned worker N={n:.0e} ({worker['arrays_mib']:.0f} MiB of "
            f"arrays): RSS {worker['worker_rss_mib']:.0f} MiB, not file-backed "
            f"{worker['worker_anonymous_mib']:.0f} MiB",
            flush=True,
        )
    shards = []
    for n in shard_sizes(settings):
        folder = str(shard_folder(n))
        for mode in ("first", "cached", "cached, text"):
            row = in_fresh_process("construction", "measure_shards", folder, n, mode)
            shards.append(row)
            print(
                f"  construction from_webdataset N={n:.0e} ({mode}): dataset in "
                f"{row['dataset_seconds']:.2f} s, first batch at {row['first_batch_seconds']:.2f}"
                f" s, peak {row['anonymous_peak_bytes_per_sample']:.0f} B/sample, arrays "
                f"held {row['held_bytes_per_sample']:.0f} B/sample",
                flush=True,
            )
        peer = in_fresh_process("construction", "measure_webdataset", folder, n)
        shards.append({**peer, "mode": "webdataset"})
        print(
            f"  construction webdataset pipeline N={n:.0e}: first batch at "
            f"{peer['first_batch_seconds']:.2f} s",
            flush=True,
        )
    cached = [r for r in shards if r["mode"] == "cached"]
    ns = [r["n"] for r in rows]
    return {
        "shards": shards,
        "shards_cached_exponent": exponent(
            [r["n"] for r in cached], [r["first_batch_seconds"] for r in cached]
        ),
        "workers": workers,
        "worker_rss_exponent": exponent(
            [w["n"] for w in workers], [w["worker_anonymous_mib"] for w in workers]
        ),
        "from_table": rows,
        "datasets_from_parquet": peers,
        "text": fitting,
        "time_exponent": exponent(ns, [r["seconds"] for r in rows]),
        "peak_exponent": exponent(ns, [r["anonymous_peak_bytes_per_row"] * r["n"] for r in rows]),
    }
