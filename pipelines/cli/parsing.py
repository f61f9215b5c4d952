"""The `mura` argument parser's conventions: defaults shown in help, choices read from the project."""

from __future__ import annotations

import argparse
import sys


def warn_deprecated(old: str, new: str) -> None:
    """The one line an old spelling prints (stderr): the command still runs."""
    print(f"mura: {old} is deprecated; use {new}", file=sys.stderr, flush=True)


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
    """ArgumentParser whose sub-commands share the formatter and keep old flag spellings working."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", DefaultsFormatter)
        super().__init__(*args, **kwargs)
        self.renamed_values: dict[str, dict[str, str]] = {}

    def parse_known_args(self, args=None, namespace=None):
        if args is not None and self.renamed_values:
            args = self._translate_renamed_values(list(args))
        return super().parse_known_args(args, namespace)

    def _translate_renamed_values(self, args: list[str]) -> list[str]:
        """`--augment true` (an old spelling taking a value) -> `--augment`, with the deprecation line."""
        translated: list[str] = []
        index = 0
        while index < len(args):
            token = args[index]
            if token == "--":  # everything after it is a positional
                return translated + args[index:]
            flag, _, inline = token.partition("=")
            spellings = self.renamed_values.get(flag)
            value = inline if "=" in token else (args[index + 1] if index + 1 < len(args) else None)
            if spellings is not None and value in spellings:
                warn_deprecated(f"{flag} {value}", spellings[value])
                translated.append(spellings[value])
                index += 1 if "=" in token else 2
                continue
            translated.append(token)
            index += 1
        return translated


class DeprecatedAlias(argparse.Action):
    """An old flag kept working: hidden from help, it stores like the new one and prints one line."""

    def __init__(self, option_strings, dest, canonical: str = "", **kwargs):
        kwargs["help"] = argparse.SUPPRESS
        super().__init__(option_strings, dest, **kwargs)
        self.canonical = canonical

    def __call__(self, parser, namespace, values, option_string=None):
        warn_deprecated(str(option_string), self.canonical)
        setattr(namespace, self.dest, values)


# Old spellings that keep working, hidden from help, each printing one deprecation line when used:
# an old flag -> its canonical name, and flags that took true|false before they became --X/--no-X.
RENAMED_FLAGS = {"--arch": "--architectures"}
VALUED_BOOLEANS = ("--augment",)


def add_deprecated_alias(parser: argparse.ArgumentParser, old: str, canonical: argparse.Action) -> None:
    """Keep `old` (hidden) as a spelling of the option `canonical`: same dest, type and choices."""
    alias = parser.add_argument(
        old,
        action=DeprecatedAlias,
        canonical=canonical.option_strings[0],
        dest=canonical.dest,
        choices=canonical.choices,
        metavar=canonical.metavar,
        default=argparse.SUPPRESS,  # the canonical option's default stays the one in the namespace
    )
    alias.type = canonical.type  # may be None (no conversion), which typeshed's add_argument(type=) refuses


def add_old_spellings(parser: argparse.ArgumentParser) -> None:
    """The old spellings of the options `parser` (a MuraParser) has; call it after adding them."""
    if not isinstance(parser, MuraParser):
        raise TypeError(f"{parser.prog}: old spellings need a MuraParser")
    actions = parser._option_string_actions
    for old, new in RENAMED_FLAGS.items():
        if new in actions and old not in actions:
            add_deprecated_alias(parser, old, actions[new])
    for flag in VALUED_BOOLEANS:
        if isinstance(actions.get(flag), argparse.BooleanOptionalAction):
            parser.renamed_values[flag] = {"true": flag, "false": "--no-" + flag.removeprefix("--")}


def preset_names() -> list[str]:
    """Presets a run may name: params.yaml's and tuned ones (a YAML read, no heavy import)."""
    from pipelines.training import available_presets

    return sorted(available_presets())


def preset_name(value: str) -> str:
    """--preset: a preset that exists, checked before anything loads."""
    names = preset_names()
    if value not in names:
        raise argparse.ArgumentTypeError(f"unknown preset {value!r}; choose from {', '.join(names)}")
    return value


def preset_help() -> str:
    from mura_core.errors import MuraError
    from mura_core.settings import get_settings

    try:
        names = ", ".join(preset_names())
    except MuraError as error:  # a broken params.yaml is reported by the command that needs it
        names = f"unreadable ({error})"
    return f"training preset: {names} (default: {get_settings().default_preset}, from $MURA_DEFAULT_PRESET)"


def architecture_list(value: str) -> str:
    """--architectures: comma-separated zoo names, checked here so a typo fails before anything loads."""
    from pipelines.training import ARCHITECTURES

    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in ARCHITECTURES]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown architecture {', '.join(unknown) or repr(value)}; choose from {', '.join(ARCHITECTURES)}"
        )
    return ",".join(names)


def architecture_help() -> str:
    from pipelines.training import ARCHITECTURES

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
