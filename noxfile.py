"""The test matrix: each test where it can fail, on TensorFlow, JAX and PyTorch and on every
Keras version claimed, each in its own venv.

`nox` runs lint, the test sessions (the whole suite and the distributed (JAX
multi-device and multi-process) tests on JAX, the tests that compute with a backend on
TensorFlow and PyTorch too), the tests that use Keras and the distributed tests on the
oldest supported Keras and on keras-nightly (JAX), the packaging check (build the
wheel, check it, install it in a clean venv and run the README's ten-line example), and
the documentation site (`nox -s docs`: built with warnings as errors, looked at in
headless Chromium);
`nox -s demo` trains the reference model; `nox -s bench` runs the benchmarks in each
backend's venv and merges them into benchmarks/results/ (`nox -s bench -- --quick` is the
seconds-long smoke run CI does). The demo, benchmarks and portability check, and their
reports, run in the test sessions' venvs (`backend_python`).
Sessions use virtualenv + pip (uv does not see this machine's local wheel cache).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
import tomllib
import zipfile
from pathlib import Path

import nox

nox.options.default_venv_backend = "virtualenv"
nox.options.sessions = ["lint", "tests", "keras_versions", "package", "docs"]
nox.options.reuse_existing_virtualenvs = True

ROOT = Path(__file__).parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

# What installs each backend. torch is pinned to the CPU wheel: an unpinned `torch`
# resolves to a multi-GB CUDA build.
BACKENDS = {
    "tensorflow": [".[tensorflow,test]"],
    # Ray (the `ray` extra) is installed here only: its tests run on JAX (see WHAT_RUNS).
    "jax": [".[jax,test,ray]"],
    "torch": ["torch==2.13.0", ".[torch,test]"],
}


# Installs skip compiling every module to bytecode (TensorFlow's venv: 93 s -> 58 s on CI's
# machine). Python compiles what a process imports, on first import, and writes it for the
# next, so the sessions' processes must be allowed to write bytecode even where the
# environment says not to (CI's machine sets PYTHONDONTWRITEBYTECODE): otherwise every
# process, worker and subprocess would compile TensorFlow, JAX or PyTorch from source.
NO_COMPILE = "--no-compile"
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


def install_backend(session: nox.Session, backend: str) -> None:
    session.install(NO_COMPILE, *BACKENDS[backend])
    backend_env(session, backend)


def backend_env(session: nox.Session, backend: str) -> None:
    """The environment every session that runs Keras sets."""
    session.env["KERAS_BACKEND"] = backend
    session.env.setdefault("PYTHONHASHSEED", "0")
    # Keep TensorFlow's C++ logging to warnings and above.
    session.env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


# Each test runs where it can fail (tests/keras_marks.py; conftest fails a test whose
# marks are missing): the whole suite on JAX with the current Keras; the tests that
# compute with a backend (marked `backend`) on TensorFlow and PyTorch too; the tests that
# use Keras's own code (marked `backend` or `keras`) on the oldest Keras and on nightly.
# A test that uses neither (reading a table, decoding an image, a cache) runs once.
# The tests marked `ray` (a local Ray cluster) run in the JAX session alone: Ray is a
# 80 MB install, and the actors' work does not depend on the backend (the pool was
# checked on TensorFlow and PyTorch by hand; docs/guides/distributed.md says so).
WHAT_RUNS = {"jax": "", "tensorflow": "backend and not ray", "torch": "backend and not ray"}
KERAS_TESTS = "(backend or keras) and not ray"
# The suite runs in one pytest-xdist worker process per core (CI's 2 cores: 220 s -> 162 s
# for the JAX session, 192 s -> 122 s on the oldest Keras). The tests marked `timed` hold
# a wall-clock duration to a bound, which another worker's load breaks: they run alone
# after it, as the distributed tests (which start processes of their own) do. Not on
# PyTorch: its backend tests are model fits whose kernels use every core already, and two
# workers took 110 s against 82.
# `loadgroup` keeps the tests of one xdist_group (the Ray cluster's) in one worker.
PARALLEL = ["-n", "auto", "--maxprocesses", "4", "--dist", "loadgroup"]
IN_PARALLEL = {"jax": True, "tensorflow": True, "torch": False}


def run_suite(session: nox.Session, selection: str, parallel: bool) -> None:
    """pytest over the tests ``selection`` marks (all: ""), in xdist workers with the
    ``timed`` ones alone after them when ``parallel``."""

    def marked(extra: str) -> list[str]:
        both = " and ".join(f"({m})" for m in (selection, extra) if m)
        return ["-m", both] if both else []

    if not parallel:
        session.run("python", "-m", "pytest", *marked(""), *session.posargs)
        return
    # Exit code 5, no test selected, only where posargs may select none of one part.
    codes = [0, 5] if session.posargs else [0]
    for part, options in (("not timed", PARALLEL), ("timed", [])):
        session.run(
            "python",
            "-m",
            "pytest",
            *options,
            *marked(part),
            *session.posargs,
            success_codes=codes,
        )


@nox.session
@nox.parametrize("backend", list(BACKENDS))
def tests(session: nox.Session, backend: str) -> None:
    """The whole suite and the distributed tests on JAX; the backend-marked tests on
    TensorFlow and PyTorch."""
    install_backend(session, backend)
    run_suite(session, WHAT_RUNS[backend], IN_PARALLEL[backend])
    if backend == "jax":
        session.run("python", "-m", "pytest", *JAX_DISTRIBUTED, *session.posargs)
    if backend == "torch":
        # Two torch processes through keras-nightly's DataParallel (DDP): nightly goes into
        # a folder of its own, first on the workers' path, so this venv keeps its Keras.
        nightly = str(Path(session.create_tmp()).resolve() / "keras-nightly")
        session.install(
            NO_COMPILE, "--pre", "--no-deps", "--upgrade", "--target", nightly, KERAS_NIGHTLY
        )
        session.env["MULTIMODAL_DATASET_KERAS_NIGHTLY"] = nightly
        session.run("python", "-m", "pytest", TORCH_DISTRIBUTED, *session.posargs)


#: The distributed tests of JAX (several devices and processes), and of PyTorch (two
#: processes under DDP: the torch session runs those).
JAX_DISTRIBUTED = ["tests/distributed", "-m", "not torch_processes"]
TORCH_DISTRIBUTED = "tests/distributed/test_torch_processes.py"


# The benchmarks, the demo, the portability check and `distributed` run in the tests'
# virtualenv of their backend instead of installing TensorFlow, JAX or PyTorch again (a
# minute or more each on CI): nox itself creates it, with the tests' installs, once per
# nox run (`--install-only` runs a session's installs and nothing else).
_prepared: set[str] = set()


def backend_python(session: nox.Session, backend: str, *extra: str) -> str:
    """The Python of the ``tests(backend=...)`` virtualenv, installed and up to date, with
    ``extra`` packages added; the session's environment set for ``backend``."""
    python = str(ROOT / ".nox" / f"tests-backend-{backend}" / "bin" / "python")
    # CI runs the benchmarks and the portability check right after the test sessions
    # built these venvs from the same tree (and both at once: two installs in one venv
    # would race), so it says they are ready.
    ready = os.environ.get("MULTIMODAL_DATASET_VENVS_READY") == "1" and Path(python).exists()
    if backend not in _prepared and not ready:
        tests_session = f"tests(backend='{backend}')"
        session.run(
            sys.executable, "-m", "nox", "-s", tests_session, "--install-only", external=True
        )
        _prepared.add(backend)
    if extra:
        session.run(python, "-m", "pip", "install", "-q", NO_COMPILE, *extra, external=True)
    backend_env(session, backend)
    return python


@nox.session(venv_backend="none")
def distributed(session: nox.Session) -> None:
    """Multi-device (4 CPU devices) and two-process training with keras.distribution on JAX
    (`tests(backend='jax')` runs them too)."""
    python = backend_python(session, "jax")
    session.run(python, "-m", "pytest", *JAX_DISTRIBUTED, *session.posargs, external=True)


# The Keras versions the package claims (pyproject.toml: keras>=3.8), besides the current
# release the backend sessions run: the oldest (with the JAX of its day) and keras-nightly,
# pinned so that a broken nightly cannot block unrelated work (bump it to test a newer one).
OLDEST_KERAS = ["keras==3.8.0", "jax==0.5.0", "jaxlib==0.5.0"]
KERAS_NIGHTLY = "keras-nightly==3.16.0.dev2026102704"


@nox.session
@nox.parametrize("keras", ["oldest", "nightly"])
def keras_versions(session: nox.Session, keras: str) -> None:
    """The tests that use Keras (marked backend or keras) and the distributed tests on JAX,
    with the oldest Keras and with nightly."""
    if keras == "oldest":
        session.install(NO_COMPILE, ".[jax,test]", *OLDEST_KERAS)
    else:
        # keras-nightly is another distribution of the same `keras` package: replace it.
        session.install(NO_COMPILE, ".[jax,test]")
        session.run("python", "-m", "pip", "uninstall", "-q", "-y", "keras")
        session.install(NO_COMPILE, "--pre", "--no-deps", "--force-reinstall", KERAS_NIGHTLY)
    backend_env(session, "jax")
    session.run("python", "-c", "import keras; print('keras', keras.version())")
    run_suite(session, KERAS_TESTS, parallel=True)
    session.run("python", "-m", "pytest", *JAX_DISTRIBUTED, *session.posargs)


@nox.session
def package(session: nox.Session) -> None:
    """Builds the wheel, checks its contents and metadata, installs it into a clean venv
    (no source tree on the path) and runs the README's ten-line example with it."""
    session.install("build")
    tmp = Path(session.create_tmp()).resolve()
    for old in tmp.glob("*.whl"):
        old.unlink()
    session.run("python", "-m", "build", "--wheel", "--outdir", str(tmp), str(ROOT))
    (wheel,) = tmp.glob("multimodal_dataset-*.whl")
    check_wheel(wheel)
    venv = tmp / "clean-venv"
    session.run(sys.executable, "-m", "venv", "--clear", str(venv), external=True)
    python = str(venv / "bin" / "python")
    session.run(python, "-m", "pip", "install", "-q", NO_COMPILE, f"{wheel}[jax]", external=True)
    example = tmp / "ten_lines.py"
    example.write_text(readme_example("Ten lines"))
    session.chdir(tmp)
    session.run(
        python,
        "-c",
        "import multimodal_dataset as m, sys; "
        "assert 'site-packages' in m.__file__, m.__file__; print('installed at', m.__file__)",
        external=True,
        env={"KERAS_BACKEND": "jax"},
    )
    session.run(python, str(example), external=True, env={"KERAS_BACKEND": "jax"})


def check_wheel(wheel: Path) -> None:
    """Every module of src/, py.typed, the console script and every extra are in the wheel."""
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        (metadata_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = archive.read(metadata_name).decode()
        entry_points = next(
            (archive.read(n).decode() for n in names if n.endswith("entry_points.txt")), ""
        )
    package = ROOT / "src" / "multimodal_dataset"
    expected = {f"multimodal_dataset/{p.relative_to(package)}" for p in package.rglob("*.py")}
    expected.add("multimodal_dataset/py.typed")
    missing = sorted(expected - names)
    extras = set(PYPROJECT["project"]["optional-dependencies"])
    provided = set(re.findall(r"^Provides-Extra: (\S+)$", metadata, re.MULTILINE))
    problems = []
    if missing:
        problems.append(f"missing files: {missing}")
    if extras - provided:
        problems.append(f"extras missing from the metadata: {sorted(extras - provided)}")
    if "multimodal-dataset = multimodal_dataset.cli:main" not in entry_points:
        problems.append("the multimodal-dataset console script is missing")
    if problems:
        raise RuntimeError(f"{wheel.name}: " + "; ".join(problems))
    print(f"{wheel.name}: {len(expected)} package files, extras {sorted(provided)}: ok")


def readme_example(heading: str) -> str:
    """The first ```python block under the README's ``## heading``."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split(f"## {heading}\n", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check, ruff format --check, mypy, and the import layers (lint-imports)."""
    session.install(NO_COMPILE, "ruff", "mypy", "numpy", "keras", "import-linter")
    session.install("--no-deps", "-e", ".")  # lint-imports reads the installed package
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")
    session.run("lint-imports")


@nox.session(venv_backend="none")
@nox.parametrize("backend", ["jax", "tensorflow", "torch"])
def demo(session: nox.Session, backend: str) -> None:
    """Trains the reference model and prints validation accuracy."""
    python = backend_python(session, backend)
    session.run(python, "-m", "multimodal_dataset", "demo", *session.posargs, external=True)


# Each backend's venv also gets the loaders it is compared with: tf.data and Keras's
# image_dataset_from_directory (format "tf" and "grain") with TensorFlow, torch's DataLoader
# with torch, grain's MapDataset with JAX.
BENCH_PEERS = {"tensorflow": ["grain"], "jax": ["grain"], "torch": []}


@nox.session(venv_backend="none")
@nox.parametrize("backend", list(BACKENDS))
def bench(session: nox.Session, backend: str) -> None:
    """Benchmarks one backend; then bench_report merges every backend's results."""
    python = backend_python(session, backend, *BENCH_PEERS[backend])
    session.run(python, "-m", "benchmarks", "--backend", backend, *session.posargs, external=True)
    session.notify("bench_report", session.posargs)


@nox.session(venv_backend="none")
def bench_report(session: nox.Session) -> None:
    """Writes benchmarks/results/latest.{json,md,png}, which the performance page of the
    site includes (matplotlib and numpy: in the JAX tests' venv)."""
    python = backend_python(session, "jax")
    session.run(python, "-m", "benchmarks.report", *session.posargs, external=True)


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


@nox.session(venv_backend="none")
@nox.parametrize("backend", list(BACKENDS))
def portability_train(session: nox.Session, backend: str) -> None:
    python = backend_python(session, backend)
    session.run(python, "-m", "portability", "train", *session.posargs, external=True)


@nox.session(venv_backend="none")
@nox.parametrize("backend", list(BACKENDS))
def portability_check(session: nox.Session, backend: str) -> None:
    python = backend_python(session, backend)
    session.run(python, "-m", "portability", "check", *session.posargs, external=True)
    if backend == "jax":
        # Keras's numpy backend (inference only) imports jax and scipy for some ops.
        session.run(
            python,
            "-m",
            "portability",
            "check",
            *session.posargs,
            env={"KERAS_BACKEND": "numpy"},
            external=True,
        )


@nox.session(venv_backend="none")
def portability_report(session: nox.Session) -> None:
    python = backend_python(session, "jax")
    session.run(python, "-m", "portability", "report", *session.posargs, external=True)


# The documentation site: MkDocs with Material and mkdocstrings (the reference, from the
# docstrings; ruff formats its signatures), and Playwright to look at it in Chromium.
DOCS_REQUIREMENTS = [
    "mkdocs>=1.6",
    "mkdocs-material>=9.5",
    "mkdocstrings[python]>=0.26",
    "griffe>=1.0",
    "ruff",
    "playwright>=1.40",
]


def wait_for_chromium_install(limit_s: float = 600) -> None:
    """Waits for the Chromium install that .ci/run starts in the background (its process
    id in MULTIMODAL_DATASET_CHROMIUM_INSTALL), if it is still running."""
    pid = os.environ.get("MULTIMODAL_DATASET_CHROMIUM_INSTALL")
    deadline = time.monotonic() + limit_s
    while pid and time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return  # ended (and reaped)
        if state == "Z":
            return  # ended, not reaped yet
        time.sleep(1)


@nox.session
def docs(session: nox.Session) -> None:
    """Builds the site with warnings as errors (a broken link or anchor, a reference that
    does not resolve, a public name missing from the reference or without a docstring);
    checks that a copy with each such defect fails to build (tools/docs_defects.py); then
    opens three pages in headless Chromium and checks what they show (tools/docs_browser.py;
    ``-- --screenshot docs/images/home.png`` refreshes the committed screenshot). The
    examples of the pages run in the test sessions."""
    session.install(NO_COMPILE, *DOCS_REQUIREMENTS)
    session.env["NO_MKDOCS_2_WARNING"] = "1"  # Material's notice about its successor
    session.run("mkdocs", "build", "--strict", "--site-dir", "site")
    session.run("python", "-m", "tools.docs_defects")  # and the build refuses what it must
    wait_for_chromium_install()
    if not (os.environ.get("CHROMIUM") or shutil.which("chromium")):
        # No Debian Chromium (.ci/run installs it): Playwright's own, downloaded once.
        session.run("python", "-m", "playwright", "install", "chromium")
    session.run("python", "-m", "tools.docs_browser", "site", *session.posargs)
