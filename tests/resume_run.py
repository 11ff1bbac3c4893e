"""A training run with `backup_callback(save_freq=2)` that records the samples of every
batch it trains on, and may kill itself (SIGKILL) right after the backup of a given
step: ``python tests/resume_run.py BACKUP RECORD WEIGHTS KILL_AT`` (KILL_AT: a global
step, or -1). The mid-epoch resume test runs it killed in a subprocess, then resumed and
uninterrupted in its own process."""

from __future__ import annotations

import os
import signal
import sys

import keras
import numpy as np

from multimodal_dataset import MultimodalDataset, models, synthetic

EPOCHS, SAMPLES, BATCH = 3, 80, 10


class Recorded(MultimodalDataset):
    """Writes the ids of every batch it serves to ``record`` (one line per batch)."""

    record = ""

    def __getitem__(self, index):
        batch = super().__getitem__(index)
        ids = np.asarray(batch[0][2])[:, 0].astype(int)
        with open(self.record, "a") as f:
            f.write(" ".join(map(str, ids)) + "\n")
        return batch


class KillAfter(keras.callbacks.Callback):
    """SIGKILLs its process after global step ``step`` (after the backup of that step)."""

    def __init__(self, step):
        super().__init__()
        self.step, self.seen = step, 0

    def on_train_batch_end(self, batch, logs=None):
        self.seen += 1
        if self.seen == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


def train(backup, record, kill_at=-1):
    """Trains the reference model for EPOCHS epochs; returns its weights. Starts from a
    clear Keras session, so that layer names (and the backup's paths) are those of a
    fresh process."""
    keras.backend.clear_session()
    (img, txt, num), y = synthetic.make_multimodal(SAMPLES, image_size=16, text_length=8, seed=0)
    num = np.concatenate([np.arange(SAMPLES)[:, None], num[:, 1:]], axis=1)  # column 0: the id
    ds = Recorded((img, txt, num), y, batch_size=BATCH, seed=7)
    ds.record = record
    model = models.build_reference_model(image_shape=(16, 16, 3), text_length=8, seed=0)
    callbacks = [ds.backup_callback(backup, save_freq=2)]
    if kill_at > 0:
        callbacks.append(KillAfter(kill_at))
    model.fit(ds, epochs=EPOCHS, callbacks=callbacks, verbose=0)
    return [np.asarray(w) for w in model.get_weights()]


if __name__ == "__main__":
    backup, record, weights, kill_at = sys.argv[1:]
    final = train(backup, record, int(kill_at))
    np.savez(weights, *final)
