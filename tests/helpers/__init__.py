"""Shared helpers of the command-line tests: inputs they generate, outputs decoded
independently of the command's own readers, the library's expected values, and running
the command (in this process with Click's runner, or as a child process for the pipes).

Imported as ``helpers`` (the tests folder is on ``sys.path``, as for ``reference``).
"""
