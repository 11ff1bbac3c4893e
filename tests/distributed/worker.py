"""One training process under keras.distribution.DataParallel on JAX or PyTorch (run by the
tests in this folder as a subprocess): fits the reference model from a MultimodalDataset
and writes what it read and what it learned to a JSON file.

Usage: ``python worker.py OUT.json devices`` (one process; set XLA_FLAGS for CPU devices),
``python worker.py OUT.json processes PROCESS_ID PORT`` (one of two processes, Keras's
sharding off), or ``python worker.py OUT.json defaults PROCESS_ID PORT`` (one of two
processes with DataParallel's defaults: Keras 3.16+ then shards the dataset itself, 3.15
refuses a PyDataset, 3.8 feeds it as is). With ``KERAS_BACKEND=torch`` the two processes
talk through torch.distributed's gloo: Keras 3.16+ wraps the model in DDP; older Keras has
no torch distribution, and the dataset refuses to train each process on its own.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")
TORCH = os.environ["KERAS_BACKEND"] == "torch"

if not TORCH:
    import jax

    if sys.argv[2] != "devices":  # several processes on one machine talk through gloo
        jax.config.update("jax_cpu_collectives_implementation", "gloo")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from multimodal_dataset import MultimodalDataset, models, synthetic  # noqa: E402
from multimodal_dataset.batching.sharding import (  # noqa: E402
    keras_shards_py_datasets,
    keras_version,
)

SAMPLES = 203  # divides by neither the per-process batch nor the global batch
BATCH_SIZE = 8  # per process; divisible by the 4 devices of the one-process run
EPOCHS = 2


class Recording(MultimodalDataset):
    """Records the real (non-padding) sample ids of every batch read, per epoch."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.read: dict[int, list[int]] = {}

    def on_epoch_begin(self):
        super().on_epoch_begin()
        # The epoch callback has set fit's epoch number: what was read under this number
        # before (the batch Keras reads to build the model) is not part of the epoch.
        self.read[self.epoch] = []

    def __getitem__(self, index):
        # fit(shuffle=False) requests batches in index order, so batch `index` is served.
        batch = super().__getitem__(index)
        real = batch[2] > 0 if self.pad_remainder else slice(None)
        self.read.setdefault(self.epoch, []).extend(self.batch_indices(index)[real].tolist())
        return batch


def train(**dataset_kwargs) -> dict:
    keras.utils.set_random_seed(0)
    (img, txt, num), y = synthetic.make_multimodal(SAMPLES, seed=0)
    ds = Recording((img, txt, num), y, batch_size=BATCH_SIZE, seed=0, **dataset_kwargs)
    model = models.build_reference_model(seed=0)
    history = model.fit(
        ds, epochs=EPOCHS, shuffle=False, verbose=0, callbacks=[ds.epoch_callback()]
    )
    weights = np.concatenate([np.ravel(w) for w in model.get_weights()])
    # The epoch callback numbers epochs as fit does: the training epochs are 0..EPOCHS-1.
    # (Taken before batch_shapes reads every batch again.)
    ids = [ds.read[e] for e in range(EPOCHS)]
    return {
        "ids": ids,
        "shard": list(ds.shard),
        "sharded_by_keras": ds.sharded_by_keras,
        "steps": len(ds),
        "batch_shapes": sorted({tuple(ds[i][0][0].shape) for i in range(len(ds))}),
        "loss": history.history["loss"],
        "weights_sha256": hashlib.sha256(weights.astype(np.float32).tobytes()).hexdigest(),
    }


def torch_main(out: str, mode: str, process_id: int, port: int) -> None:
    import torch

    result: dict = {"keras": keras.version()}
    if not hasattr(keras.distribution, "initialize") or keras_version() < (3, 16):
        # No torch distribution in this Keras: torch.distributed by hand, and the dataset
        # must refuse to train each process on its own.
        torch.distributed.init_process_group(
            "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=process_id, world_size=2
        )
        try:
            train(pad_remainder=True)
        except ValueError as error:
            result["error"] = str(error)
    else:
        keras.distribution.initialize(
            job_addresses=f"127.0.0.1:{port}", num_processes=2, process_id=process_id
        )
        devices = keras.distribution.list_devices()
        distribution = keras.distribution.DataParallel(
            devices=devices, auto_shard_dataset=mode == "defaults"
        )
        keras.distribution.set_distribution(distribution)
        result["devices"] = len(devices)
        result["pad_remainder"] = train(pad_remainder=True)
    result["processes"] = torch.distributed.get_world_size()
    with open(out, "w") as f:
        json.dump(result, f)
    torch.distributed.destroy_process_group()


def main() -> None:
    out, mode = sys.argv[1], sys.argv[2]
    if TORCH:
        torch_main(out, mode, int(sys.argv[3]), int(sys.argv[4]))
        return
    if mode in ("processes", "defaults"):
        process_id, port = int(sys.argv[3]), int(sys.argv[4])
        keras.distribution.initialize(
            job_addresses=f"localhost:{port}", num_processes=2, process_id=process_id
        )
    result = {
        "devices": len(jax.devices()),
        "processes": jax.process_count(),
        "keras": keras.version(),
    }
    if mode == "defaults":
        # DataParallel's default auto_shard_dataset=True.
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=jax.devices()))
        result["keras_shards"] = keras_shards_py_datasets()[1] > 1
        try:
            result["pad_remainder"] = train(pad_remainder=True)
        except ValueError as error:  # Keras 3.15 refuses a PyDataset here, naming the fix
            result["error"] = str(error)
    else:
        # Keras 3.15 and older shard only tf.data; the dataset shards itself.
        distribution = keras.distribution.DataParallel(
            devices=jax.devices(), auto_shard_dataset=False
        )
        keras.distribution.set_distribution(distribution)
        try:
            result["pad_remainder"] = train(pad_remainder=True)
            result["drop_remainder"] = train(drop_remainder=True)
        except ValueError as error:  # Keras 3.8-3.10: no PyDataset across processes
            result["error"] = str(error)
    with open(out, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
