"""Several runs of one config: (group, seed) run lists, a bounded local process pool or Ray tasks,
statistics across seeds. `iovsim compare` and `iovsim sweep` are built on it.

Every run is one `iovsim run` in its own process and run folder, so memory, faults and torch threads
are its own; the folder is the record (a finished run is never redone, an interrupted one resumes).
"""
