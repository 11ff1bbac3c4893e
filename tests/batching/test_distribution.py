"""Keras's own sharding and the distribution: on a Keras that shards PyDatasets itself
each process reads exactly its shard, and every conflict is an error with the fix."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from conftest import N, real_ids, shards
from multimodal_dataset import MultimodalDataset

pytestmark = pytest.mark.keras


@pytest.mark.parametrize("mode", ["pad_remainder", "drop_remainder"])
def test_under_keras_own_sharding_each_process_reads_exactly_its_shard(keras_shards, mode):
    ids = np.arange(N)
    expected = [real_ids(ds) for ds in shards(2, **{mode: True})]
    for process in (0, 1):
        keras_shards(KerasShardingDistribution(process))
        ds = MultimodalDataset(ids[:, None], ids, batch_size=5, seed=7, **{mode: True})
        assert ds.sharded_by_keras and ds.shard == (process, 2)
        every = real_ids(ds)
        assert len(every) == 2 * len(expected[process])  # every process's batches
        taken = every[process::2]  # what Keras's PyDatasetAdapter feeds this process
        assert [b.tolist() for b in taken] == [b.tolist() for b in expected[process]]


def test_a_shard_given_by_hand_under_keras_own_sharding_is_refused(keras_shards):
    keras_shards(KerasShardingDistribution(0))
    ids = np.arange(N)
    with pytest.raises(ValueError, match=r"read a shard of a shard.*auto_shard_dataset=False"):
        MultimodalDataset(ids, ids, batch_size=5, shard=(0, 2), pad_remainder=True)


def test_without_auto_sharding_the_dataset_shards_itself(keras_shards):
    keras_shards(KerasShardingDistribution(1, auto_shard_dataset=False))
    ids = np.arange(N)
    ds = MultimodalDataset(ids, ids, batch_size=5, pad_remainder=True)
    assert not ds.sharded_by_keras and ds.shard == (1, 2)


def test_a_distribution_set_after_the_dataset_was_built_fails_at_the_start_of_fit(keras_shards):
    ids = np.arange(N)
    ds = MultimodalDataset(ids, ids, batch_size=5, pad_remainder=True)
    keras_shards(KerasShardingDistribution(0))
    with pytest.raises(ValueError, match="set \\(or changed\\) after the dataset was built"):
        ds.on_epoch_begin()  # what Keras calls as an epoch of fit begins


def test_keras_before_3_11_refuses_py_datasets_across_processes_so_the_dataset_says_so(
    monkeypatch,
):
    distribution = KerasShardingDistribution(0, auto_shard_dataset=False)
    distribution._is_multi_process = True
    monkeypatch.setattr(keras.distribution, "distribution", lambda: distribution)
    monkeypatch.setattr(keras, "version", lambda: "3.10.0")
    ids = np.arange(N)
    with pytest.raises(ValueError, match=r"Keras 3\.10\.0 trains .* only from a tf\.data"):
        MultimodalDataset(ids, ids, batch_size=5, pad_remainder=True)
    monkeypatch.setattr(keras, "version", lambda: "3.11.0")
    assert MultimodalDataset(ids, ids, batch_size=5, pad_remainder=True).shard == (0, 2)


class TwoTorchProcesses:
    """What torch.distributed answers in rank 1 of a two-process group."""

    @staticmethod
    def is_available():
        return True

    @staticmethod
    def is_initialized():
        return True

    @staticmethod
    def get_world_size():
        return 2

    @staticmethod
    def get_rank():
        return 1


@pytest.mark.parametrize(
    ("version", "fix"), [("3.15.1", "keras-nightly"), ("3.16.0", "DataParallel")]
)
def test_torch_processes_without_a_keras_distribution_are_refused_naming_the_fixes(
    monkeypatch, version, fix
):
    import sys
    import types

    monkeypatch.setattr(keras.backend, "backend", lambda: "torch")
    monkeypatch.setattr(keras, "version", lambda: version)
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(distributed=TwoTorchProcesses))
    ids = np.arange(N)
    with pytest.raises(
        ValueError, match=rf"would train every process on its own.*{fix}.*shard=\(1, 2\)"
    ):
        MultimodalDataset(ids, ids, batch_size=5)
    assert MultimodalDataset(ids, ids, batch_size=5, shard=(1, 2), drop_remainder=True).shard == (
        1,
        2,
    )


class KerasShardingDistribution:
    """What Keras 3.16's PyDatasetAdapter reads of a DataParallel over two processes with
    auto_shard_dataset=True (the default): it then takes batches shard_id, shard_id + 2, ..."""

    def __init__(self, data_shard_id, auto_shard_dataset=True):
        self.data_shard_id = data_shard_id
        self.auto_shard_dataset = auto_shard_dataset
        self.num_data_shards = 2
        self.num_processes = 2
        self.num_model_replicas = 2


@pytest.fixture
def keras_shards(monkeypatch):
    """Pretends to run under a two-process distribution on a Keras that shards PyDatasets."""
    from multimodal_dataset.batching import sharding as distribution_module

    monkeypatch.setattr(distribution_module, "_keras_shards_py_datasets", lambda: True)

    def use(distribution):
        monkeypatch.setattr(keras.distribution, "distribution", lambda: distribution)

    return use
