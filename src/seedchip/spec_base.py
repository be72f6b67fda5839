"""Shared machinery for frozen, validated user-facing specs (pydantic v2)."""

from __future__ import annotations

import hashlib
import json
import zlib
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, PrivateAttr

from . import units


class FrozenSpec(BaseModel):
    """Frozen; unknown keys are errors (a typo must not be silently ignored)."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True, allow_inf_nan=False)
    _hash: str | None = PrivateAttr(default=None)
    _hash_int: int | None = PrivateAttr(default=None)   # __hash__ of the content hash, kept (specs key hot caches)

    def spec_hash(self) -> str:
        """A stable short hash of the spec's content, for provenance in every result."""
        private = self.__pydantic_private__  # plain dict: faster than the attribute hook
        h = private.get("_hash")
        if h is None:
            blob = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
            h = private["_hash"] = hashlib.sha256(blob.encode()).hexdigest()[:16]
        return h

    def __hash__(self) -> int:  # specs key caches; dict fields make the default unhashable
        private = self.__pydantic_private__
        h = private.get("_hash_int")
        if h is None:   # from the content hash and the type's name alone: the same in every process
            h = private["_hash_int"] = int(self.spec_hash(), 16) ^ zlib.crc32(type(self).__name__.encode())
        return h

    def model_copy(self, *, update: dict[str, Any] | None = None, deep: bool = False):
        """A copy; its content hash is computed afresh (the copied one would be stale)."""
        out = super().model_copy(update=update, deep=deep)
        out.__pydantic_private__["_hash"] = None
        out.__pydantic_private__["_hash_int"] = None
        return out

    def __eq__(self, other: object) -> bool:  # content equality; the cached hash is not content
        if type(other) is not type(self):
            return NotImplemented
        return self.spec_hash() == other.spec_hash()

    def replace(self, **changes: Any):
        """A copy with changes, validated again (specs are never mutated)."""
        data = self.model_dump()
        data.update(changes)
        return type(self).model_validate(data)


def _quantity(dimension: str):
    def parse(v: Any) -> Any:
        if v is None:
            return None
        return units.parse(v, dimension)
    return BeforeValidator(parse)


Bytes = Annotated[float, _quantity("bytes")]
BytesPerS = Annotated[float, _quantity("bytes/s")]
FlopPerS = Annotated[float, _quantity("flop/s")]
Seconds = Annotated[float, _quantity("s")]
Hertz = Annotated[float, _quantity("hz")]
Watts = Annotated[float, _quantity("w")]
JoulePerByte = Annotated[float, _quantity("j/byte")]
JoulePerFlop = Annotated[float, _quantity("j/flop")]
Area = Annotated[float, _quantity("m2")]
