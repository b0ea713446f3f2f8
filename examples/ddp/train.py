"""DDP over iog: every node trains on its shard of the digits data set; gloo averages the
gradients. iog sets MASTER_ADDR, MASTER_PORT, RANK and WORLD_SIZE for torch clusters (and, on
the cluster mesh, GLOO_SOCKET_IFNAME), so init_process_group needs nothing else."""
import hashlib
import json
import os

import torch
import torch.distributed as dist
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch.nn.parallel import DistributedDataParallel as DDP

dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
torch.manual_seed(0)  # the same initial weights everywhere (DDP also broadcasts rank 0's)

x, y = load_digits(return_X_y=True)
x = x / 16.0
x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=0)
shard = slice(rank, None, world)  # rank r takes rows r, r+world, ...
xs = torch.tensor(x_train[shard], dtype=torch.float32)
ys = torch.tensor(y_train[shard], dtype=torch.long)

model = DDP(torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10)))
opt = torch.optim.Adam(model.parameters(), lr=0.01)
for epoch in range(60):
    for i in range(0, len(xs), 64):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(xs[i:i + 64]), ys[i:i + 64])
        loss.backward()
        opt.step()

with torch.no_grad():
    pred = model(torch.tensor(x_test, dtype=torch.float32)).argmax(1).numpy()
acc = float((pred == y_test).mean())
digest = hashlib.sha256()
for p in model.module.parameters():
    digest.update(p.detach().numpy().tobytes())
weights = digest.hexdigest()[:16]
print(f"rank {rank} of {world}: test accuracy {acc:.4f} weights {weights}", flush=True)

if rank == 0:
    os.makedirs("out", exist_ok=True)
    with open("out/metrics.json", "w") as f:
        json.dump({"accuracy": acc, "weights": weights, "world_size": world}, f)
dist.destroy_process_group()
