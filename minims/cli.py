"""The command-line runner every tool shares (train, sample, bench, experiment): its argument
parser, and the one place that turns an error into a line on stderr and an exit code.

A command's `main(argv)` is `run_cli(body, argv)`: the user-facing errors of minims/errors.py
print their one line and exit 2 (or their own code), Ctrl-C exits 130 with one line, and
anything else is a bug in minims and keeps its traceback. (ours)
"""
import argparse
import os
import sys

from .errors import USER_ERRORS, report


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, except that a bad command line (an unknown flag, a missing value,
    `abc` for a number, a missing or unknown command) prints one line in the format of every
    other user error, `error: … (see prog --help)`, naming the choices of a missing command,
    instead of the whole usage block; exit code 2 (ours: train's usage block is 20 lines that
    bury the one that matters)."""

    def error(self, message):
        message = " ".join(message.split())
        for action in self._actions:           # a required command left out: say what it can be
            if action.choices and not action.option_strings and "required" in message \
                    and action.dest in message:
                message += f" (one of: {', '.join(map(str, action.choices))})"
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def run_cli(body, argv=None):
    """Run a command's `body(argv)` -> exit code; the shared error mapping of every CLI.

    argparse's exit (usage error 2, --help 0) passes through as a code; a MinimsError or a
    BackendUnavailable prints `report(e)` on stderr and returns its exit code; a MemoryError
    that no code turned into an OutOfMemory prints one line too (exit 2); Ctrl-C prints one
    line and returns 130; a closed stdout (`| head`) ends quietly. Anything else propagates
    with its traceback: it is a bug.
    """
    try:
        code = body(argv)
    except SystemExit as e:                 # argparse: --help (0) or a usage error (2, printed)
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    except USER_ERRORS as e:
        _say(report(e))
        return getattr(e, "exit_code", 2)
    except MemoryError as e:
        _say(f"error: out of memory ({' '.join(str(e).split()) or 'MemoryError'}); use a smaller "
             "model, batch or block size")
        return 2
    except KeyboardInterrupt:
        _say("interrupted (Ctrl-C)")
        return 130
    except BrokenPipeError:                 # the reader of our stdout went away: not an error
        _silence_stdout()
        return 0
    return 0 if code is None else code


def _say(line):
    try:
        sys.stdout.flush()                  # what was printed so far comes before the error
    except (OSError, ValueError):
        pass
    print(line, file=sys.stderr, flush=True)


def _silence_stdout():
    """After a broken pipe, point stdout at /dev/null so Python's exit flush is silent."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass
