"""Command-line options generated from a settings model, so that an option is declared once.

`settings_command(Model)` turns a function `fn(settings: Model)` into a typer command with one `--flag` per
field of the model (`batch_max` → `--batch-max`), the help text from the field's description and its default
shown. Only the flags given on the command line are passed to the model: pydantic-settings fills the others
from the environment (`HARNESS_BATCH_MAX`) or the field's default, and checks every value, so a bad value
or a missing required setting is one `error:` line naming the flag and its environment variable.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

import typer
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from rich.markup import escape

from harness.errors import HarnessError

M = TypeVar("M", bound=BaseModel)

# short aliases kept from the hand-written options
SHORT = {"options": ("--option", "-o")}


class SettingsError(HarnessError):
    """A setting given on the command line or in the environment is missing or invalid."""


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def env_var(model: type[BaseModel], name: str) -> str:
    prefix = str(model.model_config.get("env_prefix", ""))
    return f"{prefix}{name}".upper()


def _base_type(annotation: Any) -> Any:
    """The type click parses for a field: Optional[X] → X; Literal → str (pydantic checks the choice)."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        return _base_type(args[0]) if len(args) == 1 else str
    if origin is Literal:
        return str
    return annotation


def _choices(annotation: Any) -> tuple[Any, ...]:
    return get_args(annotation) if get_origin(annotation) is Literal else ()


def _default_text(info: FieldInfo) -> str | bool:
    if info.default_factory is not None:
        return False
    if info.default is PydanticUndefined or info.default is None:
        return False
    return str(info.default)


def _help(model: type[BaseModel], name: str, info: FieldInfo) -> str:
    base = info.description or ""
    choices = _choices(info.annotation)
    if choices:
        base += f" One of: {', '.join(map(str, choices))}."
    return f"{base} " + escape(f"[env {env_var(model, name)}]")  # rich markup would eat a bare [...]


def _parameter(model: type[BaseModel], name: str, info: FieldInfo) -> inspect.Parameter:
    typ = _base_type(info.annotation)
    decls = SHORT.get(name, (flag(name),))
    if typ is bool:
        annotation: Any = Annotated[
            bool | None, typer.Option(f"{decls[0]}/--no-{decls[0][2:]}", help=_help(model, name, info))
        ]
    elif get_origin(typ) is list:
        annotation = Annotated[list[str] | None, typer.Option(*decls, help=_help(model, name, info))]
    else:
        if typ not in (str, int, float, Path):
            typ = str
        annotation = Annotated[
            typ | None,  # type: ignore[operator]
            typer.Option(*decls, help=_help(model, name, info), show_default=_default_text(info)),
        ]
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation)


def build_settings(model: type[M], given: dict[str, Any]) -> M:
    """The model from the flags given (None = not given) over the environment and the defaults."""
    explicit = {k: v for k, v in given.items() if v is not None and not (isinstance(v, list) and not v)}
    try:
        return model(**explicit)
    except ValidationError as e:
        err = e.errors()[0]
        name = str(err["loc"][0]) if err["loc"] else "?"
        if err["type"] == "missing":
            raise SettingsError(f"missing option {flag(name)} (or {env_var(model, name)})") from None
        info = model.model_fields.get(name)
        choices = _choices(info.annotation) if info is not None else ()
        if err["type"] == "literal_error" and choices:
            what = name.removesuffix("_topic").replace("_", " ")
            valid = ", ".join(map(str, choices))
            raise SettingsError(f"{flag(name)}: unknown {what} {err.get('input')!r}; valid: {valid}") from None
        raise SettingsError(f"{flag(name)}: {err['msg']} (got {err.get('input')!r})") from None


def settings_command(model: type[M]) -> Callable[[Callable[[M], None]], Callable[..., None]]:
    """Decorator: `fn(settings)` becomes a typer command whose flags are the model's fields."""

    def wrap(fn: Callable[[M], None]) -> Callable[..., None]:
        fields = sorted(model.model_fields.items(), key=lambda kv: not kv[1].is_required())  # required first
        params = [_parameter(model, name, info) for name, info in fields]

        def command(**given: Any) -> None:
            fn(build_settings(model, given))

        command.__name__ = fn.__name__
        command.__doc__ = fn.__doc__
        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        return command

    return wrap
