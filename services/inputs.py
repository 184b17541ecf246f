"""Shapes of what clients send that more than one entrypoint reads (the public API, the
mini-program, scan imports): validated once, the same way everywhere."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

# What `datetime.fromtimestamp` can represent (years 1970 to 9999, UTC): a unix time
# outside it cannot be a scan's time, and past it Python raises instead of answering.
MAX_UNIX_SECONDS = 253_402_300_799


def _json_integer(value: object) -> object:
    # A JSON integer as JSON Schema counts one (2052, 2052.0), never `false` or "2052".
    if isinstance(value, bool | str):
        raise ValueError("must be a whole number")
    return value


UnixSeconds = Annotated[int, BeforeValidator(_json_integer), Field(ge=0, le=MAX_UNIX_SECONDS)]


class Location(BaseModel):
    """A place on Earth: both coordinates, in degrees. Anything else (lat 9999, 1e308)
    would be stored and drawn on a brand's map as if someone had scanned there."""

    model_config = ConfigDict(extra="ignore")
    # strict: a JSON number (integers too), never `false` or "45" read as one.
    lat: Annotated[float, Field(ge=-90, le=90, strict=True)]
    lng: Annotated[float, Field(ge=-180, le=180, strict=True)]
