"""Distributed REINFORCE on CartPole over torch.distributed (gloo): rank 0 learns, the other
ranks roll out. Every iteration the learner broadcasts the policy, each worker runs a batch
of episodes and computes its policy gradient, the gradients are reduced onto the learner, and
the learner takes a step. Solved: a mean episode length of at least 195 (of 200)."""
import json
import os
import sys

import numpy as np
import torch
import torch.distributed as dist

dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
workers = world - 1
assert workers >= 1, "needs a learner and at least one rollout worker"
torch.manual_seed(0)
rng = np.random.default_rng(1000 + rank)

GRAVITY, MCART, MPOLE, HALF_LEN, FORCE, TAU = 9.8, 1.0, 0.1, 0.5, 10.0, 0.02
MAX_STEPS, EPISODES, SOLVED = 200, 16, 195.0


def step(s, action):
    """Classic cart-pole dynamics (Barto, Sutton & Anderson), vectorised over episodes."""
    x, x_dot, th, th_dot = s.T
    f = np.where(action == 1, FORCE, -FORCE)
    cos, sin = np.cos(th), np.sin(th)
    total = MCART + MPOLE
    tmp = (f + MPOLE * HALF_LEN * th_dot**2 * sin) / total
    th_acc = (GRAVITY * sin - cos * tmp) / (HALF_LEN * (4.0 / 3.0 - MPOLE * cos**2 / total))
    x_acc = tmp - MPOLE * HALF_LEN * th_acc * cos / total
    s = np.stack([x + TAU * x_dot, x_dot + TAU * x_acc, th + TAU * th_dot, th_dot + TAU * th_acc], 1)
    done = (np.abs(s[:, 0]) > 2.4) | (np.abs(s[:, 2]) > 12 * np.pi / 180)
    return s, done


policy = torch.nn.Sequential(torch.nn.Linear(4, 32), torch.nn.Tanh(), torch.nn.Linear(32, 2))
opt = torch.optim.Adam(policy.parameters(), lr=0.02)


def rollout():
    """Run EPISODES episodes with the current policy; return the REINFORCE loss and lengths."""
    s = rng.uniform(-0.05, 0.05, (EPISODES, 4))
    alive = np.ones(EPISODES, bool)
    logps, rewards = [], []
    for _ in range(MAX_STEPS):
        dist_ = torch.distributions.Categorical(logits=policy(torch.tensor(s, dtype=torch.float32)))
        a = dist_.sample()
        logps.append(dist_.log_prob(a))
        rewards.append(torch.tensor(alive, dtype=torch.float32))
        s, done = step(s, a.numpy())
        alive &= ~done
        if not alive.any():
            break
    r = torch.stack(rewards)  # steps x episodes: 1 while the episode is alive
    to_go = r.flip(0).cumsum(0).flip(0)
    adv = (to_go - to_go.mean()) / (to_go.std() + 1e-8) * r
    loss = -(torch.stack(logps) * adv).sum() / EPISODES
    return loss, r.sum(0).mean().item()


solved_at, mean_len = None, 0.0
for it in range(300):
    for p in policy.parameters():
        dist.broadcast(p.data, src=0)
    opt.zero_grad()
    stats = torch.zeros(1)
    if rank > 0:
        loss, stats[0] = rollout()
        loss.backward()
    else:
        for p in policy.parameters():
            p.grad = torch.zeros_like(p)
    for p in policy.parameters():
        dist.reduce(p.grad, dst=0)
    dist.all_reduce(stats)
    mean_len = stats.item() / workers
    if rank == 0:
        for p in policy.parameters():
            p.grad /= workers
        opt.step()
        if it % 10 == 0:
            print(f"iteration {it}: mean episode length {mean_len:.1f}", flush=True)
    if mean_len >= SOLVED:
        solved_at = it
        break

if rank == 0:
    os.makedirs("out", exist_ok=True)
    with open("out/result.json", "w") as f:
        json.dump({"solved": solved_at is not None, "iteration": solved_at, "mean_length": mean_len, "workers": workers}, f)
    if solved_at is None:
        print(f"not solved: mean episode length {mean_len:.1f}", flush=True)
    else:
        print(f"solved at iteration {solved_at}: mean episode length {mean_len:.1f} over {workers * EPISODES} episodes", flush=True)
else:
    print(f"rollout worker {rank}: done", flush=True)
dist.destroy_process_group()
sys.exit(0 if solved_at is not None else 1)
