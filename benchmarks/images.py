"""Image files: JPEGs decoded and resized to 64x64, batches of 32, by ImageFiles inside
MultimodalDataset and by Keras's image_dataset_from_directory (tf.data and grain)."""

from __future__ import annotations

from benchmarks.assembly import Epoch, pydataset_epoch
from benchmarks.common import Measurement, Settings, jpeg_folder, measure

IMAGE_SIZE = (64, 64)
BATCH_SIZE = 32


def multimodal_images(folder) -> Epoch:
    from multimodal_dataset import ImageFiles, MultimodalDataset

    paths = sorted(folder.glob("class_*/*.jpg"))
    labels = [int(p.parent.name[-1]) for p in paths]
    return pydataset_epoch(
        MultimodalDataset(ImageFiles(paths, size=IMAGE_SIZE), labels, batch_size=BATCH_SIZE, seed=0)
    )


def bare_decode(folder) -> Epoch:
    """The bound on this machine: the files' bytes already in memory, decoded by
    simplejpeg at the DCT scale ImageFiles uses, in two threads, in random order; no
    file reads, no batches, nothing else."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np
    import simplejpeg

    data = [p.read_bytes() for p in sorted(folder.glob("class_*/*.jpg"))]
    rng = np.random.default_rng(0)
    pool = ThreadPoolExecutor(2)

    def decode(i: int) -> None:
        simplejpeg.decode_jpeg(data[i], min_height=IMAGE_SIZE[0], min_width=IMAGE_SIZE[1])

    def epoch() -> int:
        list(pool.map(decode, rng.permutation(len(data)).tolist(), chunksize=16))
        return len(data)

    return epoch


def keras_directory(folder, format: str):
    import keras

    ds = keras.utils.image_dataset_from_directory(
        folder,
        image_size=IMAGE_SIZE,
        batch_size=BATCH_SIZE,
        shuffle=True,
        seed=0,
        format=format,
        verbose=False,
    )

    def epoch() -> int:
        count = 0
        for _, y in ds:
            count += len(y)
        return count

    return epoch


def run(backend: str, settings: Settings) -> list[Measurement]:
    folder = jpeg_folder(settings.image_files)
    loaders = {
        "ImageFiles in MultimodalDataset": multimodal_images(folder),
        "simplejpeg alone, 2 threads, bytes in memory (bound)": bare_decode(folder),
    }
    if backend == "tensorflow":
        # Keras's own loader: tf.data needs TensorFlow; format="grain" decodes with Pillow
        # and resizes with the backend's ops.
        loaders["image_dataset_from_directory (tf)"] = keras_directory(folder, "tf")
        loaders["image_dataset_from_directory (grain)"] = keras_directory(folder, "grain")
    note = f"{settings.image_files} JPEGs 256x256 -> 64x64"
    return measure(loaders, "images", backend, BATCH_SIZE, settings.repetitions, note)
