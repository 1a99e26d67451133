"""One exception type for every user-facing failure, with a distinct exit code per kind.

Library code raises `MmrecError`; `mmrec_cli.cli.app` prints its one line on stderr and exits with
its code. Nothing else in the package decides how a failure looks to the user.
"""

from __future__ import annotations

# Exit codes (documented in README.md, "Exit codes"). 2 is Typer's own usage error.
USAGE = 2  # a wrong option or setting, including a number out of range
BAD_INPUT = 3  # malformed or inconsistent input data (file:line given where there is one)
NOT_FOUND = 4  # a file, model or checkpoint that does not exist
MISMATCH = 5  # an artifact of the wrong kind/schema, or trained on other data/features
IO_FAILURE = 6  # the output could not be written (disk full, permissions)
INTERRUPTED = 130
INTERNAL = 1  # an mmrec bug: reported in one line, with MMREC_DEBUG=1 for a traceback


class MmrecError(Exception):
    """A failure the user can fix: `str(err)` is the one line they see."""

    def __init__(self, message: str, code: int = BAD_INPUT):
        super().__init__(message)
        self.code = code


def bad_input(message: str) -> MmrecError:
    return MmrecError(message, BAD_INPUT)


def not_found(message: str) -> MmrecError:
    return MmrecError(message, NOT_FOUND)


def mismatch(message: str) -> MmrecError:
    return MmrecError(message, MISMATCH)


def usage(message: str) -> MmrecError:
    return MmrecError(message, USAGE)


def out_of_range(what: str, value, allowed: str) -> MmrecError:
    """A number no run can use (a zero batch size, negative epochs): say which, and what would do. A usage error
    (exit 2) wherever the number was given: an option, --set or a config file."""
    return MmrecError(f"{what}: {value!r} is out of range; use {allowed}", USAGE)


def check_min(options: dict, minimum: int) -> None:
    """Each named option ('--top-k': value) is at least `minimum`; the first that is not is a usage error."""
    for name, value in options.items():
        if value < minimum:
            raise out_of_range(name, value, f"{minimum} or more")
