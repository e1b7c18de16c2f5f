"""The one exception type users see: a clear message naming the file and the fix."""


class OpenBertError(Exception):
    """A problem the user can fix (bad path, bad file, wrong flag, shape mismatch).

    The command line prints ``error: <message>`` and exits with status 2, without a traceback.
    """
