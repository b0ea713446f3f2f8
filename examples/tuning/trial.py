"""One trial of the tuning example: trial IOG_TASK_INDEX of a 4 x 4 grid of learning rate and
hidden size, trained on 2/3 of scikit-learn's digits and scored on the rest. Writes
out/trial-NN.json. Trial 13 fails its first attempt (exit 3) to show the retry."""
import json
import os
import sys
import warnings

from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

index = int(os.environ["IOG_TASK_INDEX"])
attempt = int(os.environ["IOG_TASK_ATTEMPT"])
tasks = int(os.environ["IOG_TASKS"])
rates = [0.0003, 0.001, 0.003, 0.01]
hidden = [8, 16, 32, 64]
lr, h = rates[index // 4], hidden[index % 4]

if index == 13 and attempt == 0:
    print(f"trial {index}: failing attempt {attempt} on purpose", flush=True)
    sys.exit(3)

x, y = load_digits(return_X_y=True)
x_train, x_test, y_train, y_test = train_test_split(x / 16.0, y, test_size=1 / 3, random_state=0)
warnings.simplefilter("ignore", ConvergenceWarning)
model = MLPClassifier(hidden_layer_sizes=(h,), learning_rate_init=lr, max_iter=40, random_state=0)
model.fit(x_train, y_train)
acc = model.score(x_test, y_test)
os.makedirs("out", exist_ok=True)
with open(f"out/trial-{index:02d}.json", "w") as f:
    json.dump({"trial": index, "attempt": attempt, "lr": lr, "hidden": h, "accuracy": acc}, f)
print(f"trial {index} of {tasks} (attempt {attempt}): lr={lr} hidden={h} accuracy={acc:.4f}", flush=True)
