"""The one exception type meant for users: a problem with their input or environment.

Library functions raise `UserError` with a sentence that says what is wrong and what to do;
the CLI prints it as one line (no traceback) and exits with status 2.
"""


class UserError(Exception):
    """A problem with the user's input or environment, reported as one clear line."""
