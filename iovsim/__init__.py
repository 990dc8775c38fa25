"""iovsim: co-simulation of federated LoRA fine-tuning in Internet-of-Vehicles networks."""
import os as _os

# torch's CPU threads run on GNU OpenMP (libgomp), whose threads spin 300,000 turns (~3 ms) at every barrier
# before they sleep. On a CPU shared with other work (a second run, SUMO's GUI, another user) the spinning
# thread keeps a core from the thread it waits for: training took 2.1-3.7x as long. Spinning 3,000 turns
# costs nothing measurable alone and gives back nearly all of it (tools/results/bench_omp_wait.md).
# libgomp reads this once, when torch loads it, so it is set here, before any iovsim module imports torch;
# the user's own OMP_WAIT_POLICY or GOMP_SPINCOUNT wins, and child runs inherit it.
if "OMP_WAIT_POLICY" not in _os.environ and "GOMP_SPINCOUNT" not in _os.environ:
    _os.environ["GOMP_SPINCOUNT"] = "3000"

__version__ = "0.1.0"
