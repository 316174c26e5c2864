"""Raw quotes from a file someone else produced (a vendor export, a saved day): csv or parquet.

`read_quotes_file(path)` reads by suffix and returns the table through `parse.coerce_raw`, so a
file feeds the pipeline only if it honours `RAW_COLUMNS` (extra columns pass through for the
validator to judge).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline.errors import ConfigError, DataError, SchemaChangeError
from pipeline.market.parse import RAW_COLUMNS, coerce_raw

SUFFIXES = (".csv", ".parquet", ".pq")
# read text columns as text: a root such as "1234" or a symbol "NAN" must not turn into a number
_TEXT_COLUMNS = {c: "object" for c, t in RAW_COLUMNS.items() if t == "object"}


def read_quotes_file(path: Path) -> pd.DataFrame:
    """A csv/parquet file of raw quotes → DataFrame with `RAW_COLUMNS` dtypes (first, in order).

    Raises ConfigError for a suffix other than .csv/.parquet/.pq (checked first: it is the
    config that is wrong), DataError naming the path when the file is missing or unreadable, and
    SchemaChangeError (a DataError) naming the path and columns when the contract is broken.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ConfigError(
            f"quotes file {path} has suffix {path.suffix!r}; expected one of {list(SUFFIXES)}"
        )
    if not path.is_file():
        raise DataError(f"quotes file not found: {path}")
    try:
        if suffix == ".csv":
            header = pd.read_csv(path, nrows=0).columns
            dtype = {c: t for c, t in _TEXT_COLUMNS.items() if c in header}
            # only blanks are missing text; default NA parsing would turn the symbol "NA" into NaN
            table = pd.read_csv(path, dtype=dtype, keep_default_na=False, na_values=[""])
        else:
            table = pd.read_parquet(path)
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"cannot read quotes file {path}: {exc}") from exc
    try:
        return coerce_raw(table)
    except SchemaChangeError as exc:
        raise SchemaChangeError(f"{path}: {exc}") from exc
