"""`TableDataset`: a `MultimodalDataset` made from a table, carrying its fitted
`TablePreprocessing` (``ds.preprocessing``) so that it can be saved with the model."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from multimodal_dataset.dataset import MultimodalDataset

if TYPE_CHECKING:
    from multimodal_dataset.tables.preprocessing import TablePreprocessing


class TableDataset(MultimodalDataset):
    """A `MultimodalDataset` of a table's rows, with the preprocessing that built it.

    Args:
        inputs, targets: As for `MultimodalDataset`: the sources built from the table.
        preprocessing: The fitted `TablePreprocessing`.
        **dataset_kwargs: Passed to `MultimodalDataset`.
    """

    def __init__(
        self,
        inputs: Any,
        targets: Any = None,
        *,
        preprocessing: TablePreprocessing,
        **dataset_kwargs: Any,
    ) -> None:
        super().__init__(inputs, targets, **dataset_kwargs)
        self.preprocessing = preprocessing

    def _class_names(self) -> list[Any] | None:
        return self.preprocessing.classes
