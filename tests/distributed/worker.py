"""One training process under keras.distribution.DataParallel on JAX (run by the tests in
this folder as a subprocess): fits the reference model from a MultimodalDataset and writes
what it read and what it learned to a JSON file.

Usage: ``python worker.py OUT.json devices`` (one process; set XLA_FLAGS for CPU devices)
or ``python worker.py OUT.json processes PROCESS_ID PORT`` (one of two processes).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax

jax.config.update("jax_cpu_collectives_implementation", "gloo")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from multimodal_dataset import MultimodalDataset, models, synthetic  # noqa: E402

SAMPLES = 203  # divides by neither the per-process batch nor the global batch
BATCH_SIZE = 8  # per process; divisible by the 4 devices of the one-process run
EPOCHS = 2


class Recording(MultimodalDataset):
    """Records the real (non-padding) sample ids of every batch read, per epoch."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.read: dict[int, list[int]] = {}

    def __getitem__(self, index):
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
    return {
        "shard": list(ds.shard),
        "steps": len(ds),
        "batch_shapes": sorted({tuple(ds[i][0][0].shape) for i in range(len(ds))}),
        # Epoch 0's first read builds the model; the epoch callback then numbers epochs
        # as fit does, so the training epochs are the last EPOCHS keys.
        "ids": [ds.read[e] for e in sorted(ds.read)[-EPOCHS:]],
        "loss": history.history["loss"],
        "weights_sha256": hashlib.sha256(weights.astype(np.float32).tobytes()).hexdigest(),
    }


def main() -> None:
    out, mode = sys.argv[1], sys.argv[2]
    if mode == "processes":
        process_id, port = int(sys.argv[3]), int(sys.argv[4])
        keras.distribution.initialize(
            job_addresses=f"localhost:{port}", num_processes=2, process_id=process_id
        )
    # Keras shards only tf.data itself; the dataset shards itself by the distribution.
    distribution = keras.distribution.DataParallel(devices=jax.devices(), auto_shard_dataset=False)
    keras.distribution.set_distribution(distribution)
    result = {"devices": len(jax.devices()), "processes": jax.process_count()}
    result["pad_remainder"] = train(pad_remainder=True)
    result["drop_remainder"] = train(drop_remainder=True)
    with open(out, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
