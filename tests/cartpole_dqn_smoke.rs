//! `examples/cartpole_dqn.rs`, run through the example's own code (the file
//! is included as a module): its replay sampler, its TD targets, its update,
//! and the `--smoke` run (3,000 environment steps), which must learn.

#[path = "../examples/cartpole_dqn.rs"]
#[allow(dead_code)]
mod example;

use clap::Parser;
use example::{Batch, QNet, Replay};
use kiln::optim::{Adam, Optimizer};
use kiln::prelude::*;
use kiln::rl::{CartPole, Env};

/// A buffer of `n` transitions of a random policy (episodes restart).
fn random_replay(cap: usize, n: usize, seed: u64) -> Replay {
    let mut rng = kiln::rng(seed);
    let mut env = CartPole::new();
    let mut obs = env.reset(seed);
    let mut replay = Replay::new(cap);
    for k in 0..n {
        let a = rng.random_range(0..2);
        let s = env.step(a).unwrap();
        replay.push(obs, a, s.reward as f32, s.observation, s.terminated);
        obs = if s.done() {
            env.reset(seed + k as u64 + 1)
        } else {
            s.observation
        };
    }
    replay
}

#[test]
fn replay_batches_never_repeat_a_transition() {
    let mut rng = kiln::rng(1);
    let mut idx = Vec::new();
    // Small buffers make collisions of sampling with replacement near certain.
    for (len, batch) in [(64, 64), (100, 64), (1000, 128), (70, 2)] {
        let replay = random_replay(len, len, 3);
        assert_eq!(replay.len(), len);
        let mut hit = vec![0usize; len];
        for _ in 0..200 {
            replay.sample(&mut rng, batch, &mut idx);
            assert_eq!(idx.len(), batch);
            let mut sorted = idx.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), batch, "a repeated index in {idx:?}");
            assert!(idx.iter().all(|&i| i < len));
            for &i in &idx {
                hit[i] += 1;
            }
        }
        // Uniform: every transition is drawn (200·batch/len ≥ 5 draws each on average).
        assert!(hit.iter().all(|&h| h > 0), "never drawn: {len}, {batch}");
    }
    // The ring keeps the capacity and overwrites the oldest.
    let replay = random_replay(50, 120, 4);
    assert_eq!(replay.len(), 50);
}

#[test]
fn targets_bootstrap_unless_terminated() {
    let net = QNet::<f32, Cpu>::init(&Cpu, &mut kiln::rng(5)).unwrap();
    let mut tape = net.tape().unwrap();
    let gamma = 0.9f32;
    let s2 = [0.1f32, -0.2, 0.03, 0.4];
    let q2 = net.forward(&{
        let mut x = Tensor::<S1<4>>::zeros(&Cpu, 1).unwrap();
        x.copy_from_slice(&s2).unwrap();
        x
    });
    let mut q = [0.0f32; 2];
    q2.unwrap().copy_to_slice(&mut q).unwrap();
    let max = q[0].max(q[1]);
    // Index 0: terminated; 1: an ordinary step; 2: truncated by the time
    // limit, stored with terminated = false, so it bootstraps.
    let mut replay = Replay::new(3);
    replay.push([0.0; 4], 1, 1.0, s2, true);
    replay.push([0.0; 4], 0, 1.0, s2, false);
    replay.push([0.0; 4], 1, 1.0, s2, false);
    let mut b = Batch::new(3).unwrap();
    b.load(&replay, &[0, 1, 2], &net, &mut tape, gamma).unwrap();
    assert_eq!(b.actions, [1, 0, 1]);
    assert_eq!(b.targets[0], 1.0);
    for &y in &b.targets[1..] {
        assert!(
            (y - (1.0 + gamma * max)).abs() < 1e-6,
            "{y} vs {}",
            1.0 + gamma * max
        );
    }
    assert!(max.abs() > 1e-3, "the check needs a nonzero bootstrap");
}

#[test]
fn td_loss_falls_on_a_fixed_replay_batch() {
    let replay = random_replay(1000, 1000, 7);
    let mut rng = kiln::rng(8);
    let mut idx = Vec::new();
    replay.sample(&mut rng, 64, &mut idx);
    let mut net = QNet::<f32, Cpu>::init(&Cpu, &mut rng).unwrap();
    let target = QNet::<f32, Cpu>::init(&Cpu, &mut rng).unwrap();
    let mut ttape = target.tape().unwrap();
    let (mut tape, mut grads) = (net.tape().unwrap(), net.grads().unwrap());
    let mut opt = Adam::new(1e-3).clip_grad_norm(10.0);
    let mut b = Batch::new(64).unwrap();
    b.load(&replay, &idx, &target, &mut ttape, 0.99).unwrap();
    let losses: Vec<f32> = (0..200)
        .map(|_| example::update(&mut net, &mut tape, &mut grads, &mut opt, &mut b).unwrap())
        .collect();
    println!("fixed-batch TD loss {:.4} → {:.5}", losses[0], losses[199]);
    assert!(losses[0] > 0.05, "initial loss {}", losses[0]);
    assert!(
        losses[199] < 0.05 * losses[0],
        "the loss did not fall: {losses:?}"
    );
}

#[test]
fn smoke_run_learns() {
    kiln::set_threads(1).unwrap();
    let args = example::Args::parse_from(["cartpole_dqn", "--smoke"]);
    let t0 = std::time::Instant::now();
    let out = example::run(&args).unwrap();
    let secs = t0.elapsed().as_secs_f64();
    let mean = out.eval_returns.iter().sum::<f64>() / out.eval_returns.len() as f64;
    let first10 = out.episode_returns[..10].iter().sum::<f64>() / 10.0;
    println!(
        "smoke: {} steps, {} episodes (first 10: mean {first10:.1}), checks {:?}, eval mean {mean:.1}, {secs:.1} s",
        out.steps,
        out.episode_returns.len(),
        out.checks
    );
    assert_eq!(out.steps, 3_000);
    assert_eq!(out.eval_returns.len(), 5);
    assert_eq!(out.checks.len(), 3);
    // A random policy balances ~22 steps; an untrained greedy one ~10.
    assert!(first10 < 50.0, "random episodes: {first10}");
    assert!(mean >= 100.0, "the greedy policy did not learn: {mean}");
    // The time is printed above, not asserted (see cartpole_pg_smoke.rs).
}
