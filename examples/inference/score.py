"""Score this node's share of the rows: rows i with i % nodes == rank. Writes
out/scores.csv (row,prediction,label)."""
import os

import torch
from sklearn.datasets import load_digits

rank, nodes = int(os.environ["IOG_NODE_RANK"]), int(os.environ["IOG_NODE_COUNT"])
x, y = load_digits(return_X_y=True)
model = torch.nn.Linear(64, 10)
model.load_state_dict(torch.load("model.pt"))
rows = list(range(rank, len(x), nodes))
with torch.no_grad():
    pred = model(torch.tensor(x[rows] / 16.0, dtype=torch.float32)).argmax(1).tolist()
os.makedirs("out", exist_ok=True)
with open("out/scores.csv", "w") as f:
    f.write("row,prediction,label\n")
    for i, p in zip(rows, pred):
        f.write(f"{i},{p},{y[i]}\n")
right = sum(p == y[i] for i, p in zip(rows, pred))
print(f"node {rank}: scored {len(rows)} rows, {right} right", flush=True)
