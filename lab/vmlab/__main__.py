"""Run the lab's command line: `python3 lab/vmlab ARGS` (what lab/vmlab.sh
does) or `python3 -m vmlab ARGS` with lab/ on the path."""

import os
import sys

if not __package__:
    # Run as a directory: Python put lab/vmlab/ itself first on sys.path,
    # where this package's modules would shadow top-level ones; import the
    # package from lab/ instead.
    _here = os.path.dirname(os.path.realpath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.realpath(p or os.curdir) != _here]
    sys.path.insert(0, os.path.dirname(_here))

from vmlab.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
