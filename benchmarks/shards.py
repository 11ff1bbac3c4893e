"""WebDataset tar shards: the image benchmark's 2000 256x256 JPEGs as 10 shards, decoded to
64x64, batches of 32. `from_webdataset` (exact per-sample shuffle, by offset from the
shard index) against the webdataset library's streaming pipeline (no exact epochs) and,
on torch, ``wids.ShardListDataset`` in a random order, both with the same decoder."""

from __future__ import annotations

import tarfile

import numpy as np

from benchmarks.assembly import Epoch, pydataset_epoch
from benchmarks.common import DATA, Measurement, Settings, jpeg_folder, measure
from benchmarks.images import BATCH_SIZE, IMAGE_SIZE
from benchmarks.tables import decode_all

SHARDS = 10


def shards_of(folder) -> list[str]:
    """The JPEGs of ``folder`` as ``SHARDS`` tar shards of jpg + cls members (written once)."""
    import io

    paths = sorted(folder.glob("class_*/*.jpg"))
    out = folder.parent / f"{folder.name}_shards"
    targets = [out / f"{k:05d}.tar" for k in range(SHARDS)]
    if not all(t.exists() for t in targets):
        out.mkdir(parents=True, exist_ok=True)
        for k, part in enumerate(np.array_split(np.arange(len(paths)), SHARDS)):
            with tarfile.open(str(targets[k]) + ".tmp", "w") as tar:
                for i in part:
                    for extension, data in (
                        ("jpg", paths[i].read_bytes()),
                        ("cls", paths[i].parent.name[-1].encode()),
                    ):
                        info = tarfile.TarInfo(f"{i:06d}.{extension}")
                        info.size = len(data)
                        tar.addfile(info, io.BytesIO(data))
            (out / (targets[k].name + ".tmp")).rename(targets[k])
    return [str(t) for t in targets]


def ours(shards: list[str], storage_options: dict | None = None) -> Epoch:
    """`from_webdataset` over ``shards`` (local files, or URLs read with
    ``storage_options``), one batch at a time."""
    from multimodal_dataset import from_webdataset

    train, _ = from_webdataset(
        shards,
        image="jpg",
        target="cls",
        image_size=IMAGE_SIZE,
        validation_split=0,
        batch_size=BATCH_SIZE,
        seed=0,
        cache_dir=DATA / "cache",
        storage_options=storage_options,
    )
    return pydataset_epoch(train)


def webdataset_pipeline(shards: list[str]) -> Epoch:
    import webdataset

    pipeline = (
        webdataset.WebDataset(shards, shardshuffle=len(shards))
        .shuffle(1000)
        .to_tuple("jpg", "cls")
        .batched(BATCH_SIZE, collation_fn=lambda rows: rows)
    )

    def epoch() -> int:
        count = 0
        for rows in pipeline:
            images = decode_all([{"bytes": jpg} for jpg, _ in rows])
            count += len(images)
        return count

    return epoch


def wids_random(shards: list[str]) -> Epoch:
    import wids

    sizes: list[int] = []
    entries = []
    for shard in shards:
        with tarfile.open(shard) as tar:
            sizes.append(sum(1 for m in tar if m.name.endswith(".jpg")))
        entries.append({"url": shard, "nsamples": sizes[-1]})
    dataset = wids.ShardListDataset(entries, transformations=[])  # raw member streams
    order = np.random.default_rng(0).permutation(len(dataset))

    def epoch() -> int:
        count = 0
        for start in range(0, len(order), BATCH_SIZE):
            rows = [dataset[int(i)] for i in order[start : start + BATCH_SIZE]]
            count += len(decode_all([{"bytes": r[".jpg"].read()} for r in rows]))
        return count

    return epoch


def run(backend: str, settings: Settings) -> list[Measurement]:
    shards = shards_of(jpeg_folder(settings.image_files))
    loaders = {
        "from_webdataset: tar shards by offset": ours(shards),
        "webdataset pipeline (streaming, buffer shuffle)": webdataset_pipeline(shards),
    }
    if backend == "torch":
        loaders["wids.ShardListDataset (random order)"] = wids_random(shards)
    note = f"{settings.image_files} JPEGs 256x256 in {SHARDS} tar shards -> 64x64"
    return measure(loaders, "shards", backend, BATCH_SIZE, settings.repetitions, note)
