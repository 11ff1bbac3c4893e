"""Command line: ``python -m multimodal_dataset demo``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _demo(args: argparse.Namespace) -> int:
    import keras

    from multimodal_dataset import MultimodalDataset, models, synthetic

    (img, txt, num), y = synthetic.make_multimodal(args.samples, seed=args.seed)
    split = int(len(y) * 0.8)
    train = MultimodalDataset(
        (img[:split], txt[:split], num[:split]),
        y[:split],
        batch_size=args.batch_size,
        seed=args.seed,
    )
    val = MultimodalDataset(
        (img[split:], txt[split:], num[split:]),
        y[split:],
        batch_size=args.batch_size,
        shuffle=False,
    )
    model = models.build_reference_model(seed=args.seed)
    train.check(model)
    print(f"Keras {keras.__version__} on the {keras.backend.backend()} backend")
    print(f"train: {train}")
    print(f"validation: {val}")
    history = model.fit(train, validation_data=val, epochs=args.epochs, verbose=args.verbose)
    accuracy = history.history["val_accuracy"][-1]
    chance = max(float(y[split:].mean()), 1 - float(y[split:].mean()))
    print(f"validation accuracy: {accuracy:.3f} (chance: {chance:.3f})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m multimodal_dataset",
        description="Feed multi-input Keras 3 models on TensorFlow, JAX and PyTorch.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo",
        help="train the reference image+text+numeric model on synthetic data "
        "(backend from KERAS_BACKEND)",
    )
    demo.add_argument("--epochs", type=int, default=5)
    demo.add_argument("--samples", type=int, default=4000)
    demo.add_argument("--batch-size", type=int, default=64)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument(
        "--verbose",
        type=int,
        default=1,
        choices=(0, 1, 2),
        help="Keras's fit verbosity (1: progress bar)",
    )
    demo.set_defaults(run=_demo)
    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
