"""What can go wrong with a model: a bad input row, a bad artifact, a model or version that is not there."""

from __future__ import annotations


class RowError(ValueError):
    """An input row the model cannot use: a missing field, a wrong type or an unknown category.

    `field` names the input (None when the row itself is wrong, e.g. not a JSON object) and `row` is its
    position in a batch (None for a single row), so an API can answer 4xx naming both.
    """

    def __init__(self, field: str | None, problem: str, *, row: int | None = None) -> None:
        self.field = field
        self.problem = problem
        self.row = row
        super().__init__(self._message())

    def at(self, row: int) -> RowError:
        """The same error, placed at position `row` of a batch."""
        return RowError(self.field, self.problem, row=row)

    def _message(self) -> str:
        where = f"row {self.row}: " if self.row is not None else ""
        subject = f"field {self.field!r} " if self.field is not None else ""
        return f"{where}{subject}{self.problem}"


class BundleError(ValueError):
    """A model bundle that cannot be built or loaded; the message says why and what to do."""


class ModelNotFoundError(LookupError):
    """No such model, version or alias in the registry; the message says what exists."""
