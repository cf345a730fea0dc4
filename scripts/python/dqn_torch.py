"""The DQN of examples/cartpole_dqn.rs in PyTorch on Gymnasium's CartPole-v1.

Same network (4-128-128-2, ReLU, PyTorch's default initialisation, which
kiln's Linear copies), same hyperparameters and schedule: Adam 5e-4 with the
gradients clipped to a global norm of 10, batch 64 sampled uniformly without
replacement from the last 50,000 transitions, 1,000 random warm-up steps,
epsilon falling linearly from 1 to 0.05 over the next 10,000 steps, the
Huber TD loss (smooth L1, beta 1, mean over the batch) at the taken action,
bootstrapping unless the episode terminated (a truncation bootstraps), one
update per environment step, the target network copied every 500 steps (or
Polyak-averaged with --tau), a greedy check of 10 episodes every 2,500 steps
keeping the best parameters (ties to the later), and 100 evaluation episodes
of the kept parameters. Episode seeds follow the example's scheme
(training k: seed*10^6 + k; checks 10^9 + ...; evaluation 2*10^9 + ...),
given to Gymnasium's reset(seed=...), so the start states come from
Gymnasium's generator rather than kiln's: the same distribution, other
draws. One thread (torch.set_num_threads(1)), as the example's default.

Writes a JSON file: the return of every training episode, the checks, the
evaluation returns, the wall time of the training loop and per environment
step. Run by scripts/dqn-compare beside the kiln example.
"""

import argparse
import json
import time

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=100_000)
    p.add_argument("--eval-episodes", type=int, default=100)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--gamma", type=float, default=0.99)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--target-every", type=int, default=500)
    p.add_argument("--tau", type=float, default=0.0)
    p.add_argument("--buffer", type=int, default=50_000)
    p.add_argument("--warmup", type=int, default=1_000)
    p.add_argument("--eps-decay", type=int, default=10_000)
    p.add_argument("--eps-end", type=float, default=0.05)
    p.add_argument("--clip", type=float, default=10.0)
    p.add_argument("--check-every", type=int, default=2_500)
    p.add_argument("--check-episodes", type=int, default=10)
    p.add_argument("--out", required=True)
    a = p.parse_args()

    torch.set_num_threads(1)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)

    def qnet():
        return nn.Sequential(nn.Linear(4, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 2))

    net, target = qnet(), qnet()
    target.load_state_dict(net.state_dict())
    opt = torch.optim.Adam(net.parameters(), lr=a.lr)

    cap = a.buffer
    obs_b = np.zeros((cap, 4), np.float32)
    next_b = np.zeros((cap, 4), np.float32)
    act_b = np.zeros(cap, np.int64)
    rew_b = np.zeros(cap, np.float32)
    term_b = np.zeros(cap, np.bool_)
    size, head = 0, 0

    def greedy(o):
        with torch.no_grad():
            return int(net(torch.from_numpy(o).unsqueeze(0)).argmax(1).item())

    def evaluate(base, episodes):
        env = gym.make("CartPole-v1")
        rets = []
        for k in range(episodes):
            o, _ = env.reset(seed=base + k)
            ret, done = 0.0, False
            while not done:
                o, r, term, trunc, _ = env.step(greedy(o))
                ret += r
                done = term or trunc
            rets.append(ret)
        return rets

    env = gym.make("CartPole-v1")
    episode = 0
    o, _ = env.reset(seed=a.seed * 1_000_000)
    ret = 0.0
    returns, checks, losses = [], [], []
    best = (-float("inf"), {k: v.clone() for k, v in net.state_dict().items()}, 0)
    loss_sum, loss_n = 0.0, 0
    t0 = time.perf_counter()
    c0 = time.process_time()
    for step in range(1, a.steps + 1):
        if step <= a.warmup:
            eps = 1.0
        else:
            t = min((step - a.warmup) / max(a.eps_decay, 1), 1.0)
            eps = 1.0 + t * (a.eps_end - 1.0)
        act = int(rng.integers(2)) if rng.random() < eps else greedy(o)
        o2, r, term, trunc, _ = env.step(act)
        obs_b[head], act_b[head], rew_b[head], next_b[head], term_b[head] = o, act, r, o2, term
        head = (head + 1) % cap
        size = min(size + 1, cap)
        ret += r
        o = o2
        if term or trunc:
            returns.append(ret)
            ret = 0.0
            episode += 1
            o, _ = env.reset(seed=a.seed * 1_000_000 + episode)
        if step > a.warmup:
            idx = rng.choice(size, a.batch_size, replace=False)
            x = torch.from_numpy(obs_b[idx])
            x2 = torch.from_numpy(next_b[idx])
            with torch.no_grad():
                boot = target(x2).max(1).values * torch.from_numpy(~term_b[idx]).float()
                y = torch.from_numpy(rew_b[idx]) + a.gamma * boot
            q = net(x).gather(1, torch.from_numpy(act_b[idx]).unsqueeze(1)).squeeze(1)
            loss = F.smooth_l1_loss(q, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), a.clip)
            opt.step()
            loss_sum += loss.item()
            loss_n += 1
            if a.tau > 0:
                with torch.no_grad():
                    for pt, pn in zip(target.parameters(), net.parameters()):
                        pt.mul_(1 - a.tau).add_(pn, alpha=a.tau)
            elif step % a.target_every == 0:
                target.load_state_dict(net.state_dict())
        if step % a.check_every == 0 or step == a.steps:
            base = 1_000_000_000 + a.seed * 1_000_000 + (step // a.check_every * 100)
            m = float(np.mean(evaluate(base, a.check_episodes)))
            checks.append((step, m))
            losses.append(loss_sum / max(loss_n, 1))
            loss_sum, loss_n = 0.0, 0
            if m >= best[0]:
                best = (m, {k: v.clone() for k, v in net.state_dict().items()}, step)
    secs = time.perf_counter() - t0
    cpu = time.process_time() - c0
    eval_base = 2_000_000_000 + a.seed * 1_000_000
    final = evaluate(eval_base, a.eval_episodes)
    net.load_state_dict(best[1])
    ev = evaluate(eval_base, a.eval_episodes)
    json.dump(
        {
            "framework": "pytorch",
            "torch": torch.__version__,
            "gymnasium": gym.__version__,
            "seed": a.seed,
            "steps": a.steps,
            "episode_returns": returns,
            "checks": checks,
            "train_losses": losses,
            "best_step": best[2],
            "eval_returns": ev,
            "final_eval_returns": final,
            "train_secs": secs,
            "secs_per_env_step": secs / a.steps,
            "train_cpu_secs": cpu,
        },
        open(a.out, "w"),
    )
    print(
        f"pytorch seed {a.seed}: eval mean {np.mean(ev):.2f} (best step {best[2]}), "
        f"final params {np.mean(final):.2f}, {len(returns)} episodes, {secs:.1f} s "
        f"({1e6 * secs / a.steps:.1f} us per env step)"
    )


if __name__ == "__main__":
    main()
