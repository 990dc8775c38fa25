"""How many centralised steps a task needs on MiniLM + LoRA r8 (query, value), per learning rate: one
vehicle holding the whole training pool, batch 16, 64 tokens, evaluated on 500 test rows after every
chunk of steps. It sizes the rounds x local steps of a comparison config (a FedAvg lineage of non-IID
shards needs at least as many steps).

    python tools/learn_curve.py DATASET LRS CHUNKS STEPS      e.g.  python tools/learn_curve.py qnli 1e-3,3e-3 4 50
"""
import sys
import time
from pathlib import Path

import numpy as np
import iovsim  # noqa: F401  (before torch: libgomp's wait policy as a run sets it, iovsim/__init__.py)
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from iovsim.config import config_from_dict  # noqa: E402
from iovsim.fl.data import load_task  # noqa: E402
from iovsim.fl.model import AdapterModel  # noqa: E402
from iovsim.fl.train import LocalExecutor, TokenizedTask, TrainJob  # noqa: E402

torch.set_num_threads(1)
ds, lrs, chunks, steps = sys.argv[1], [float(x) for x in sys.argv[2].split(",")], int(sys.argv[3]), int(sys.argv[4])
cfg = config_from_dict({"fl": {"tasks": [{"name": ds, "dataset": ds, "max_length": 64, "test_samples": 500}]}})
tc = cfg.fl.tasks[0]
data = load_task(tc, 1)
model = AdapterModel("minilm", ["query", "value"], 16.0)
ex = LocalExecutor(model, [TokenizedTask(model, data, 64)])
for lr in lrs:
    state = model.init_state(8, data.num_classes, torch.Generator().manual_seed(0))
    t0 = time.time()
    for c in range(chunks):
        job = TrainJob("v", 0, state, 8, steps, 16, lr, 5 * lr, np.arange(len(data.train_labels)), [1, c])
        state = ex.train([job])[0].state
        ev = ex.evaluate(0, state, 8, 256)
        print(f"{ds} lr {lr:g} steps {(c+1)*steps}: acc {ev.accuracy:.3f} loss {ev.loss:.3f}  {time.time()-t0:.0f}s", flush=True)
