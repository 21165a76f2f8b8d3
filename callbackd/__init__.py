"""callbackd: callback (回访) and satisfaction survey automation for service windows."""

__version__ = "0.1.0"
