"""`asg-worker`: the labeler process. One `LabelingService.Work` stream per agent.

It imports only the generated stubs (`asg_grpc.v1`) and `asg_common`, never the core's
internals, so it can ship and run on a labeler's machine on its own.
"""

from __future__ import annotations

from importlib import metadata

try:
    __version__ = metadata.version("asg-refinery")
except metadata.PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

AGENT = f"asg-worker/{__version__}"
