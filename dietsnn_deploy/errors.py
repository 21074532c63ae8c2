"""The one exception type for bad input anywhere in the toolchain."""


class DeployError(Exception):
    """Bad input (missing or corrupt file, wrong shape, unknown name): a one-line message."""
