//! A deep Q-network (Mnih et al., 2015) on CartPole-v1 (`kiln::rl::CartPole`,
//! Gymnasium's dynamics and its 500-step time limit).
//!
//! ```text
//! cargo run --release --example cartpole_dqn                       # seed 0, 100,000 steps, ~20 s
//! cargo run --release --example cartpole_dqn -- --seed 3 --plot dqn --save dqn.safetensors
//! cargo run --release --example cartpole_dqn -- --smoke            # a few seconds
//! ```
//!
//! * The Q-network is a 4–128–128–2 perceptron with ReLU (`network!`).
//! * Actions are ε-greedy, ε decaying linearly from 1 to 0.05 over the first
//!   `--eps-decay` environment steps; the first `--warmup` steps act at
//!   random and only fill the buffer.
//! * The replay buffer keeps the last `--buffer` transitions
//!   `(s, a, r, s', terminated)`; each training step samples a batch of
//!   `--batch-size` of them uniformly *without replacement* (no transition
//!   twice in a batch).
//! * The TD target is `y = r + γ·max_a' Q_target(s', a')`, and `y = r` when
//!   the transition `terminated`; a `truncated` one (the 500-step limit)
//!   still bootstraps, since the state after it has a value. `Q_target` is a
//!   copy of the online network refreshed every `--target-every` steps, or,
//!   with `--tau τ > 0`, Polyak-averaged after every update:
//!   `θ' ← τ·θ + (1 − τ)·θ'`.
//! * The loss is the Huber TD loss on the taken action
//!   (`kiln::rl::losses::huber_td_loss`), its gradient goes through the
//!   network's backward pass, and Adam updates it with the gradients clipped
//!   to a global norm of 10. One update per environment step after warm-up.
//! * Every `--check-every` steps (and at the end) the greedy policy plays
//!   `--check-episodes` episodes with their own seeds; the parameters with
//!   the best mean return so far are kept (ties go to the later ones). After
//!   training, those parameters play `--eval-episodes` greedy episodes with
//!   seeds used nowhere else, and their mean return is the reported result.
//!
//! Episode seeds: training episode `k` resets with `seed·10⁶ + k`, check
//! episodes with `10⁹ + seed·10⁶ + k`, evaluation episodes with
//! `2·10⁹ + seed·10⁶ + k`, so the three never share a start state's seed.
//!
//! `--plot PREFIX` draws the return of every training episode (and the
//! checks' means) into `PREFIX.png` and `PREFIX.svg`; `--save PATH` writes the
//! evaluated policy's weights (safetensors, PyTorch names `fc1.weight`, …);
//! `--returns-json PATH` writes the curves, the evaluation and the training
//! loop's wall time (what `scripts/dqn-compare` sets beside PyTorch's).

use clap::Parser;
use kiln::metrics::argmax;
use kiln::optim::{Adam, Optimizer};
use kiln::prelude::*;
use kiln::rl::losses::huber_td_loss;
use kiln::rl::{CartPole, Env};
use kiln::train::plot::{plot_panels, Panel};
use kiln::Path as PPath;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

kiln::network! {
    /// The Q-network: observation (x, ẋ, θ, θ̇) → Q(s, left), Q(s, right).
    pub struct QNet {
        input: [4],
        fc1: Linear(128),
        relu,
        fc2: Linear(128),
        relu,
        fc3: Linear(2),
    }
}

/// The number of actions.
pub const ACTIONS: usize = CartPole::ACTIONS;

/// Train a DQN on CartPole-v1.
#[derive(Parser, Debug, Clone)]
#[command(about = "Deep Q-network on CartPole-v1 with kiln")]
pub struct Args {
    /// Seed of the initial weights, the exploration, the replay sampling and the episodes.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Environment steps of training (at most 100,000).
    #[arg(long, default_value_t = 100_000)]
    pub steps: usize,
    /// Greedy episodes that evaluate the kept policy after training.
    #[arg(long, default_value_t = 100)]
    pub eval_episodes: usize,
    /// Adam's learning rate.
    #[arg(long, default_value_t = 5e-4)]
    pub lr: f64,
    /// Discount factor.
    #[arg(long, default_value_t = 0.99)]
    pub gamma: f64,
    /// Transitions per update.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Environment steps between copies of the online network into the target network.
    #[arg(long, default_value_t = 500)]
    pub target_every: usize,
    /// Polyak averaging of the target network after every update (0: copy every --target-every steps).
    #[arg(long, default_value_t = 0.0)]
    pub tau: f64,
    /// Write the returns, checks, evaluation and training time as JSON to PATH.
    #[arg(long, value_name = "PATH")]
    pub returns_json: Option<PathBuf>,
    /// Capacity of the replay buffer (transitions).
    #[arg(long, default_value_t = 50_000)]
    pub buffer: usize,
    /// Random steps that fill the buffer before the first update.
    #[arg(long, default_value_t = 1_000)]
    pub warmup: usize,
    /// Steps over which ε falls linearly from 1 to --eps-end.
    #[arg(long, default_value_t = 10_000)]
    pub eps_decay: usize,
    /// Final exploration rate.
    #[arg(long, default_value_t = 0.05)]
    pub eps_end: f64,
    /// Global gradient-norm clip.
    #[arg(long, default_value_t = 10.0)]
    pub clip: f64,
    /// Steps between checks of the greedy policy (which keep the best parameters).
    #[arg(long, default_value_t = 2_500)]
    pub check_every: usize,
    /// Greedy episodes per check.
    #[arg(long, default_value_t = 10)]
    pub check_episodes: usize,
    /// CPU threads.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Draw the return per episode into PREFIX.png and PREFIX.svg.
    #[arg(long, value_name = "PREFIX")]
    pub plot: Option<PathBuf>,
    /// Write the evaluated policy's weights to PATH (safetensors).
    #[arg(long, value_name = "PATH")]
    pub save: Option<PathBuf>,
    /// A short run (3,000 steps, small checks and evaluation) for tests.
    #[arg(long)]
    pub smoke: bool,
}

impl Args {
    /// `--smoke` applied: a run of a few seconds that still learns.
    pub fn effective(&self) -> Args {
        let mut a = self.clone();
        if a.smoke {
            a.steps = 3_000;
            a.warmup = 500;
            a.eps_decay = 1_500;
            a.target_every = 250;
            a.lr = 1e-3;
            a.check_every = 1_000;
            a.check_episodes = 3;
            a.eval_episodes = 5;
        }
        a
    }
}

/// A fixed-capacity ring of transitions, sampled uniformly without
/// replacement.
pub struct Replay {
    cap: usize,
    next: usize,
    obs: Vec<[f32; 4]>,
    action: Vec<usize>,
    reward: Vec<f32>,
    next_obs: Vec<[f32; 4]>,
    terminated: Vec<bool>,
}

impl Replay {
    /// An empty buffer of `cap` transitions.
    pub fn new(cap: usize) -> Replay {
        Replay {
            cap,
            next: 0,
            obs: Vec::with_capacity(cap),
            action: Vec::with_capacity(cap),
            reward: Vec::with_capacity(cap),
            next_obs: Vec::with_capacity(cap),
            terminated: Vec::with_capacity(cap),
        }
    }

    /// Stored transitions.
    pub fn len(&self) -> usize {
        self.obs.len()
    }

    /// No transitions yet.
    pub fn is_empty(&self) -> bool {
        self.obs.is_empty()
    }

    /// Adds a transition, overwriting the oldest one when full.
    pub fn push(&mut self, s: [f32; 4], a: usize, r: f32, s2: [f32; 4], terminated: bool) {
        if self.obs.len() < self.cap {
            self.obs.push(s);
            self.action.push(a);
            self.reward.push(r);
            self.next_obs.push(s2);
            self.terminated.push(terminated);
        } else {
            let i = self.next;
            self.obs[i] = s;
            self.action[i] = a;
            self.reward[i] = r;
            self.next_obs[i] = s2;
            self.terminated[i] = terminated;
        }
        self.next = (self.next + 1) % self.cap;
    }

    /// `n` distinct indices drawn uniformly from the stored transitions
    /// (`n ≤ len`), into `idx`.
    pub fn sample(&self, rng: &mut Rng, n: usize, idx: &mut Vec<usize>) {
        idx.clear();
        idx.extend(rand::seq::index::sample(rng, self.len(), n.min(self.len())).iter());
    }
}

/// Buffers of one update, allocated once.
pub struct Batch {
    x: Tensor<S1<4>>,
    x2: Tensor<S1<4>>,
    dq: Tensor<S1<2>>,
    host_x: Vec<f32>,
    host_x2: Vec<f32>,
    q: Vec<f32>,
    q2: Vec<f32>,
    dq_host: Vec<f32>,
    /// The taken actions of the loaded transitions.
    pub actions: Vec<usize>,
    /// Their TD targets `r + γ·max_a' Q_target(s', a')` (`r` when terminated).
    pub targets: Vec<f32>,
}

impl Batch {
    /// Buffers for batches of up to `n` transitions.
    pub fn new(n: usize) -> kiln::Result<Batch> {
        Ok(Batch {
            x: Tensor::zeros(&Cpu, n)?,
            x2: Tensor::zeros(&Cpu, n)?,
            dq: Tensor::zeros(&Cpu, n)?,
            host_x: vec![0.0; n * 4],
            host_x2: vec![0.0; n * 4],
            q: vec![0.0; n * ACTIONS],
            q2: vec![0.0; n * ACTIONS],
            dq_host: vec![0.0; n * ACTIONS],
            actions: vec![0; n],
            targets: vec![0.0; n],
        })
    }

    /// Loads the transitions `idx` and computes their TD targets with `target`.
    pub fn load(
        &mut self,
        replay: &Replay,
        idx: &[usize],
        target: &QNet<f32, Cpu>,
        ttape: &mut QNetTape<f32, Cpu>,
        gamma: f32,
    ) -> kiln::Result<()> {
        let n = idx.len();
        self.host_x.clear();
        self.host_x2.clear();
        self.actions.clear();
        for &i in idx {
            self.host_x.extend_from_slice(&replay.obs[i]);
            self.host_x2.extend_from_slice(&replay.next_obs[i]);
            self.actions.push(replay.action[i]);
        }
        self.x.set_batch(n)?;
        self.x.copy_from_slice(&self.host_x)?;
        self.x2.set_batch(n)?;
        self.x2.copy_from_slice(&self.host_x2)?;
        self.dq.set_batch(n)?;
        self.q.resize(n * ACTIONS, 0.0);
        self.q2.resize(n * ACTIONS, 0.0);
        self.dq_host.resize(n * ACTIONS, 0.0);
        target
            .forward_with(&self.x2, ttape)?
            .copy_to_slice(&mut self.q2)?;
        self.targets.clear();
        for (b, &i) in idx.iter().enumerate() {
            let row = &self.q2[b * ACTIONS..(b + 1) * ACTIONS];
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            // Bootstrap unless the MDP reached a terminal state; a truncated
            // transition (time limit) is stored with terminated = false.
            let boot = if replay.terminated[i] {
                0.0
            } else {
                gamma * max
            };
            self.targets.push(replay.reward[i] + boot);
        }
        Ok(())
    }
}

/// One update of `net` on the loaded batch: the Huber TD loss at the taken
/// actions, its gradient through the backward pass, one optimizer step.
/// Returns the loss before the update.
pub fn update<O: Optimizer<f32, Cpu>>(
    net: &mut QNet<f32, Cpu>,
    tape: &mut QNetTape<f32, Cpu>,
    grads: &mut QNetGrads<f32, Cpu>,
    opt: &mut O,
    b: &mut Batch,
) -> kiln::Result<f32> {
    net.forward_train(&b.x, tape)?.copy_to_slice(&mut b.q)?;
    let loss = huber_td_loss(&b.q, &b.actions, &b.targets, &mut b.dq_host)?;
    b.dq.copy_from_slice(&b.dq_host)?;
    net.backward(tape, &b.dq, grads)?;
    opt.step(net, grads)?;
    Ok(loss)
}

/// Polyak averaging: `target ← τ·online + (1 − τ)·target`, parameter by
/// parameter.
pub fn soft_update(target: &mut QNet<f32, Cpu>, online: &QNet<f32, Cpu>, tau: f32) {
    let src = snapshot(online);
    let mut i = 0;
    target.visit_mut(&PPath::ROOT, &mut |_, t, _| {
        for (d, s) in t.value[..t.numel].iter_mut().zip(src[i].iter()) {
            *d = tau * s + (1.0 - tau) * *d;
        }
        i += 1;
    });
}

/// Every parameter's values, in visiting order.
pub fn snapshot(net: &QNet<f32, Cpu>) -> Vec<Vec<f32>> {
    let mut v = Vec::new();
    net.visit(&PPath::ROOT, &mut |_, t| {
        v.push(t.value[..t.numel].to_vec())
    });
    v
}

/// Sets `net`'s parameters to `values` (from [`snapshot`]).
pub fn restore(net: &mut QNet<f32, Cpu>, values: &[Vec<f32>]) {
    let mut i = 0;
    net.visit_mut(&PPath::ROOT, &mut |_, t, _| {
        t.value[..t.numel].copy_from_slice(&values[i]);
        i += 1;
    });
}

/// The greedy action of `net` in `obs`.
fn greedy(
    net: &QNet<f32, Cpu>,
    x: &mut Tensor<S1<4>>,
    tape: &mut QNetTape<f32, Cpu>,
    obs: &[f32; 4],
    q: &mut [f32; 2],
) -> kiln::Result<usize> {
    x.copy_from_slice(obs)?;
    net.forward_with(x, tape)?.copy_to_slice(q)?;
    Ok(argmax(q))
}

/// Returns of `episodes` greedy episodes, seeded `base + k`.
pub fn evaluate(net: &QNet<f32, Cpu>, base: u64, episodes: usize) -> kiln::Result<Vec<f64>> {
    let mut x = Tensor::<S1<4>>::zeros(&Cpu, 1)?;
    let mut tape = net.tape()?;
    let mut q = [0.0f32; 2];
    let mut env = CartPole::new();
    let mut returns = Vec::with_capacity(episodes);
    for k in 0..episodes {
        let mut obs = env.reset(base + k as u64);
        let mut ret = 0.0;
        loop {
            let a = greedy(net, &mut x, &mut tape, &obs, &mut q)?;
            let s = env.step(a)?;
            ret += s.reward;
            obs = s.observation;
            if s.done() {
                break;
            }
        }
        returns.push(ret);
    }
    Ok(returns)
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// What a run produced.
pub struct RunOutput {
    /// The return of every training episode (ended ones only).
    pub episode_returns: Vec<f64>,
    /// `(step, mean return)` of every check.
    pub checks: Vec<(usize, f64)>,
    /// The step of the kept parameters' check.
    pub best_step: usize,
    /// The evaluation episodes' returns (kept parameters, greedy).
    pub eval_returns: Vec<f64>,
    /// The same evaluation episodes played by the final parameters, for
    /// comparison (not the reported result).
    pub final_eval_returns: Vec<f64>,
    /// Mean training loss over each check interval.
    pub train_losses: Vec<f64>,
    /// Environment steps taken.
    pub steps: usize,
    /// Wall time of training and evaluation, seconds.
    pub secs: f64,
    /// Seconds of the training loop alone (no final evaluation).
    pub train_secs: f64,
    /// CPU seconds of the process in the training loop (Linux), which other
    /// programs on the machine do not inflate as they do the wall time.
    pub train_cpu_secs: Option<f64>,
}

/// Trains, keeps the best checked parameters, evaluates them.
pub fn run(args: &Args) -> kiln::Result<RunOutput> {
    let args = &args.effective();
    if args.steps > 100_000 {
        return Err(kiln::Error::invalid(
            "--steps",
            format!(
                "{} is over the budget of 100,000 environment steps",
                args.steps
            ),
        ));
    }
    if args.batch_size == 0 || args.buffer < args.batch_size || args.warmup < args.batch_size {
        return Err(kiln::Error::invalid(
            "--batch-size",
            "must be ≥ 1 and at most --buffer and --warmup",
        ));
    }
    if args.target_every == 0 || args.check_every == 0 || args.check_episodes == 0 {
        return Err(kiln::Error::invalid(
            "--target-every/--check-every/--check-episodes",
            "must be ≥ 1",
        ));
    }
    if let Some(p) = &args.plot {
        kiln::train::check_output_path("--plot", p)?;
    }
    if let Some(p) = &args.save {
        kiln::train::check_output_path("--save", p)?;
    }
    let t0 = Instant::now();
    let cpu0 = kiln::train::cpu_secs();
    let seed = args.seed;
    let mut rng = kiln::rng(seed);
    let mut net = QNet::<f32, Cpu>::init(&Cpu, &mut rng)?;
    let mut target = QNet::<f32, Cpu>::init(&Cpu, &mut rng)?;
    restore(&mut target, &snapshot(&net));
    let mut opt = Adam::new(args.lr).clip_grad_norm(args.clip);
    let mut tape = net.tape()?;
    let mut etape = net.tape()?;
    let mut ttape = net.tape()?;
    let mut grads = net.grads()?;
    let mut batch = Batch::new(args.batch_size)?;
    let mut x1 = Tensor::<S1<4>>::zeros(&Cpu, 1)?;
    let mut q1 = [0.0f32; 2];
    let mut replay = Replay::new(args.buffer);
    let mut idx = Vec::with_capacity(args.batch_size);

    let mut env = CartPole::new();
    let mut episode = 0u64;
    let mut obs = env.reset(seed * 1_000_000);
    let mut ret = 0.0;
    let mut out = RunOutput {
        episode_returns: Vec::new(),
        checks: Vec::new(),
        best_step: 0,
        eval_returns: Vec::new(),
        final_eval_returns: Vec::new(),
        train_losses: Vec::new(),
        steps: 0,
        secs: 0.0,
        train_secs: 0.0,
        train_cpu_secs: None,
    };
    let mut best = (f64::NEG_INFINITY, snapshot(&net));
    let (mut loss_sum, mut loss_n) = (0.0f64, 0usize);
    let gamma = args.gamma as f32;
    for step in 1..=args.steps {
        let eps = if step <= args.warmup {
            1.0
        } else {
            let t = ((step - args.warmup) as f64 / args.eps_decay.max(1) as f64).min(1.0);
            1.0 + t * (args.eps_end - 1.0)
        };
        let a = if rng.random::<f64>() < eps {
            rng.random_range(0..ACTIONS)
        } else {
            greedy(&net, &mut x1, &mut etape, &obs, &mut q1)?
        };
        let s = env.step(a)?;
        replay.push(obs, a, s.reward as f32, s.observation, s.terminated);
        ret += s.reward;
        obs = s.observation;
        if s.done() {
            out.episode_returns.push(ret);
            ret = 0.0;
            episode += 1;
            obs = env.reset(seed * 1_000_000 + episode);
        }
        if step > args.warmup {
            replay.sample(&mut rng, args.batch_size, &mut idx);
            batch.load(&replay, &idx, &target, &mut ttape, gamma)?;
            let loss = update(&mut net, &mut tape, &mut grads, &mut opt, &mut batch)
                .map_err(|e| e.at_step(step as u64, args.lr))?;
            loss_sum += loss as f64;
            loss_n += 1;
            if args.tau > 0.0 {
                soft_update(&mut target, &net, args.tau as f32);
            } else if step.is_multiple_of(args.target_every) {
                restore(&mut target, &snapshot(&net));
            }
        }
        if step.is_multiple_of(args.check_every) || step == args.steps {
            let base = 1_000_000_000 + seed * 1_000_000 + (step / args.check_every * 100) as u64;
            let m = mean(&evaluate(&net, base, args.check_episodes)?);
            out.checks.push((step, m));
            let tl = loss_sum / loss_n.max(1) as f64;
            out.train_losses.push(tl);
            (loss_sum, loss_n) = (0.0, 0);
            let recent = &out.episode_returns[out.episode_returns.len().saturating_sub(10)..];
            println!(
                "step {step:>6}  episodes {:>4}  ε {eps:.3}  TD loss {tl:.4}  train return (last 10) {:>6.1}  greedy check ({} ep.) {m:>6.1}  ({:.1} s)",
                out.episode_returns.len(),
                mean(recent),
                args.check_episodes,
                t0.elapsed().as_secs_f64()
            );
            if m >= best.0 {
                best = (m, snapshot(&net));
                out.best_step = step;
            }
        }
    }
    out.steps = args.steps;
    out.train_secs = t0.elapsed().as_secs_f64();
    out.train_cpu_secs = kiln::train::cpu_secs().map(|c| c - cpu0.unwrap_or(0.0));
    let eval_base = 2_000_000_000 + seed * 1_000_000;
    out.final_eval_returns = evaluate(&net, eval_base, args.eval_episodes)?;
    restore(&mut net, &best.1);
    out.eval_returns = evaluate(&net, eval_base, args.eval_episodes)?;
    out.secs = t0.elapsed().as_secs_f64();
    if let Some(p) = &args.save {
        kiln::checkpoint::save(&net, p)?;
        println!("policy (step {}): {}", out.best_step, p.display());
    }
    if let Some(path) = &args.returns_json {
        write_json(path, args, &out)?;
    }
    if let Some(prefix) = &args.plot {
        let panels = [Panel {
            title: format!("DQN on CartPole-v1, seed {seed}"),
            y_label: "return".into(),
            series: vec![
                (
                    "training episode (epsilon-greedy; x: episode)".into(),
                    out.episode_returns
                        .iter()
                        .enumerate()
                        .map(|(i, &r)| ((i + 1) as f64, r))
                        .collect(),
                ),
                (
                    "greedy check (mean), at the episode count".into(),
                    checks_by_episode(&out),
                ),
            ],
        }];
        let (png, _) = plot_panels(&panels, prefix, 900, 420)?;
        println!("returns: {}", png.display());
    }
    Ok(out)
}

/// The run as JSON (the format `scripts/python/dqn_torch.py` writes).
fn write_json(path: &std::path::Path, args: &Args, out: &RunOutput) -> kiln::Result<()> {
    let list = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:?}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let checks = out
        .checks
        .iter()
        .map(|(s, m)| format!("[{s},{m:?}]"))
        .collect::<Vec<_>>()
        .join(",");
    let text = format!(
        "{{\"framework\":\"kiln\",\"seed\":{},\"steps\":{},\"tau\":{:?},\"episode_returns\":[{}],\"checks\":[{checks}],\"train_losses\":[{}],\"best_step\":{},\"eval_returns\":[{}],\"final_eval_returns\":[{}],\"train_secs\":{:?},\"secs_per_env_step\":{:?},\"train_cpu_secs\":{}}}\n",
        args.seed,
        out.steps,
        args.tau,
        list(&out.episode_returns),
        list(&out.train_losses),
        out.best_step,
        list(&out.eval_returns),
        list(&out.final_eval_returns),
        out.train_secs,
        out.train_secs / out.steps.max(1) as f64,
        out.train_cpu_secs
            .map_or("null".to_string(), |c| format!("{c:?}"))
    );
    std::fs::write(path, text).map_err(|e| kiln::Error::Io {
        path: path.to_path_buf(),
        source: e,
    })
}

/// The checks placed on the episode axis (the episodes finished by then).
fn checks_by_episode(out: &RunOutput) -> Vec<(f64, f64)> {
    // Episode lengths give the step at which each episode ended.
    let mut ends = Vec::with_capacity(out.episode_returns.len());
    let mut t = 0.0;
    for r in &out.episode_returns {
        t += r; // reward 1 per step
        ends.push(t as usize);
    }
    out.checks
        .iter()
        .map(|&(step, m)| (ends.partition_point(|&e| e <= step) as f64, m))
        .collect()
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = kiln::set_threads(args.threads) {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    match run(&args) {
        Ok(out) => {
            let (lo, hi) = out
                .eval_returns
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &r| {
                    (a.min(r), b.max(r))
                });
            println!(
                "eval: mean return {:.2} over {} greedy episodes (min {lo}, max {hi}); parameters of step {}; {} environment steps, {} training episodes, {:.1} s",
                mean(&out.eval_returns),
                out.eval_returns.len(),
                out.best_step,
                out.steps,
                out.episode_returns.len(),
                out.secs
            );
            println!(
                "(the final parameters, step {}, on the same episodes: mean return {:.2})",
                out.steps,
                mean(&out.final_eval_returns)
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
