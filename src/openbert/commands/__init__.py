"""One thin module per `openbert` sub-command.

Each module defines ``add_arguments(parser)`` and ``run(args) -> int | None`` and is listed in
:data:`openbert.cli.COMMANDS`.
"""
