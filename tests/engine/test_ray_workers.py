"""Ray actors as the dataset's workers: the same stream as inline, an actor killed mid-epoch
changes nothing, errors keep their message, the dataset pickles and its actors stop, and
caches fill on the cluster (a local one on 127.0.0.1, started once for this module)."""

from __future__ import annotations

import pickle
import time

import keras
import numpy as np
import pytest

from multimodal_dataset import (
    ImageFiles,
    MultimodalDataset,
    WorkerError,
    models,
    synthetic,
    testing,
)
from multimodal_dataset.engine import gatherer as gatherer_module
from worker_sources import DiesOnce, Failing

# Every test here needs Ray (the `ray` extra): nox installs it in the sessions that run
# them. One cluster per test process (xdist_group keeps them in one worker).
pytestmark = [pytest.mark.keras, pytest.mark.ray, pytest.mark.xdist_group("ray")]


@pytest.fixture
def cluster(ray_cluster):
    return ray_cluster


def ray_workers(**kwargs):
    from multimodal_dataset.ray import RayWorkers

    return RayWorkers(**{"num_actors": 2, **kwargs})


def running_pool(ds):
    return ds._gatherer._remote


def images_dataset(image_files, **kwargs):
    source = ImageFiles(image_files, (8, 8))
    inputs = (source, np.arange(12.0))
    return MultimodalDataset(inputs, np.arange(12), batch_size=4, seed=3, **kwargs)


def test_ray_actors_serve_the_stream_of_an_inline_dataset(cluster, image_files):
    inline = testing.stream_digest(images_dataset(image_files), epochs=2)
    ds = images_dataset(image_files, workers=ray_workers())
    try:
        assert testing.stream_digest(ds, epochs=2) == inline
        assert len(set(running_pool(ds).pids())) == 2
    finally:
        ds.close()


def test_a_batch_whose_actor_is_killed_mid_epoch_is_produced_again_and_the_stream_is_unchanged(
    cluster, tmp_path
):
    def make(**kwargs):
        source = DiesOnce(40, bad=17, marker=tmp_path / "died")
        return MultimodalDataset(source, np.arange(40), batch_size=8, seed=5, **kwargs)

    inline = testing.stream_digest(make(), epochs=2)
    ds = make(workers=ray_workers(), prefetch=3)
    try:
        assert testing.stream_digest(ds, epochs=2) == inline
        assert (tmp_path / "died").exists()  # an actor did die, mid-epoch
        assert len(running_pool(ds).actors) == 2  # and was replaced
    finally:
        ds.close()


def failing_dataset(how, **workers):
    """Twelve ids in two batches; sample 5 kills its actor or raises an unpicklable error."""
    source = Failing(12, bad=5, how=how)
    return MultimodalDataset(
        source, np.arange(12), batch_size=6, shuffle=False, workers=ray_workers(**workers)
    )


def test_a_batch_whose_actors_keep_dying_is_a_worker_error_naming_the_batch(cluster):
    ds = failing_dataset("kill", max_retries=1)
    try:
        with pytest.raises(WorkerError, match=r"Batch 0 of epoch 0 .* died 2 times"):
            ds[0]
        assert ds[1][1].tolist() == list(range(6, 12))
    finally:
        ds.close()


def test_an_error_raised_in_an_actor_reaches_the_caller_with_its_message(cluster):
    ds = failing_dataset("unpicklable")
    try:
        with pytest.raises(WorkerError, match=r"sample 5: the custom error's message"):
            ds[0]
    finally:
        ds.close()


def test_a_dataset_with_ray_workers_pickles_and_its_actors_stop_at_close(cluster, image_files):
    import ray

    ds = images_dataset(image_files, workers=ray_workers())
    first = ds[0]
    actors = list(running_pool(ds).actors)
    copy = pickle.loads(pickle.dumps(ds))
    assert running_pool(copy) is None  # the copy starts its own actors when it needs them
    for a, b in zip(keras.tree.flatten(copy[0]), keras.tree.flatten(first), strict=True):
        np.testing.assert_array_equal(a, b)
    copy.close()
    ds.close()
    assert running_pool(ds) is None
    for actor in actors:  # ray.kill is asynchronous: a call may still be answered at first
        deadline = time.monotonic() + 30
        with pytest.raises(ray.exceptions.RayActorError):
            while time.monotonic() < deadline:
                ray.get(actor.pid.remote(), timeout=30)
                time.sleep(0.1)


def test_describe_parallelism_names_the_actors(cluster, image_files):
    ds = images_dataset(image_files, workers=ray_workers(num_actors=3, resources={"CPU": 0.5}))
    text = str(ds.describe_parallelism())
    assert "3 Ray actors (CPU: 0.5 each)" in text
    assert "3 prefetch threads" in text  # one batch in flight per actor, by default
    with pytest.raises(ValueError, match="use_multiprocessing=True does not apply"):
        images_dataset(image_files, workers=ray_workers(), use_multiprocessing=True)


@pytest.mark.backend
def test_fit_with_ray_workers_trains_and_releases_the_actors(cluster, monkeypatch):
    monkeypatch.setattr(gatherer_module, "KEEP_ALIVE_S", 0.2)
    (img, txt, num), y = synthetic.make_multimodal(96, seed=0)
    ds = MultimodalDataset((img, txt, num), y, batch_size=32, seed=0, workers=ray_workers())
    model = models.build_reference_model(seed=0)
    history = model.fit(ds, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    deadline = time.monotonic() + 20
    while running_pool(ds) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert running_pool(ds) is None  # released after fit, as process pools are


def test_fill_cache_on_ray_actors_fills_a_shared_cache_once(cluster, image_files, tmp_path):
    from multimodal_dataset.ray import RayWorkers

    cache = tmp_path / "cache"
    source = ImageFiles(image_files, (8, 8), dtype="uint8", cache=cache)
    ds = MultimodalDataset(source, np.arange(12), batch_size=4, shuffle=False)
    (report,) = ds.fill_cache(workers=RayWorkers(num_actors=2))
    assert (report.samples, report.already, report.failed) == (12, 0, [])
    (again,) = ds.fill_cache(workers=RayWorkers(num_actors=2))
    assert again.already == 12  # every image was written, once
    plain = MultimodalDataset(
        ImageFiles(image_files, (8, 8), dtype="uint8"), np.arange(12), batch_size=4, shuffle=False
    )
    np.testing.assert_array_equal(ds[1][0], plain[1][0])


def test_the_cache_command_fills_on_a_ray_cluster(cluster, example, tmp_path, capsys):
    from multimodal_dataset import cli

    cache = tmp_path / "cache"
    command = ["cache", str(example), "--cache", str(cache), "--image", "image",
               "--image-size", "16", "16", "--ray", cluster, "--workers", "2"]  # fmt: skip
    assert cli.main(command) == 0
    printed = capsys.readouterr().out
    assert "filling with 2 Ray actors" in printed
    assert "48 decoded now" in printed and "12 decoded now" in printed  # the two splits


def test_actors_the_cluster_has_no_room_for_are_an_error_saying_what_is_free(cluster):
    workers = ray_workers(num_actors=1, resources={"CPU": 64}, start_timeout_s=1)
    ds = MultimodalDataset(np.zeros((8, 2)), np.arange(8), batch_size=4, workers=workers)
    try:
        with pytest.raises(WorkerError, match=r"not started within 1 s: the cluster has CPU: 4"):
            ds[0]
    finally:
        ds.close()
