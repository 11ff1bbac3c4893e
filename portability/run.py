"""The portability check: the same data and model on TensorFlow, JAX and PyTorch.

Phases (nox runs each in the right venv; see ``nox -s portability``):

- ``train``: in one backend's venv, digest two epochs of the batch stream, fit the
  reference model, save it as ``models/<backend>.keras`` and predict a fixed batch.
- ``check``: in one backend's venv (or Keras's ``numpy`` backend), load every saved model
  and predict the same fixed batch.
- ``report``: compare everything; write ``report.json``, ``report.md`` and
  ``loss_curves.png`` (the documentation site includes them), and with ``--check``
  exit 1 when a criterion fails.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np

from portability.config import BACKENDS, settings


def data(samples: int):
    from multimodal_dataset import synthetic

    (img, txt, num), y = synthetic.make_multimodal(samples, seed=0)
    split = int(samples * 0.8)
    return (
        (img[:split], txt[:split], num[:split]),
        y[:split],
        (img[split:], txt[split:], num[split:]),
        y[split:],
    )


def fixed_batch(samples: int):
    """The first 64 validation samples, as a MultimodalDataset batch (inference order)."""
    from multimodal_dataset import MultimodalDataset

    _, _, x_val, _ = data(samples)
    ds = MultimodalDataset(tuple(a[:64] for a in x_val), batch_size=64)
    return ds[0][0]


def same_initial_weights(model) -> list[np.ndarray]:
    """Glorot-uniform kernels and embeddings and zero biases, drawn with numpy from seed 0."""
    rng = np.random.default_rng(0)
    weights = []
    for w in model.get_weights():
        if w.ndim == 1:
            weights.append(np.zeros_like(w))
            continue
        receptive = int(np.prod(w.shape[:-2])) if w.ndim > 2 else 1
        fan_in, fan_out = w.shape[-2] * receptive, w.shape[-1] * receptive
        limit = np.sqrt(6 / (fan_in + fan_out))
        weights.append(rng.uniform(-limit, limit, w.shape).astype(w.dtype))
    return weights


def versions() -> dict:
    out = {}
    for name in ("keras", "numpy", "tensorflow-cpu", "tensorflow", "jax", "jaxlib", "torch"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out


def train(backend: str, quick: bool) -> None:
    import keras

    from multimodal_dataset import MultimodalDataset, models

    config = settings(quick)
    x, y, x_val, y_val = data(config["samples"])

    def dataset():
        return MultimodalDataset(x, y, batch_size=64, seed=0)

    from multimodal_dataset.testing import stream_digest

    digest = stream_digest(dataset())
    keras.utils.set_random_seed(0)
    model = models.build_reference_model(seed=0)
    # Seeded initialisers still draw from each backend's own generator; start every backend
    # from the same numpy-drawn weights so that the runs differ only in arithmetic.
    model.set_weights(same_initial_weights(model))
    seconds: list[float] = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds.append(round(time.perf_counter() - self.start, 3))

    val = MultimodalDataset(x_val, y_val, batch_size=256, shuffle=False)
    # shuffle=False: the dataset shuffles samples itself; Keras's extra batch shuffle draws
    # from Python's random state, which fit consumes differently on TensorFlow.
    train_ds = dataset()
    history = model.fit(
        train_ds,
        validation_data=val,
        epochs=config["epochs"],
        shuffle=False,
        verbose=2,
        callbacks=[Timer(), train_ds.epoch_callback()],
    )
    folder = config["folder"]
    (folder / "models").mkdir(parents=True, exist_ok=True)
    model.save(folder / "models" / f"{backend}.keras")
    predictions = model.predict_on_batch(fixed_batch(config["samples"]))
    chance = float(max(np.mean(y_val), 1 - np.mean(y_val)))
    write(
        folder / "parts" / f"train_{backend}.json",
        {
            "backend": backend,
            "digest": digest,
            "loss": [float(v) for v in history.history["loss"]],
            "val_accuracy": [float(v) for v in history.history["val_accuracy"]],
            "seconds_per_epoch": seconds,
            "chance": chance,
            "predictions": np.asarray(keras.ops.convert_to_numpy(predictions)).tolist(),
            "versions": versions(),
        },
    )
    accuracy = history.history["val_accuracy"][-1]
    print(f"{backend}: digest {digest[:16]}..., validation accuracy {accuracy:.3f}")


def check(loader: str, quick: bool) -> None:
    import keras

    config = settings(quick)
    folder = config["folder"]
    batch = fixed_batch(config["samples"])
    results, compiled = {}, {}
    for backend in BACKENDS:
        path = folder / "models" / f"{backend}.keras"
        part = folder / "parts" / f"train_{backend}.json"
        if not path.exists() or not part.exists():
            continue
        # Loading with its optimizer (compile=True) can fail across backends: a model
        # compiled on PyTorch saves its optimizer as a torch-only class. Record it; predict
        # with the model loaded for inference (compile=False), which needs no optimizer.
        try:
            keras.saving.load_model(path)
            compiled[backend] = "ok"
        except Exception as error:
            message = str(error).split(". Full object config")[0].splitlines()[0]
            compiled[backend] = f"{type(error).__name__}: {message}"
        model = keras.saving.load_model(path, compile=False)
        predictions = np.asarray(keras.ops.convert_to_numpy(model.predict_on_batch(batch)))
        own = np.asarray(json.loads(part.read_text())["predictions"], dtype=np.float32)
        results[backend] = float(np.abs(predictions.astype(np.float32) - own).max())
        print(
            f"{loader} loading {backend}'s model: max |difference| {results[backend]:.2e}; "
            f"with its optimizer: {compiled[backend]}"
        )
    write(
        folder / "parts" / f"check_{loader}.json",
        {
            "loader": loader,
            "max_abs_diff": results,
            "loads_compiled": compiled,
            "versions": versions(),
        },
    )


def write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("phase", choices=["train", "check", "report"])
    parser.add_argument("--quick", action="store_true", help="small data, few epochs (CI)")
    parser.add_argument("--check", action="store_true", help="report: exit 1 on a failed criterion")
    args = parser.parse_args()
    if args.phase == "report":
        from portability import report

        return report.main(settings(args.quick)["folder"], quick=args.quick, check=args.check)
    import keras

    backend = keras.backend.backend()
    (train if args.phase == "train" else check)(backend, args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
