"""Every Python example of the README and of the documentation runs as written, on small
data, so that no example rots (tests/docs_examples.py runs a page).

Each page is one test, with the marks of what its examples use: a page that fits a model
runs on every backend and Keras version, one that builds datasets on every Keras version.
A page says below what it needs that a reader would have (an S3 server and its data) and
what its run must show. The distributed guide needs several JAX devices: the distributed
tests run it (tests/distributed/test_docs_example.py). The README's examples are those of
the getting-started pages, word for word (checked here), and run with them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from docs_examples import name, pages, python_blocks, run_page


@dataclass(frozen=True)
class Page:
    """How a page's examples run."""

    #: ``backend`` when an example fits, predicts or calls a layer; else ``keras``.
    mark: str
    #: Given the test's ``request`` and folder, prepares what the page assumes and
    #: returns the replacements of values it cannot know (``run_page``).
    prepare: Callable[[pytest.FixtureRequest, Path], dict[str, str]] | None = None
    #: What the page's namespace must show after its examples ran (False fails).
    check: Callable[[dict], object] | None = None
    #: Whether it needs Ray (the sessions that install it run it, with the Ray tests).
    ray: bool = False

    def marks(self) -> list[pytest.MarkDecorator]:
        marks = [getattr(pytest.mark, self.mark)]
        if self.ray:
            marks += [pytest.mark.ray, pytest.mark.xdist_group("ray")]
        return marks


def ray_cluster(request: pytest.FixtureRequest, folder: Path) -> dict[str, str]:
    """The local Ray cluster the page's `ray.init(address="auto")` would find."""
    request.getfixturevalue("ray_cluster")
    return {}


def trains_far_above_chance(namespace: dict) -> None:
    assert namespace["model"].history.history["val_accuracy"][-1] > 0.8


def from_files_predicts_new_rows(namespace: dict) -> None:
    assert Path("preprocessing.json").exists()
    assert namespace["predictions"].shape == (50, 2)


def reads_every_form_of_table(namespace: dict) -> None:
    assert len(list(Path("example_parquet/data").glob("train-*.parquet"))) == 2
    assert len(namespace["train"]) * 64 >= 480 and len(namespace["val"]) > 0


def reads_two_shards(namespace: dict) -> None:
    assert len(list(Path("example_shards/shards").glob("*.tar"))) == 2
    (image, tokens, numbers), labels = namespace["train"][0]
    assert image.shape == (64, 32, 32, 3) and tokens.shape == (64, 20) and numbers.shape == (64, 2)
    assert set(labels.tolist()) <= {0, 1}


def reads_from_s3(namespace: dict) -> None:
    (image, tokens), labels = namespace["train"][0]
    assert image.shape == (64, 32, 32, 3) and tokens.shape == (64, 20)
    assert set(labels.tolist()) <= {0, 1}
    assert namespace["loaded"].to_dict() == namespace["train"].preprocessing.to_dict()


def s3_with_the_example_data(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """The remote guide reads s3://my-bucket: a moto server's, holding the example's shards
    and its CSV table with its images."""
    from conftest import upload
    from multimodal_dataset import make_example

    s3 = request.getfixturevalue("s3")
    fs, options = s3
    fs.mkdir("my-bucket")
    shards = make_example(tmp_path / "wds", samples=200, seed=0, format="webdataset")
    upload(s3, shards, "s3://my-bucket/shards")
    make_example(tmp_path / "csv", samples=100, seed=0)
    upload(s3, tmp_path / "csv", "s3://my-bucket")
    return {r"^options = .*$": f"options = {options!r}"}


def ports_train_and_predict(namespace: dict) -> None:
    assert Path("entailment.json").exists() and Path("heart.json").exists()
    assert namespace["predictions"].shape == (5, 1)
    heart = namespace["heart"]
    x = heart.dataset(namespace["new"], batch_size=5)[0][0]
    assert x["thal"][:2, 0].tolist() == [0, 0]
    assert namespace["tagged"].preprocessing.classes == ["art", "news", "sport"]


def pads_per_batch(namespace: dict) -> None:
    assert namespace["ds"].element_spec[0].shape == (None, None)
    assert len(namespace["model"].history.history["loss"]) == 2


PAGES = {
    "docs/getting-started/arrays.md": Page("backend", check=trains_far_above_chance),
    "docs/getting-started/files.md": Page("backend", check=from_files_predicts_new_rows),
    "docs/guides/sources.md": Page("keras"),
    "docs/guides/bad-samples.md": Page(
        "keras", check=lambda ns: [r.sample for r in ns["train"].replacements] == [3]
    ),
    "docs/guides/cache.md": Page("keras", check=lambda ns: Path("image-cache").is_dir()),
    "docs/guides/diagnostics.md": Page(
        "backend", check=lambda ns: Path("batch.png").stat().st_size > 0
    ),
    "docs/guides/tables.md": Page("backend", check=reads_every_form_of_table),
    "docs/guides/columns.md": Page("backend", check=ports_train_and_predict),
    "docs/guides/webdataset.md": Page("keras", check=reads_two_shards),
    "docs/guides/remote.md": Page("keras", prepare=s3_with_the_example_data, check=reads_from_s3),
    "docs/guides/text.md": Page("backend", check=pads_per_batch),
    "docs/guides/epochs-workers.md": Page("keras"),
    "docs/guides/resume.md": Page("backend"),
    "docs/guides/clusters.md": Page("backend", prepare=ray_cluster, ray=True),
}
#: Run by the distributed tests, on four JAX devices.
DISTRIBUTED = {"docs/guides/distributed.md"}
#: Its examples are the getting-started pages' own, word for word, and run there.
README = "README.md"


def test_every_page_with_python_examples_is_run():
    with_examples = {name(page) for page in pages() if python_blocks(page)} - {README}
    assert with_examples == set(PAGES) | DISTRIBUTED, (
        "add the page to PAGES (or drop the entry of a page that lost its examples): "
        f"{sorted(with_examples ^ (set(PAGES) | DISTRIBUTED))}"
    )


def test_every_readme_example_is_a_documented_example_that_runs_there():
    from docs_examples import ROOT

    run = {code for page in PAGES for _, code in python_blocks(ROOT / page)}
    readme = [code for _, code in python_blocks(ROOT / README)]
    assert len(readme) >= 2  # the ten lines and from_table
    for code in readme:
        assert code in run, (
            "README.md has an example that no documentation page holds word for word: make "
            f"it the same as the page it summarises, so that it runs there:\n{code}"
        )


@pytest.mark.parametrize(
    "page",
    [pytest.param(path, marks=spec.marks()) for path, spec in PAGES.items()],
)
def test_the_examples_of_the_page_run_as_written(page, request, tmp_path, monkeypatch):
    from docs_examples import ROOT

    spec = PAGES[page]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "huggingface"))  # datasets' own cache
    replacements = spec.prepare(request, tmp_path / "prepared") if spec.prepare else {}
    namespace = run_page(ROOT / page, replacements)
    if spec.check is not None:
        result = spec.check(namespace)
        assert result is None or result, f"{page}: its examples ran but the check failed"
