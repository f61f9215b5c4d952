"""The `mura` argument parser's conventions: defaults shown in help, choices read from the project."""

from __future__ import annotations

import argparse


class DefaultsFormatter(argparse.HelpFormatter):
    """Help lines end with the default, when there is one worth showing and the text does not say it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            text
            and "default" not in text
            and default not in (None, False, [], argparse.SUPPRESS)
            and action.option_strings
        ):
            text += " (default: %(default)s)"
        return text


class MuraParser(argparse.ArgumentParser):
    """ArgumentParser whose sub-commands share the formatter."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", DefaultsFormatter)
        super().__init__(*args, **kwargs)


def preset_names() -> list[str]:
    """Presets a run may name: params.yaml's and tuned ones (a YAML read, no heavy import)."""
    from pipelines.training.presets import available_presets

    return sorted(available_presets())


def preset_name(value: str) -> str:
    """--preset: a preset that exists, checked before anything loads."""
    names = preset_names()
    if value not in names:
        raise argparse.ArgumentTypeError(f"unknown preset {value!r}; choose from {', '.join(names)}")
    return value


def preset_help() -> str:
    from pipelines.errors import MuraError
    from pipelines.settings import get_settings

    try:
        names = ", ".join(preset_names())
    except MuraError as error:  # a broken params.yaml is reported by the command that needs it
        names = f"unreadable ({error})"
    return f"training preset: {names} (default: {get_settings().default_preset}, from $MURA_DEFAULT_PRESET)"


def architecture_list(value: str) -> str:
    """--arch: comma-separated zoo names, checked here so a typo fails before anything loads."""
    from pipelines.training.architectures import ARCHITECTURES

    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in ARCHITECTURES]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown architecture {', '.join(unknown) or repr(value)}; choose from {', '.join(ARCHITECTURES)}"
        )
    return ",".join(names)


def architecture_help() -> str:
    from pipelines.training.architectures import ARCHITECTURES

    return "architecture(s), comma separated: " + ", ".join(ARCHITECTURES)


def positive_int(value: str) -> int:
    """An integer of at least 1 (epochs, batch size, trials)."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{number} is below 1")
    return number
