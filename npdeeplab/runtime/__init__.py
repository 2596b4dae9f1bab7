"""Running a model: prepare the graph (graph), plan its memory (plan), pick kernels (backends,
threads) and invoke it (interpreter), with per-op recording (trace).

Nothing here imports NumPy at package import time beyond what its modules need: `npdeeplab`
imports `runtime.threads` before NumPy to set the thread-waiting policy.
"""
