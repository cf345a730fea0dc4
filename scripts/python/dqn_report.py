"""Table and plot of scripts/dqn-compare's runs: kiln's and PyTorch's DQN on
CartPole-v1, per seed: the mean return of the kept policy over 100 greedy
evaluation episodes, the training episodes, the wall time and the CPU time
of the training loop per environment step; and both return curves (the
return of each training episode, smoothed over 20 episodes) on one plot.

    python dqn_report.py DIR OUT.png SEED...
"""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def main():
    d, png, seeds = sys.argv[1], sys.argv[2], [int(s) for s in sys.argv[3:]]
    runs = {}
    for fw in ("kiln", "torch"):
        for s in seeds:
            runs[(fw, s)] = json.load(open(f"{d}/{fw}_seed{s}.json"))
    print("| seed | kiln eval return | PyTorch eval return | kiln episodes | PyTorch episodes "
          "| kiln µs/step (wall, CPU) | PyTorch µs/step (wall, CPU) | CPU-time ratio kiln ÷ PyTorch |")
    print("|---|---|---|---|---|---|---|---|")
    ratios = []
    for s in seeds:
        k, t = runs[("kiln", s)], runs[("torch", s)]
        kc, tc = k.get("train_cpu_secs"), t.get("train_cpu_secs")
        r = kc / tc if kc and tc else float("nan")
        ratios.append(r)
        print(f"| {s} | {np.mean(k['eval_returns']):.2f} | {np.mean(t['eval_returns']):.2f} "
              f"| {len(k['episode_returns'])} | {len(t['episode_returns'])} "
              f"| {1e6 * k['secs_per_env_step']:.0f}, {1e6 * kc / k['steps']:.0f} "
              f"| {1e6 * t['secs_per_env_step']:.0f}, {1e6 * tc / t['steps']:.0f} | {r:.2f} |")
    print(f"\nmean CPU-time ratio kiln ÷ PyTorch: {np.nanmean(ratios):.2f}; "
          f"seeds reaching ≥ 475: kiln {sum(np.mean(runs[('kiln', s)]['eval_returns']) >= 475 for s in seeds)}"
          f"/{len(seeds)}, PyTorch {sum(np.mean(runs[('torch', s)]['eval_returns']) >= 475 for s in seeds)}/{len(seeds)}")
    fig, axes = plt.subplots(1, len(seeds), figsize=(4 * len(seeds), 3.2), sharey=True, squeeze=False)
    for ax, s in zip(axes[0], seeds):
        for fw, colour in (("kiln", "tab:orange"), ("torch", "tab:blue")):
            r = np.array(runs[(fw, s)]["episode_returns"])
            steps = np.cumsum(r)
            w = 20
            sm = np.convolve(r, np.ones(w) / w, mode="valid") if len(r) >= w else r
            ax.plot(steps[len(r) - len(sm):] / 1000, sm, color=colour,
                    label="kiln" if fw == "kiln" else "PyTorch + Gymnasium")
        ax.set_title(f"seed {s}")
        ax.set_xlabel("environment steps (thousands)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("training return (mean of 20 episodes)")
    axes[0][0].legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=80)
    print(f"plot: {png}")


if __name__ == "__main__":
    main()
