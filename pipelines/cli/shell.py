"""`mura completion SHELL`: tab completion of commands and options (argcomplete)."""

from __future__ import annotations

SHELLS = ("bash", "zsh", "fish", "tcsh", "powershell")


def _completion(args) -> int:
    import argcomplete

    print(argcomplete.shellcode(["mura"], shell=args.shell), end="")
    return 0


def register(subparsers) -> None:
    """Add `completion`."""
    parser = subparsers.add_parser(
        "completion",
        help="print the tab-completion script for a shell",
        description="Print the tab-completion script for SHELL; e.g. add "
        "'eval \"$(mura completion bash)\"' to ~/.bashrc.",
    )
    parser.add_argument("shell", choices=SHELLS, nargs="?", default="bash", help="the shell (default: bash)")
    parser.set_defaults(handler=_completion)
