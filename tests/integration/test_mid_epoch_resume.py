"""A run killed in the middle of an epoch and restarted with the same
``ds.backup_callback(save_freq=...)`` trains on exactly the batches of an uninterrupted
run from the backup on, and ends with the same weights."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

import resume_run
from multimodal_dataset import MultimodalDataset
from multimodal_dataset.engine.keras_loop import trainer_prefetches

pytestmark = pytest.mark.backend

SCRIPT = Path(resume_run.__file__)


def trained(record):
    """The batches a run trained on: its record less the first line, the batch Keras reads
    to build the model's metrics (it is served again as the epoch's first)."""
    return record.read_text().splitlines()[1:]


def test_a_run_killed_mid_epoch_resumes_at_the_next_batch_with_the_same_weights(tmp_path):
    whole = resume_run.train(tmp_path / "whole-backup", tmp_path / "whole.txt")

    # Killed by SIGKILL right after the backup of global step 12: epoch 1, step 4 of 8.
    backup, record = tmp_path / "backup", tmp_path / "resumed.txt"
    command = [sys.executable, str(SCRIPT), str(backup), str(record), str(tmp_path / "w"), "12"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == -9, done.stderr[-3000:]
    killed = trained(record)
    record.unlink()
    resumed = resume_run.train(backup, record)

    # The batches served are those trained where nothing reads ahead (tf.data does, and
    # the JAX trainer of Keras before 3.9: there the weights alone show it).
    if keras.backend.backend() != "tensorflow" and not trainer_prefetches():
        assert len(killed) == 12
        assert killed + trained(record) == trained(tmp_path / "whole.txt")
    for a, b in zip(resumed, whole, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert not backup.exists()  # deleted when fit ended normally, as Keras does


def test_mid_epoch_backups_refuse_steps_per_epoch_below_the_epoch(tmp_path):
    from multimodal_dataset import models, synthetic

    (img, txt, num), y = synthetic.make_multimodal(40, image_size=16, text_length=8, seed=0)
    ds = MultimodalDataset((img, txt, num), y, batch_size=10, seed=0)
    model = models.build_reference_model(image_shape=(16, 16, 3), text_length=8)
    with pytest.raises(ValueError, match=r"steps_per_epoch=2 below len\(ds\)=4.*save_freq='epoch'"):
        model.fit(ds, epochs=1, steps_per_epoch=2, verbose=0,
                  callbacks=[ds.backup_callback(tmp_path / "b", save_freq=1)])  # fmt: skip
