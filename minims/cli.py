"""The command-line runner every tool shares (train, sample, bench, experiment): its argument
parser, and the one place that turns an error into a line on stderr and an exit code.

A command's `main(argv)` is `run_cli(body, argv)`: the user-facing errors of minims/errors.py
print their one line and exit 2 (or their own code), Ctrl-C exits 130 with one line, and
anything else is a bug in minims and keeps its traceback. Its parser, `ArgumentParser`, says
a bad command line in one line too, and refuses arguments that are not UTF-8 (`not_utf8`) and
a default from the environment (`env_default`: MINIMS_BACKEND) that is not one of its flag's
choices. (ours)
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
    bury the one that matters).

    It also refuses, before parsing, an argument that is not valid UTF-8 text (ours): Python
    hands such bytes over as lone surrogates ("\\udcff" for the byte 0xff), which cannot be
    encoded, printed or stored and would fail deep inside the tokenizer or a file write. The
    one line names the argument (its number on the command line and the flag it belongs to)
    and the first bad byte, e.g. `error: argument 2 (the value of --prompt) is not valid
    UTF-8: byte 0xff at offset 2; …`. File names are arguments too: minims needs them in
    UTF-8.
    """

    def parse_known_args(self, args=None, namespace=None):
        args = sys.argv[1:] if args is None else list(args)
        for i, arg in enumerate(args):
            if isinstance(arg, str) and not_utf8(arg):
                what, text = self._describe_argument(args, i)
                self.error(f"argument {i + 1}{what} is not valid UTF-8: {not_utf8(text)}; minims "
                           "reads its command line as UTF-8 text (re-type the text, or rename the "
                           "file)")
        namespace, rest = super().parse_known_args(args, namespace)
        for action in self._actions:          # argparse never checks a default against choices
            value = getattr(namespace, action.dest, None)
            if isinstance(value, FromEnvironment):
                if action.choices is not None and value not in action.choices:
                    bad = not_utf8(value)
                    self.error(f"the environment variable {value.variable} is "
                               f"{'not valid UTF-8 (' + bad + ')' if bad else repr(str(value))}; "
                               f"{action.option_strings[0]} takes one of "
                               f"{', '.join(map(str, action.choices))} (unset it, or give the flag)")
                setattr(namespace, action.dest, str(value))
        return namespace, rest

    def _describe_argument(self, args, i):
        """(" (the value of --flag)", the value) for the argument `args[i]`, or (" (a flag)",
        the flag) or ("", the argument): which flag a bad argument belongs to."""
        arg = args[i]
        flag, equals, value = arg.partition("=")
        if arg.startswith("--") and equals and not not_utf8(flag):
            return f" (the value of {flag})", value                  # --prompt=TEXT
        if arg.startswith("-") and len(arg) > 1:
            return " (a flag)", arg
        action = self._option_action(args[i - 1]) if i else None
        if action is not None and action.nargs != 0:
            return f" (the value of {args[i - 1]})", arg
        return "", arg

    def _option_action(self, flag):
        """The action of `flag` as argparse would read it (exact, or a unique prefix of a long
        flag), else None."""
        actions = self._option_string_actions
        if flag in actions:
            return actions[flag]
        if not (flag.startswith("--") and self.allow_abbrev):
            return None
        matches = {id(a): a for name, a in actions.items() if name.startswith(flag)}
        return next(iter(matches.values())) if len(matches) == 1 else None

    def error(self, message):
        message = " ".join(message.split())
        for action in self._actions:           # a required command left out: say what it can be
            if action.choices and not action.option_strings and "required" in message \
                    and action.dest in message:
                message += f" (one of: {', '.join(map(str, action.choices))})"
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keep the description's layout and show every default, except None and where the help
    already says its default (ours)."""

    def _get_help_string(self, action):
        if action.default is None or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


class FromEnvironment(str):
    """A flag's default read from an environment variable, named in `.variable` (ours):
    ArgumentParser checks it against the flag's choices, as argparse does not."""


def env_default(variable, fallback):
    """The default of a flag that an environment variable may set: its value (a
    FromEnvironment) when set and not empty, else `fallback`. (ours)"""
    value = os.environ.get(variable)
    if not value:
        return fallback
    default = FromEnvironment(value)
    default.variable = variable
    return default


def not_utf8(text):
    """Where the str `text` stops being valid UTF-8 text, in words ("byte 0xff at offset 2",
    the offset counting bytes of its UTF-8 form), else None (ours).

    Text that came from bytes which are not UTF-8 (a command-line argument, a file name)
    holds lone surrogates U+DC80..U+DCFF standing for those bytes (Python's "surrogateescape"):
    the byte is recovered and named. Any other lone surrogate is named as a character.
    """
    try:
        text.encode("utf-8")
        return None
    except UnicodeEncodeError as e:
        first = e.start                       # the first character UTF-8 cannot encode
    try:
        raw = text.encode("utf-8", "surrogateescape")
        raw.decode("utf-8")
    except UnicodeDecodeError as e:           # the bytes the surrogates stood for are not UTF-8
        return f"byte 0x{raw[e.start]:02x} at offset {e.start}"
    except UnicodeEncodeError:                # a surrogate that stands for no byte
        pass
    return f"character U+{ord(text[first]):04X} (a lone surrogate) at character offset {first}"


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
