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
    loaders = {"ImageFiles in MultimodalDataset": multimodal_images(folder)}
    if backend == "tensorflow":
        # Keras's own loader: tf.data needs TensorFlow; format="grain" decodes with Pillow
        # and resizes with the backend's ops.
        loaders["image_dataset_from_directory (tf)"] = keras_directory(folder, "tf")
        loaders["image_dataset_from_directory (grain)"] = keras_directory(folder, "grain")
    note = f"{settings.image_files} JPEGs 256x256 -> 64x64"
    return measure(loaders, "images", backend, BATCH_SIZE, settings.repetitions, note)
