#!/usr/bin/env python3
"""Records tests/fixtures/cartpole_trajectory.json for tests/cartpole.rs:
CartPole-v1 trajectories from Gymnasium, every step's float64 state
(`env.unwrapped.state`), float32 observation, reward, terminated and
truncated, so that kiln's `CartPole::reset_to(initial state)` replays them.

    python3 -m venv /tmp/gymvenv && /tmp/gymvenv/bin/pip install gymnasium numpy
    /tmp/gymvenv/bin/python scripts/pytorch/cartpole_fixture.py

Two episodes, both reset with seed 0 (numpy's generator: kiln's differs, so
the initial state is recorded):
  * "balance": 200 steps of a scripted policy that pushes toward the side the
    pole falls to (action 1 when theta + 0.5 * theta_dot > 0), which keeps the
    pole up, so the episode neither terminates nor is truncated;
  * "push_right": action 1 until the episode terminates.
Floats are written twice: as JSON numbers (readable) and as the hex of their
bits (f64: 16 digits, f32: 8), which the test compares exactly.
"""
import json
import os
import struct

import gymnasium as gym
import numpy as np


def bits64(v):
    return "%016x" % struct.unpack("<Q", struct.pack("<d", float(v)))[0]


def bits32(v):
    return "%08x" % struct.unpack("<I", struct.pack("<f", np.float32(v)))[0]


def record(policy, max_steps, seed=0):
    env = gym.make("CartPole-v1")
    obs, _ = env.reset(seed=seed)
    state = np.array(env.unwrapped.state, dtype=np.float64)
    episode = {
        "seed": seed,
        "initial_state": [float(v) for v in state],
        "initial_state_bits": [bits64(v) for v in state],
        "initial_observation_bits": [bits32(v) for v in obs],
        "steps": [],
    }
    for t in range(max_steps):
        action = policy(state)
        obs, reward, terminated, truncated, _ = env.step(action)
        state = np.array(env.unwrapped.state, dtype=np.float64)
        assert obs.dtype == np.float32
        episode["steps"].append(
            {
                "action": int(action),
                "state": [float(v) for v in state],
                "state_bits": [bits64(v) for v in state],
                "observation": [float(v) for v in obs],
                "observation_bits": [bits32(v) for v in obs],
                "reward": float(reward),
                "terminated": bool(terminated),
                "truncated": bool(truncated),
            }
        )
        if terminated or truncated:
            break
    return episode


def main():
    balance = record(lambda s: int(s[2] + 0.5 * s[3] > 0), 200)
    push_right = record(lambda s: 1, 500)
    assert len(balance["steps"]) == 200 and not balance["steps"][-1]["terminated"]
    assert push_right["steps"][-1]["terminated"]
    out = {
        "gymnasium": gym.__version__,
        "numpy": np.__version__,
        "episodes": {"balance": balance, "push_right": push_right},
    }
    path = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "cartpole_trajectory.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(f"wrote {os.path.normpath(path)}: balance {len(balance['steps'])} steps, "
          f"push_right {len(push_right['steps'])} steps (gymnasium {gym.__version__})")


if __name__ == "__main__":
    main()
