"""The ``simulate`` command: one module per command group; options become a frozen config,
then a run, then an exit code.
"""

import os

# barnstorm's numpy work is element by element, never linear algebra, yet OpenBLAS starts
# a pool of threads at numpy's import that spin a while on every other core: about a
# tenth of a CPU-second per process, every run and every --processes child (they inherit
# this). Set before anything here imports numpy; a value the user set stays.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
