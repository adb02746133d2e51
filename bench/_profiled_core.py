"""The core (`asg-server`) with a cProfile switch, for bench/labels_cpu.py.

SIGUSR1 starts profiling the event-loop thread (where every RPC handler and store call runs),
SIGUSR2 stops it and writes the stats to the path in argv[1]; the other arguments go to the
core as they are.
"""

from __future__ import annotations

import cProfile
import signal
import sys
from types import FrameType

from asg_grpc.server import main

PROFILE = cProfile.Profile()
OUT = sys.argv[1]


def start(_signum: int, _frame: FrameType | None) -> None:
    PROFILE.enable()


def stop(_signum: int, _frame: FrameType | None) -> None:
    PROFILE.disable()
    PROFILE.dump_stats(OUT)


if __name__ == "__main__":
    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    main(sys.argv[2:])
