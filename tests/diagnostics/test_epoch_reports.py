"""The epoch reports count what an epoch served, each sample once, in bounded time and
memory: a bad sample is found by a binary search among the bad ones, and the truncation
log keeps a count and the first few samples, not a set of every one."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from multimodal_dataset.batching.sampler import BatchPlan
from multimodal_dataset.batching.structure import Field
from multimodal_dataset.diagnostics import replacements as replacement_module
from multimodal_dataset.diagnostics import served as served_module
from multimodal_dataset.diagnostics.replacements import ReplacementLog
from multimodal_dataset.diagnostics.served import ServedOnce
from multimodal_dataset.diagnostics.truncation import TruncationLog
from multimodal_dataset.sources.protocol import (
    GatherContext,
    PrecomputedSource,
    ReplacedSamplesWarning,
    Replacement,
    SampleError,
)
from multimodal_dataset.sources.text.tokens import TruncatedTextWarning


def precomputed(count, bad, on_error="replace"):
    problems = {int(s): f"sample {s} is bad" for s in bad}
    return PrecomputedSource(np.arange(count), problems, on_error, None, None)


@pytest.mark.parametrize("bad", [[], [0], [999], [3, 4, 5, 500, 998, 999]])
def test_the_bad_samples_of_a_batch_are_exactly_those_among_its_indices(bad):
    source = precomputed(1000, bad)
    rng = np.random.default_rng(0)
    for _ in range(20):
        # Both ends of the search, and 62 samples between them.
        indices = np.concatenate([[0, 999], rng.choice(np.arange(1, 999), 62, replace=False)])
        context = GatherContext()
        source.report_bad(indices, context)
        assert sorted(s for s, _ in context.replaced) == sorted(set(indices) & set(bad))


def test_a_bad_sample_raises_naming_it_when_asked_to():
    with pytest.raises(SampleError, match="sample 7 is bad"):
        precomputed(10, [7], on_error="raise").report_bad(np.array([1, 7]), GatherContext())


class _Texts:
    shape = (100, 8)


def reports(log, epoch):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        log.report(epoch)
    return [str(w.message) for w in caught if w.category is TruncatedTextWarning]


def plan(epoch, position, indices, real_count=None):
    return BatchPlan(0, epoch, position, np.asarray(indices), None, real_count)


def test_a_batch_read_again_before_the_report_counts_once_and_a_replayed_epoch_again():
    log = TruncationLog([Field("inputs", _Texts())])
    log.record(plan(0, 0, [9, 4, 2]), [("inputs", [9, 4])])
    log.record(plan(0, 0, [9, 4, 2]), [("inputs", [9, 4])])  # Keras read it twice
    log.record(plan(0, 1, [1, 7, 8]), [("inputs", [7])])
    (report,) = reports(log, 0)
    assert "3 texts of inputs" in report and "samples 4, 7, 9)" in report
    assert reports(log, 1) == []
    log.record(plan(0, 0, [9, 4, 2]), [("inputs", [9, 4])])  # epoch 0 again (set_state)
    (report,) = reports(log, 0)
    assert "2 texts" in report


def test_a_sample_that_pads_the_last_batch_is_counted_where_it_is_real():
    log = TruncationLog([Field("inputs", _Texts())])
    log.record(plan(3, 0, [5, 6, 7]), [("inputs", [5])])
    log.record(plan(3, 1, [8, 5, 6], real_count=1), [("inputs", [5, 8])])  # 5 and 6 pad
    (report,) = reports(log, 3)
    assert "2 texts" in report and "samples 5, 8)" in report


def test_the_report_names_the_smallest_few_and_counts_the_rest():
    log = TruncationLog([Field("inputs", _Texts())])
    for position in range(10):
        log.record(
            plan(0, position, range(10 * position, 10 * position + 10)),
            [("inputs", list(range(10 * position + 9, 10 * position, -1)))],
        )
    (report,) = reports(log, 0)
    assert "90 texts" in report and "samples 1, 2, 3, 4, 5 and 85 more)" in report


def replaced(epoch, samples):
    return [Replacement(epoch, s, "inputs", f"sample {s} unreadable") for s in samples]


def replacement_reports(log, epoch):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        log.report(epoch)
    return [str(w.message) for w in caught if w.category is ReplacedSamplesWarning]


def test_replacements_count_a_batch_read_again_once_and_a_padding_sample_where_it_is_real():
    log = ReplacementLog()
    log.record(plan(0, 0, [9, 4, 2]), replaced(0, [9, 4]))
    log.record(plan(0, 0, [9, 4, 2]), replaced(0, [9, 4]))  # Keras read it twice
    log.record(plan(0, 1, [1, 9, 4], real_count=1), replaced(0, [9, 4]))  # 9 and 4 pad
    (report,) = replacement_reports(log, 0)
    assert "epoch 0: 2 samples were replaced" in report
    assert sorted(r.sample for r in log.all) == [4, 9]
    assert replacement_reports(log, 1) == []


def test_replacements_are_all_counted_but_only_the_first_of_each_epoch_kept(monkeypatch):
    monkeypatch.setattr(replacement_module, "KEPT_PER_EPOCH", 7)
    monkeypatch.setattr(replacement_module, "KEPT", 10)
    log = ReplacementLog()
    for epoch in range(3):
        for position in range(4):
            samples = range(10 * position, 10 * position + 3)
            log.record(plan(epoch, position, list(samples)), replaced(epoch, samples))
        (report,) = replacement_reports(log, epoch)
        assert f"epoch {epoch}: 12 samples were replaced" in report
        assert "and 7 more" in report and "(the first 7 of each epoch)" in report
    # 7 per epoch, the 10 most recent: 3 of epoch 1 and 7 of epoch 2
    assert [(r.epoch, r.sample) for r in log.all] == [(1, 11), (1, 12), (1, 20)] + [
        (2, s) for s in (0, 1, 2, 10, 11, 12, 20)
    ]


def test_a_batch_counts_again_after_the_generations_wrap_around(monkeypatch):
    monkeypatch.setattr(served_module, "_GENERATIONS", 3)
    served = ServedOnce()
    for _ in range(10):  # more reports than generations: every one counts the batch once
        assert served.first(plan(0, 5, [1]))
        assert not served.first(plan(0, 5, [1]))
        served.next_generation()
    assert served.first(plan(0, 5, [1])) and served.first(plan(1, 5, [1]))
