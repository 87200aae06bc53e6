"""User-facing errors. The CLI prints these as one line without a traceback.

Every error raised because of the user's input (a config value, a data file, a checkpoint, a sweep spec)
derives from :class:`ErdiffError` and names the field or file and what was expected.
"""


class ErdiffError(Exception):
    """Base class of errors caused by input: printed by the CLI as one clear line."""
