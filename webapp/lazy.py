"""Members built on first use, once, under their owner's lock."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar, cast, overload

T = TypeVar("T")


class lazy(Generic[T]):  # noqa: N801 - used as a decorator, like functools.cached_property
    """A member built on first use under the container's lock (so two threads of a gthread
    worker never build two scan stores), then a plain instance attribute: no cost after."""

    def __init__(self, build: Callable[[Any], T]) -> None:
        self.build = build
        self.name = build.__name__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> lazy[T]: ...
    @overload
    def __get__(self, obj: object, owner: type | None = None) -> T: ...
    def __get__(self, obj: object | None, owner: type | None = None) -> T | lazy[T]:
        if obj is None:
            return self
        with cast(Any, obj)._lock:
            cache = obj.__dict__
            if self.name not in cache:
                cache[self.name] = self.build(obj)
            return cast(T, cache[self.name])
