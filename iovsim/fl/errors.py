"""The data error type, in its own module so that every data reader can raise it."""


class DataError(ValueError):
    """A data problem phrased for the user (file, field, expectation)."""
