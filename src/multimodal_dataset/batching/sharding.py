"""Which part of every epoch this process reads under the active ``keras.distribution``,
on every supported Keras.

- Keras 3.8 to 3.10 train a multi-process distribution from ``tf.data`` only: refused,
  with the fix, when the dataset is built.
- Keras 3.11 to 3.15 never shard a ``PyDataset``: the dataset shards itself by the
  distribution's data shard (they need ``auto_shard_dataset=False`` across processes).
- Keras 3.16 (keras-nightly) shards every ``PyDataset`` itself under
  ``auto_shard_dataset=True``, taking batch indices ``range(shard_id, num_batches,
  num_shards)``: the dataset then serves every shard's batches, interleaved.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

import keras

from multimodal_dataset.batching.sampler import check_shard

#: ``(index, count, sharded by Keras itself)``.
Shards = tuple[int, int, bool]


def resolve_shards(shard: Any) -> Shards:
    """The shard a new dataset reads: ``shard`` given by hand, or the distribution's.

    Raises:
        ValueError: Where Keras cannot train the dataset across processes (3.8-3.10), or
            would shard a hand-given shard again (3.16+ with ``auto_shard_dataset``).
    """
    check_keras_takes_py_datasets_across_processes()
    if shard is None:
        check_torch_processes_have_a_distribution()
        return shard_layout()
    index, count = check_shard(shard)
    if keras_shards_py_datasets()[1] > 1:
        raise ValueError(
            f"shard={tuple(shard)!r} was given, but this Keras ({keras.version()}) shards "
            "every PyDataset itself under the active distribution (auto_shard_dataset="
            "True): each process would read a shard of a shard. Leave shard=None (the "
            "dataset then lays out its batches for Keras's sharding, each sample once per "
            "epoch), or turn Keras's sharding off with "
            "keras.distribution.DataParallel(..., auto_shard_dataset=False)."
        )
    return index, count, False


def check_distribution_unchanged(built_for: Shards) -> None:
    """Raises if the distribution now gives another shard than the dataset was built for."""
    now = shard_layout()
    if now == built_for:
        return
    index, count, by_keras = now
    raise ValueError(
        f"This dataset was built for shard {built_for[:2]} but the active "
        f"keras.distribution now gives shard ({index}, {count})"
        f"{' sharded by Keras itself' if by_keras else ''}: the distribution was "
        "set (or changed) after the dataset was built, and training would read a "
        "fraction of the data or stall. Build the dataset after "
        "keras.distribution.set_distribution(...), or pass shard= explicitly."
    )


def check_torch_processes_have_a_distribution() -> None:
    """On PyTorch, several processes (``torch.distributed`` initialized) but no
    ``keras.distribution``: Keras would train each process on its own data and weights.
    Keras 3.16 (keras-nightly) wraps the model in DDP under ``DataParallel``; older Keras
    has no torch distribution. Refused, with both fixes, when the dataset is built."""
    if keras.backend.backend() != "torch" or keras.distribution.distribution() is not None:
        return
    import sys

    torch = sys.modules.get("torch")
    distributed = getattr(torch, "distributed", None)
    if distributed is None or not distributed.is_available() or not distributed.is_initialized():
        return
    world = distributed.get_world_size()
    if world <= 1:
        return
    rank = distributed.get_rank()
    newer = (
        "set keras.distribution.DataParallel(devices=keras.distribution.list_devices()) "
        "before building the dataset (Keras then wraps the model in DDP and averages the "
        "gradients)"
        if keras_version() >= (3, 16)
        else f"Keras {keras.version()} has no torch distribution: use keras-nightly (3.16+), "
        "whose DataParallel wraps the model in DDP"
    )
    raise ValueError(
        f"torch.distributed runs {world} processes but no keras.distribution is set: "
        "model.fit would train every process on its own, each with its own weights, and "
        f"each would read every sample. To train one model: {newer}. For a training loop "
        f"of your own that averages gradients itself, pass shard=({rank}, {world}) to read "
        "this process's share of every epoch."
    )


def check_keras_takes_py_datasets_across_processes() -> None:
    """Keras 3.8 to 3.10 refuse every input but ``tf.data.Dataset`` under a multi-process
    distribution (3.11 lifted that): say so, with the fix, before anything is read."""
    distribution = keras.distribution.distribution()
    if distribution is None or not getattr(distribution, "_is_multi_process", False):
        return
    if keras_version() >= (3, 11):
        return
    raise ValueError(
        f"Keras {keras.version()} trains a multi-process keras.distribution only from a "
        "tf.data.Dataset: its fit, evaluate and predict refuse every PyDataset there. "
        "Keras 3.11 lifted that: upgrade (pip install 'keras>=3.11'), or train in one "
        "process (several devices of one process work with every Keras)."
    )


def keras_version() -> tuple[int, int]:
    """The installed Keras's ``(major, minor)``, e.g. ``(3, 16)`` for 3.16.0.dev..."""
    major, minor = (int(part) for part in keras.version().split(".")[:2])
    return major, minor


def shard_layout() -> Shards:
    """``(index, count, by_keras)`` for ``shard=None``: this process's data shard under
    the active keras.distribution, and whether Keras applies it itself."""
    keras_index, keras_count = keras_shards_py_datasets()
    if keras_count > 1:
        return keras_index, keras_count, True
    return (*distribution_shard(), False)


def distribution_shard() -> tuple[int, int]:
    """``(index, count)`` of this process's data shard under the active keras.distribution.

    One shard when no distribution is set or it runs in one process. Works with every
    supported Keras: 3.8 keeps the process count and id in private attributes.
    """
    distribution = keras.distribution.distribution()
    if distribution is None:
        return 0, 1
    processes = int(getattr(distribution, "num_processes", None) or _backend_processes()[0])
    if processes <= 1:
        return 0, 1
    if hasattr(distribution, "data_shard_id"):
        try:
            replicas = int(distribution.num_model_replicas)
        except (NotImplementedError, AttributeError):
            replicas = processes
        count = processes if replicas >= processes else replicas
        return int(distribution.data_shard_id), count
    return _backend_processes()[1], processes


def _backend_processes() -> tuple[int, int]:
    """``(process count, process id)`` from Keras's backend (Keras 3.8)."""
    from keras.src.backend import distribution_lib

    return int(distribution_lib.num_processes()), int(distribution_lib.process_id())


def keras_shards_py_datasets() -> tuple[int, int]:
    """``(data shard id, shard count)`` that Keras itself applies to every ``PyDataset``
    under the active distribution, or ``(0, 1)`` where it does not.

    Keras 3.16 (keras-nightly) takes batch indices ``range(shard_id, num_batches,
    num_shards)`` when the distribution's ``auto_shard_dataset`` is true; 3.15 and older
    never shard a ``PyDataset`` (3.15 refuses it in a multi-process run with
    auto-sharding, 3.8 feeds it as is).
    """
    distribution = keras.distribution.distribution()
    if distribution is None or not getattr(distribution, "auto_shard_dataset", False):
        return 0, 1
    if not _keras_shards_py_datasets():
        return 0, 1
    try:
        count = int(distribution.num_data_shards)
        index = int(distribution.data_shard_id)
    except (AttributeError, NotImplementedError):
        return 0, 1
    return (index, count) if count > 1 else (0, 1)


@functools.cache
def _keras_shards_py_datasets() -> bool:
    """Whether the installed Keras's ``PyDatasetAdapter`` shards datasets itself
    (feature-detected: its worker queue takes ``num_data_shards``)."""
    try:
        from keras.src.trainers.data_adapters import py_dataset_adapter
    except ImportError:
        return False
    enqueuer = getattr(py_dataset_adapter, "OrderedEnqueuer", None)
    if enqueuer is None:
        return False
    try:
        return "num_data_shards" in inspect.signature(enqueuer).parameters
    except (TypeError, ValueError):
        return False
