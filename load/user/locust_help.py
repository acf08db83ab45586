"""Makes `locust --help` list the suite's options.

Locust answers --help before it imports any locustfile (locust issue #2917), so options
declared through `init_command_line_parser` never show there. Installing this project
puts `channels_chaos_locust_help.pth` into site-packages; it imports this module at
interpreter start. Unless the process is `locust -h/--help` with this project's
locustfile, it does nothing and imports nothing.
"""

import os
import sys

_registered = False


def _asks_locust_for_help(argv: list[str]) -> bool:
    program = os.path.basename(argv[0]) if argv else ""
    invoked_as_module = getattr(sys, "orig_argv", [])[1:3] == ["-m", "locust"]
    return (program == "locust" or invoked_as_module) and any(arg in ("-h", "--help") for arg in argv[1:])


def _locustfile(argv: list[str]) -> str:
    for i, arg in enumerate(argv):
        if arg in ("-f", "--locustfile") and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--locustfile="):
            return arg.split("=", 1)[1]
    return "locustfile.py"


def _is_ours(path: str) -> bool:
    try:
        with open(path, encoding="utf-8") as handle:
            return "load.user.plugin" in handle.read(4096)
    except OSError:
        return False


def register_if_asked(argv: list[str]) -> None:
    global _registered
    if _registered or not _asks_locust_for_help(argv) or not _is_ours(_locustfile(argv)):
        return
    from locust import events  # this process is Locust itself, which imports this first anyway

    from load.config.options import add_options

    events.init_command_line_parser.add_listener(lambda parser, **_kwargs: add_options(parser))
    _registered = True


register_if_asked(sys.argv)
