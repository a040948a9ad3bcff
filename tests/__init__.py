"""The test suite, a package: its helper modules import as ``tests.<name>`` and shadow nothing."""
