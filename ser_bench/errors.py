"""The one exception type for mistakes a user can fix; the CLI turns it into a single line."""


class UserError(Exception):
    """Bad input a user can correct (wrong path, bad file name, corrupt audio, bad option)."""
