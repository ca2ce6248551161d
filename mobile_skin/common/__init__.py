"""What every stage shares: errors and exit codes, atomic files, the machine's description, the
typed run config, the export-format table and the paper's figures (no TensorFlow).

Its modules import only from this package and those before it in ``mobile_skin.LAYERS``
(docs/design.md, Code layout).
"""

__all__ = ["cli_args", "config", "errors", "fileio", "formats", "machine", "paper"]
