//! Policy gradients on CartPole-v1: REINFORCE with a baseline, and an
//! actor–critic variant (issue 14).
//!
//! ```text
//! cargo run --release --example cartpole_pg                          # REINFORCE, seed 0
//! cargo run --release --example cartpole_pg -- --method actor-critic --seed 3
//! cargo run --release --example cartpole_pg -- --plot pg.png --save policy.safetensors
//! cargo run --release --example cartpole_pg -- --smoke               # a few dozen episodes
//! ```
//!
//! The policy is a 4–128–2 perceptron (`kiln::network!`) whose two logits
//! define `π(a|s) = softmax(z)`. Each update samples `--batch-episodes`
//! episodes with the current policy and computes the discounted returns
//! `G_t = Σ_k γ^k·r_{t+k}`. The policy-gradient loss
//! `L = −(1/N)·Σ_t A_t·log π(a_t|s_t)` is
//! [`kiln::rl::losses::weighted_nll_loss`] with the advantages `A_t` as
//! weights; its gradient with respect to the logits goes through the
//! network's generated backward, and Adam steps.
//!
//! * `--method reinforce`: `A_t = G_t − b`, the baseline `b` the mean return
//!   of the batch's steps; then divided by the standard deviation
//!   (normalised returns).
//! * `--method actor-critic`: a value network `V(s)` (4–128–1) trained by
//!   MSE on the returns (scaled by `1 − γ`, so targets lie in `[0, 1]`);
//!   `A_t = G_t − V(s_t)`, normalised over the batch. An episode cut off at
//!   the time limit (truncated, not terminated) bootstraps its returns from
//!   `V` of the last observation.
//!
//! Training stops early when the batch's mean return is at least 450 and a
//! greedy check (20 episodes, `argmax π`, seeds apart from training and
//! evaluation) averages at least 495; that policy is kept. Otherwise the
//! best policy by these greedy checks (or the final one when none was made)
//! is kept. The kept policy is then evaluated greedily on `--eval-episodes`
//! episodes with their own seeds, and the mean return is printed last:
//! `eval mean return (100 episodes): …`.
//!
//! * `--plot PATH` draws the return of each training episode (and its
//!   20-episode moving mean) into `PATH` (PNG; `.png` is appended when
//!   `PATH` has another or no extension) and the same chart as an SVG beside it.
//! * `--save PATH` writes the kept policy (safetensors, `kiln::checkpoint`).
//! * `--smoke` trains a few dozen episodes (under 30 s) and prints; the test
//!   `tests/cartpole_pg_smoke.rs` runs it.

use clap::{Parser, ValueEnum};
use kiln::module::Path as PPath;
use kiln::prelude::*;
use kiln::rl::losses::weighted_nll_loss;
use kiln::rl::{CartPole, Env};
use kiln::train::plot::{plot_panels, Panel};
use std::path::{Path, PathBuf};
use std::time::Instant;

kiln::network! {
    /// The policy: observation → two logits (push left, push right).
    pub struct Policy {
        input: [4],
        fc1: Linear(128),
        relu,
        fc2: Linear(2),
    }
}

kiln::network! {
    /// The critic of actor–critic: observation → `V(s)·(1 − γ)`.
    pub struct Value {
        input: [4],
        fc1: Linear(128),
        relu,
        fc2: Linear(1),
    }
}

/// How the advantages are formed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Method {
    /// REINFORCE: discounted returns minus their batch mean.
    Reinforce,
    /// Actor–critic: discounted returns minus a learned `V(s)`.
    ActorCritic,
}

/// Train a policy on CartPole-v1 by policy gradients.
#[derive(Parser, Debug)]
#[command(about = "REINFORCE and actor-critic on CartPole-v1 with kiln")]
pub struct Args {
    /// Seed of the weights, the action sampling and the training episodes.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Most training episodes (at most 2000).
    #[arg(long, default_value_t = 2000)]
    pub episodes: usize,
    /// Greedy evaluation episodes of the kept policy.
    #[arg(long, default_value_t = 100)]
    pub eval_episodes: usize,
    /// reinforce or actor-critic.
    #[arg(long, value_enum, default_value_t = Method::Reinforce)]
    pub method: Method,
    /// Discount factor.
    #[arg(long, default_value_t = 0.99)]
    pub gamma: f64,
    /// Adam's learning rate for the policy (and the value network).
    #[arg(long, default_value_t = 5e-3)]
    pub lr: f64,
    /// Episodes per update.
    #[arg(long, default_value_t = 4)]
    pub batch_episodes: usize,
    /// Write the training returns as a PNG (and an SVG beside it).
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Write the kept policy to this safetensors file.
    #[arg(long)]
    pub save: Option<PathBuf>,
    /// A short run (a few dozen episodes) that only prints.
    #[arg(long)]
    pub smoke: bool,
    /// CPU threads (0: rayon's default).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
}

/// What a run produced.
#[derive(Debug)]
pub struct Outcome {
    /// The return of each training episode, in order.
    pub returns: Vec<f64>,
    /// Mean return of the kept policy over the evaluation episodes.
    pub eval_mean: f64,
    /// Training episodes used.
    pub episodes: usize,
    /// Whether the early stop (greedy check ≥ 495) ended training.
    pub solved: bool,
    /// Seconds of the whole run.
    pub secs: f64,
}

/// Seeds of the training episodes, the greedy checks and the evaluation:
/// three disjoint ranges.
fn train_seed(seed: u64, episode: usize) -> u64 {
    seed * 1_000_000 + episode as u64
}
fn check_seed(seed: u64, i: usize) -> u64 {
    1_000_000_000 + seed * 1_000_000 + i as u64
}
fn eval_seed(seed: u64, i: usize) -> u64 {
    2_000_000_000 + seed * 1_000_000 + i as u64
}

/// A network's parameters on the host, by visiting order.
fn snapshot(net: &Policy<f32, Cpu>) -> Vec<Vec<f32>> {
    let mut v = Vec::new();
    net.visit(&PPath::ROOT, &mut |_, p| {
        v.push(p.value[..p.numel].to_vec())
    });
    v
}

fn restore(net: &mut Policy<f32, Cpu>, saved: &[Vec<f32>]) {
    let mut i = 0;
    net.visit_mut(&PPath::ROOT, &mut |_, p, _| {
        p.value[..p.numel].copy_from_slice(&saved[i]);
        i += 1;
    });
}

/// The two logits of the policy at one observation.
fn logits(
    net: &Policy<f32, Cpu>,
    x: &mut Tensor<S1<4>>,
    tape: &mut PolicyTape<f32, Cpu>,
    obs: &[f32; 4],
) -> kiln::Result<[f32; 2]> {
    x.set_batch(1)?;
    x.copy_from_slice(obs)?;
    let z = net.forward_with(x, tape)?;
    let mut out = [0.0f32; 2];
    z.copy_to_slice(&mut out)?;
    Ok(out)
}

/// Mean return of the greedy policy over the episodes with `seeds`.
fn greedy_mean(
    net: &Policy<f32, Cpu>,
    x: &mut Tensor<S1<4>>,
    tape: &mut PolicyTape<f32, Cpu>,
    seeds: impl Iterator<Item = u64>,
) -> kiln::Result<f64> {
    let (mut total, mut n) = (0.0, 0usize);
    let mut env = CartPole::new();
    for s in seeds {
        let mut obs = env.reset(s);
        loop {
            let z = logits(net, x, tape, &obs)?;
            let step = env.step(usize::from(z[1] > z[0]))?;
            total += step.reward;
            obs = step.observation;
            if step.done() {
                break;
            }
        }
        n += 1;
    }
    Ok(total / n.max(1) as f64)
}

/// One sampled episode.
struct Episode {
    obs: Vec<[f32; 4]>,
    actions: Vec<usize>,
    rewards: Vec<f64>,
    /// Cut off by the time limit; the observation after the last step.
    truncated: Option<[f32; 4]>,
}

/// Mean and standard deviation (population) of `v`.
fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n;
    (m, var.sqrt())
}

/// Writes the training returns and their 20-episode moving mean.
fn plot(path: &Path, returns: &[f64], title: &str) -> kiln::Result<()> {
    let raw: Vec<(f64, f64)> = returns
        .iter()
        .enumerate()
        .map(|(i, &r)| (i as f64 + 1.0, r))
        .collect();
    let smooth: Vec<(f64, f64)> = (0..returns.len())
        .map(|i| {
            let lo = (i + 1).saturating_sub(20);
            let w = &returns[lo..=i];
            (i as f64 + 1.0, w.iter().sum::<f64>() / w.len() as f64)
        })
        .collect();
    let panel = Panel {
        title: title.into(),
        y_label: "return per episode".into(),
        series: vec![
            ("episode".into(), raw),
            ("mean of the last 20".into(), smooth),
        ],
    };
    // plot_panels appends .png and .svg to a prefix.
    let prefix = if path.extension().is_some_and(|e| e == "png") {
        path.with_extension("")
    } else {
        path.to_path_buf()
    };
    plot_panels(&[panel], prefix, 800, 480)?;
    Ok(())
}

/// Trains and evaluates; prints progress.
pub fn run(args: &Args) -> kiln::Result<Outcome> {
    let t0 = Instant::now();
    if args.episodes == 0 || args.episodes > 2000 {
        return Err(kiln::Error::invalid("--episodes", "must be 1..=2000"));
    }
    if args.batch_episodes == 0 {
        return Err(kiln::Error::invalid("--batch-episodes", "must be ≥ 1"));
    }
    for (flag, path) in [("--plot", &args.plot), ("--save", &args.save)] {
        if let Some(path) = path {
            kiln::train::check_output_path(flag, path)?;
        }
    }
    let max_episodes = if args.smoke {
        args.episodes.min(48)
    } else {
        args.episodes
    };
    let eval_episodes = if args.smoke {
        args.eval_episodes.min(5)
    } else {
        args.eval_episodes
    };
    let gamma = args.gamma;
    let dev = Cpu;
    let mut rng = kiln::rng(args.seed);
    let mut policy = Policy::<f32, Cpu>::init(&dev, &mut rng)?;
    let mut value = Value::<f32, Cpu>::init(&dev, &mut rng)?;
    let mut popt = Adam::new(args.lr);
    let mut vopt = Adam::new(args.lr);
    let (mut ptape, mut pgrads) = (policy.tape()?, policy.grads()?);
    let (mut vtape, mut vgrads) = (value.tape()?, value.grads()?);
    let mut x1 = Tensor::<S1<4>>::zeros(&dev, 1)?;
    let mut etape = policy.tape()?;
    let mut env = CartPole::new();

    let mut returns: Vec<f64> = Vec::new();
    let mut best: Option<(f64, Vec<Vec<f32>>)> = None;
    let mut solved = false;
    let mut checks = 0usize;
    let mut update = 0usize;
    while returns.len() < max_episodes && !solved {
        // Sample a batch of episodes with the current stochastic policy.
        let n_eps = args.batch_episodes.min(max_episodes - returns.len());
        let mut batch: Vec<Episode> = Vec::with_capacity(n_eps);
        for _ in 0..n_eps {
            let mut ep = Episode {
                obs: Vec::new(),
                actions: Vec::new(),
                rewards: Vec::new(),
                truncated: None,
            };
            let mut obs = env.reset(train_seed(args.seed, returns.len()));
            loop {
                let z = logits(&policy, &mut x1, &mut etape, &obs)?;
                // π(right) = σ(z1 − z0).
                let p1 = 1.0 / (1.0 + f64::from(z[0] - z[1]).exp());
                let a = usize::from(rng.random::<f64>() < p1);
                let step = env.step(a)?;
                ep.obs.push(obs);
                ep.actions.push(a);
                ep.rewards.push(step.reward);
                obs = step.observation;
                if step.done() {
                    if step.truncated && !step.terminated {
                        ep.truncated = Some(obs);
                    }
                    break;
                }
            }
            returns.push(ep.rewards.iter().sum());
            batch.push(ep);
        }
        let n: usize = batch.iter().map(|e| e.obs.len()).sum();
        let host_x: Vec<f32> = batch
            .iter()
            .flat_map(|e| e.obs.iter().flatten().copied())
            .collect();
        let actions: Vec<usize> = batch.iter().flat_map(|e| e.actions.clone()).collect();
        let mut x = Tensor::<S1<4>>::zeros(&dev, n)?;
        x.copy_from_slice(&host_x)?;

        // Values (actor–critic) on the batch, for advantages and bootstraps.
        let scale = 1.0 - gamma;
        let mut v_host = vec![0.0f32; n];
        let mut boot = vec![0.0f64; batch.len()];
        if args.method == Method::ActorCritic {
            let v = value.forward_with(&x, &mut vtape)?;
            v.copy_to_slice(&mut v_host)?;
            for (b, e) in batch.iter().enumerate() {
                if let Some(last) = &e.truncated {
                    let mut xl = Tensor::<S1<4>>::zeros(&dev, 1)?;
                    xl.copy_from_slice(last)?;
                    let mut out = [0.0f32];
                    value
                        .forward_with(&xl, &mut vtape)?
                        .copy_to_slice(&mut out)?;
                    boot[b] = f64::from(out[0]) / scale;
                }
            }
        }
        // Discounted returns, per step.
        let mut g_all: Vec<f64> = Vec::with_capacity(n);
        for (b, e) in batch.iter().enumerate() {
            let mut g = vec![0.0; e.rewards.len()];
            let mut acc = boot[b];
            for t in (0..e.rewards.len()).rev() {
                acc = e.rewards[t] + gamma * acc;
                g[t] = acc;
            }
            g_all.extend(g);
        }
        let mut adv: Vec<f64> = match args.method {
            Method::Reinforce => {
                let (m, _) = mean_std(&g_all);
                g_all.iter().map(|g| g - m).collect()
            }
            Method::ActorCritic => g_all
                .iter()
                .zip(&v_host)
                .map(|(g, v)| g - f64::from(*v) / scale)
                .collect(),
        };
        let (_, sd) = mean_std(&adv);
        let (m, _) = mean_std(&adv);
        for a in &mut adv {
            *a = (*a - m) / (sd + 1e-8);
        }

        // Policy step: the gradient of −mean(A·log π(a|s)) w.r.t. the logits.
        let weights: Vec<f32> = adv.iter().map(|&a| a as f32).collect();
        let z = policy.forward_train(&x, &mut ptape)?;
        let mut z_host = vec![0.0f32; n * 2];
        z.copy_to_slice(&mut z_host)?;
        let mut dz_host = vec![0.0f32; n * 2];
        let ploss = weighted_nll_loss(&z_host, &actions, &weights, &mut dz_host)?;
        let mut dz = Tensor::<S1<2>>::zeros(&dev, n)?;
        dz.copy_from_slice(&dz_host)?;
        policy.backward(&mut ptape, &dz, &mut pgrads)?;
        popt.step(&mut policy, &pgrads)?;

        // Value step: MSE of V(s)·(1 − γ) against G·(1 − γ).
        let mut vloss = 0.0;
        if args.method == Method::ActorCritic {
            let v = value.forward_train(&x, &mut vtape)?;
            v.copy_to_slice(&mut v_host)?;
            let dv_host: Vec<f32> = v_host
                .iter()
                .zip(&g_all)
                .map(|(&v, &g)| {
                    let d = f64::from(v) - g * scale;
                    vloss += d * d / n as f64;
                    (2.0 * d / n as f64) as f32
                })
                .collect();
            let mut dv = Tensor::<S1<1>>::zeros(&dev, n)?;
            dv.copy_from_slice(&dv_host)?;
            value.backward(&mut vtape, &dv, &mut vgrads)?;
            vopt.step(&mut value, &vgrads)?;
        }
        update += 1;

        let batch_mean =
            returns[returns.len() - batch.len()..].iter().sum::<f64>() / batch.len() as f64;
        let last20 = &returns[returns.len().saturating_sub(20)..];
        let mean20 = last20.iter().sum::<f64>() / last20.len() as f64;
        // A greedy check once the sampled policy is near the limit.
        let mut check = None;
        if !args.smoke && batch_mean >= 450.0 {
            let c = greedy_mean(
                &policy,
                &mut x1,
                &mut etape,
                (0..20).map(|i| check_seed(args.seed, checks * 20 + i)),
            )?;
            checks += 1;
            check = Some(c);
            if best.as_ref().is_none_or(|(b, _)| c > *b) {
                best = Some((c, snapshot(&policy)));
            }
            solved = c >= 495.0;
        }
        if args.smoke || update.is_multiple_of(10) || check.is_some() {
            println!(
                "update {update:>4}  episodes {:>4}  batch mean {batch_mean:>6.1}  last-20 mean {mean20:>6.1}  policy loss {ploss:>8.4}{}{}  ({:.1} s)",
                returns.len(),
                if args.method == Method::ActorCritic {
                    format!("  value loss {vloss:.5}")
                } else {
                    String::new()
                },
                check.map_or(String::new(), |c| format!("  greedy check {c:.1}")),
                t0.elapsed().as_secs_f64(),
            );
        }
    }
    if !solved {
        if let Some((c, saved)) = &best {
            println!("keeping the best checked policy (greedy check {c:.1})");
            restore(&mut policy, saved);
        }
    } else {
        println!(
            "solved: greedy check ≥ 495 after {} episodes",
            returns.len()
        );
    }
    if let Some(path) = &args.save {
        kiln::checkpoint::save(&policy, path)?;
        println!("saved the policy to {}", path.display());
    }
    if let Some(path) = &args.plot {
        let method = match args.method {
            Method::Reinforce => "REINFORCE",
            Method::ActorCritic => "actor-critic",
        };
        let title = format!(
            "CartPole-v1, {method}, seed {} (x: training episode)",
            args.seed
        );
        plot(path, &returns, &title)?;
        println!("wrote {}", path.display());
    }
    let eval_mean = greedy_mean(
        &policy,
        &mut x1,
        &mut etape,
        (0..eval_episodes).map(|i| eval_seed(args.seed, i)),
    )?;
    let secs = t0.elapsed().as_secs_f64();
    println!("training episodes {}  wall {secs:.1} s", returns.len());
    println!("eval mean return ({eval_episodes} episodes): {eval_mean:.1}");
    Ok(Outcome {
        episodes: returns.len(),
        returns,
        eval_mean,
        solved,
        secs,
    })
}

#[allow(dead_code)] // the smoke test includes this file as a module
fn main() -> std::process::ExitCode {
    let args = Args::parse();
    if args.threads > 0 {
        if let Err(e) = kiln::set_threads(args.threads) {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    }
    match run(&args) {
        Ok(_) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
