"""The test matrix: the same suite on TensorFlow, JAX and PyTorch, each in its own venv.

`nox` runs lint, the three test sessions and the distributed (JAX multi-device and
multi-process) tests; `nox -s demo` trains the reference model;
`nox -s bench` runs the benchmarks in each backend's venv and merges them into
benchmarks/results/ (`nox -s bench -- --quick` is the seconds-long smoke run CI does).
Sessions use virtualenv + pip (uv does not see this machine's local wheel cache).
"""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "virtualenv"
nox.options.sessions = ["lint", "tests", "distributed"]
nox.options.reuse_existing_virtualenvs = True

# What installs each backend. torch is pinned to the CPU wheel: an unpinned `torch`
# resolves to a multi-GB CUDA build.
BACKENDS = {
    "tensorflow": [".[tensorflow,test]"],
    "jax": [".[jax,test]"],
    "torch": ["torch==2.13.0", ".[torch,test]"],
}


def install_backend(session: nox.Session, backend: str) -> None:
    session.install(*BACKENDS[backend])
    session.env["KERAS_BACKEND"] = backend
    session.env.setdefault("PYTHONHASHSEED", "0")
    # Keep TensorFlow's C++ logging to warnings and above.
    session.env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@nox.session
@nox.parametrize("backend", list(BACKENDS))
def tests(session: nox.Session, backend: str) -> None:
    """Runs the whole pytest suite on one Keras backend."""
    install_backend(session, backend)
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session
def distributed(session: nox.Session) -> None:
    """Multi-device (4 CPU devices) and two-process training with keras.distribution on JAX."""
    install_backend(session, "jax")
    session.run("python", "-m", "pytest", "tests/distributed", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check, ruff format --check and mypy."""
    session.install("ruff", "mypy", "numpy", "keras")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")


@nox.session
@nox.parametrize("backend", ["jax", "tensorflow", "torch"])
def demo(session: nox.Session, backend: str) -> None:
    """Trains the reference model and prints validation accuracy."""
    install_backend(session, backend)
    session.run("python", "-m", "multimodal_dataset", "demo", *session.posargs)


# Each backend's venv also gets the loaders it is compared with: tf.data and Keras's
# image_dataset_from_directory (format "tf" and "grain") with TensorFlow, torch's DataLoader
# with torch, grain's MapDataset with JAX.
BENCH_PEERS = {"tensorflow": ["grain"], "jax": ["grain"], "torch": []}


@nox.session
@nox.parametrize("backend", list(BACKENDS))
def bench(session: nox.Session, backend: str) -> None:
    """Benchmarks one backend; then bench_report merges every backend's results."""
    install_backend(session, backend)
    if BENCH_PEERS[backend]:
        session.install(*BENCH_PEERS[backend])
    session.run("python", "benchmarks/run.py", "--backend", backend, *session.posargs)
    session.notify("bench_report", session.posargs)


@nox.session
def bench_report(session: nox.Session) -> None:
    """Writes benchmarks/results/latest.{json,md,png} (and the README table after a full run)."""
    session.install("matplotlib")
    session.run("python", "benchmarks/report.py", *session.posargs)


# The portability check: train in each backend's venv, then load every saved model in each
# venv (and, in the JAX venv, on Keras's numpy backend), then compare. `nox -s portability`
# queues them all.
@nox.session(venv_backend="none")
def portability(session: nox.Session) -> None:
    """Same data, same model, same .keras file on every backend: report and chart."""
    for backend in BACKENDS:
        session.notify(f"portability_train(backend='{backend}')", session.posargs)
    for backend in BACKENDS:
        session.notify(f"portability_check(backend='{backend}')", session.posargs)
    session.notify("portability_report", session.posargs)


@nox.session
@nox.parametrize("backend", list(BACKENDS))
def portability_train(session: nox.Session, backend: str) -> None:
    install_backend(session, backend)
    session.run("python", "portability/run.py", "train", *session.posargs)


@nox.session
@nox.parametrize("backend", list(BACKENDS))
def portability_check(session: nox.Session, backend: str) -> None:
    install_backend(session, backend)
    session.run("python", "portability/run.py", "check", *session.posargs)
    if backend == "jax":
        # Keras's numpy backend (inference only) imports jax and scipy for some ops.
        session.run(
            "python",
            "portability/run.py",
            "check",
            *session.posargs,
            env={"KERAS_BACKEND": "numpy"},
        )


@nox.session
def portability_report(session: nox.Session) -> None:
    session.install("matplotlib")
    session.run("python", "portability/run.py", "report", *session.posargs)
