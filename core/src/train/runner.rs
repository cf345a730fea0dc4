//! The training runner: [`Trainer`] runs the loop that the examples used to
//! write out (batches, steps, the progress bar, evaluation, the JSON-lines
//! log, plots, checkpoints, resume, early stopping), around either
//!
//! * [`Trainer::fit`]: one network (anything implementing [`Layer`], which
//!   every one-input, one-output `network!` is), one optimizer, an
//!   [`Objective`], optionally a schedule and gradient accumulation; or
//! * [`Trainer::run`]: a custom step, a closure that owns whatever it
//!   trains (two networks and two optimizers for a GAN, a teacher and a
//!   student), with the same logging, checkpoints and bitwise resume.
//!
//! `fit` is built on `run`, and `run` is the explicit loop of
//! `examples/mnist_mlp.rs` before this module existed: nothing here that a
//! user could not write, and the explicit loop stays available.
//!
//! ```no_run
//! use kiln::prelude::*;
//! use kiln::data::DataLoader;
//! use kiln::train::{Classify, Trainer};
//! kiln::network! { pub struct Mlp { input: [784], fc1: Linear(128), relu, fc2: Linear(10) } }
//! let data = Mnist::load("data/mnist")?;
//! let mut net = Mlp::init(&Cpu, &mut rng(0))?;
//! let test = DataLoader::new(data.test, 1000);
//! let report = Trainer::new().epochs(3).validate(&test)
//!     .fit(&mut net, &mut Adam::new(1e-3), &DataLoader::new(data.train, 128).shuffle(0), Classify::new())?;
//! println!("test accuracy {:.4}", report.last("test_acc").unwrap_or(0.0));
//! # Ok::<(), kiln::Error>(())
//! ```
//!
//! **Steps and accumulation.** A step is one optimizer update. With
//! [`Trainer::accumulate`]`(k)`, `fit` adds the gradients of `k` successive
//! batches (the first overwrites, the others add: [`Acc::Add`]) with each
//! batch's loss gradient scaled by `1/k`, then steps: for batches of equal
//! size the gradient of one batch `k` times as large (`tests/grad_accum.rs`
//! checks it to 1e-10). An epoch whose batch count is not a multiple of `k`
//! ends with a shorter group, scaled by `1/(its length)`. Batch-norm
//! statistics are per batch (per micro-batch), as in PyTorch.
//!
//! **Resume.** With `save`, the run is written after every evaluation,
//! every `save_every` steps and at `stop_after`, always between steps;
//! `resume` continues it bit for bit (same machine kind, same thread count):
//! `tests/resume_runner.rs`.
//!
//! **No allocation per step** after the first: the buffers of `fit` are
//! made on the first batch and reused (`tests/zero_alloc.rs`).

use super::objective::{Metric, Objective};
use super::state::{Checkpointed, RunState};
use super::{check_output_path, EpochBar, History, Meter, Record, RunLog};
use crate::checkpoint::Checkpoint;
use crate::data::{Batch, DataLoader};
use crate::error::{Error, Result};
use crate::kernels::OptimKernels;
use crate::module::{Layer, Module, TrainCtx};
use crate::optim::Optimizer;
use crate::schedule::{apply_to, Schedule};
use crate::{Acc, Elem, Tensor};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// How long a run lasts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Budget {
    /// Passes over the training data.
    Epochs(u64),
    /// Optimizer steps (evaluation every [`Trainer::eval_every`] steps).
    Steps(u64),
}

/// Which way a watched metric improves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Goal {
    /// Lower is better (a loss).
    Min,
    /// Higher is better (an accuracy).
    Max,
}

/// Early stopping: stop when `metric` has not improved by more than
/// `min_delta` for `evals` evaluations in a row.
#[derive(Clone, Debug, PartialEq)]
pub struct Patience {
    /// A key of the evaluation records (`test_loss`, `test_acc`, …).
    pub metric: String,
    /// Evaluations without improvement before stopping.
    pub evals: u64,
    /// Which way is better.
    pub goal: Goal,
    /// The smallest change that counts as an improvement.
    pub min_delta: f64,
}

/// What a hook tells the runner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// Go on.
    Continue,
    /// Stop after this step or evaluation (saving first, with `save`).
    Stop,
}

/// Why a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stopped {
    /// The epochs or steps were done.
    Budget,
    /// Early stopping ([`Patience`]).
    Patience,
    /// A hook returned [`Control::Stop`].
    Hook,
    /// [`Trainer::stop_after`] was reached (the run can be resumed).
    StopAfter,
}

/// What a run returns.
#[derive(Clone, Debug)]
pub struct Report {
    /// One record per evaluation (all of them, the resumed ones too).
    pub history: History,
    /// Optimizer steps taken in total.
    pub steps: u64,
    /// Why it ended.
    pub stopped: Stopped,
}

impl Report {
    /// `key` in the last record (`test_acc`, `train_loss`, …).
    pub fn last(&self, key: &str) -> Option<f64> {
        self.history.records.last().and_then(|r| r.get(key))
    }
}

/// One step, as hooks see it.
#[derive(Clone, Copy, Debug)]
pub struct StepInfo {
    /// Steps taken, this one included.
    pub step: u64,
    /// The epoch (from 0).
    pub epoch: u64,
    /// The mean loss of the step's last batch.
    pub loss: f64,
    /// The learning rate this step used (`NaN` in a custom step that does
    /// not say, see [`StepOut::lr`]).
    pub lr: f64,
}

/// Where a custom step is: what [`Trainer::run`] passes it with each batch.
#[derive(Clone, Copy, Debug)]
pub struct StepCtx {
    /// Steps taken before this batch.
    pub step: u64,
    /// The epoch (from 0).
    pub epoch: u64,
    /// Batches per epoch of the feed.
    pub batches_per_epoch: usize,
}

/// What a custom step returns for one batch.
#[derive(Clone, Copy, Debug)]
pub struct StepOut {
    /// The batch's mean loss (what the progress bar and `train_loss` show).
    pub loss: f64,
    /// Right predictions, for a classifier (shown as `train_acc`).
    pub correct: Option<usize>,
    /// Whether an optimizer step happened: `false` while accumulating. The
    /// runner counts steps, saves and evaluates only between steps.
    pub stepped: bool,
    /// The learning rate used, for the log (`NaN`: not shown).
    pub lr: f64,
}

/// A closure filling the batch of a step (see [`Feed::Sample`]).
pub type SampleFn<'a> = Box<dyn FnMut(u64, &mut Batch) -> Result<()> + 'a>;

/// Where batches come from.
pub enum Feed<'a> {
    /// A data loader: epochs of shuffled batches, resumable mid-epoch.
    Loader(&'a DataLoader),
    /// A closure filling one batch per step, `f(step, &mut batch)`, as
    /// nanoGPT samples random windows; deterministic in `step` (seed its
    /// generator from it) for a bitwise resume. `per_epoch` steps make an
    /// epoch of the bar and the meter. Needs a [`Budget::Steps`].
    Sample {
        /// Fills the batch of `step` (the buffers are reused).
        f: SampleFn<'a>,
        /// Steps per epoch.
        per_epoch: usize,
    },
}

type StepHook<'h> = Box<dyn FnMut(&StepInfo) -> Result<Control> + 'h>;
type EpochHook<'h> = Box<dyn FnMut(&mut Record) -> Result<Control> + 'h>;

/// The training runner (see the module docs). Settings are builder methods;
/// [`crate::train::TrainArgs`] sets them from the common command-line flags.
pub struct Trainer<'h> {
    budget: Budget,
    eval_every: u64,
    accumulate: usize,
    patience: Option<Patience>,
    save: Option<PathBuf>,
    save_every: u64,
    resume: Option<PathBuf>,
    log: Option<PathBuf>,
    plot: Option<PathBuf>,
    stop_after: Option<u64>,
    fingerprint: Vec<(String, String)>,
    seed: u64,
    quiet: bool,
    validate: Option<&'h DataLoader>,
    metrics: Vec<Box<dyn Metric + 'h>>,
    schedule: Option<Box<dyn Schedule + 'h>>,
    on_step: Vec<StepHook<'h>>,
    on_eval: Vec<EpochHook<'h>>,
}

impl Default for Trainer<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'h> Trainer<'h> {
    /// One epoch, evaluation at its end, no files, seed 0.
    pub fn new() -> Self {
        Trainer {
            budget: Budget::Epochs(1),
            eval_every: 0,
            accumulate: 1,
            patience: None,
            save: None,
            save_every: 0,
            resume: None,
            log: None,
            plot: None,
            stop_after: None,
            fingerprint: Vec::new(),
            seed: 0,
            quiet: false,
            validate: None,
            metrics: Vec::new(),
            schedule: None,
            on_step: Vec::new(),
            on_eval: Vec::new(),
        }
    }
    /// Train for `n` epochs.
    pub fn epochs(mut self, n: u64) -> Self {
        self.budget = Budget::Epochs(n);
        self
    }
    /// Train for `n` optimizer steps.
    pub fn steps(mut self, n: u64) -> Self {
        self.budget = Budget::Steps(n);
        self
    }
    /// Evaluate (and log, plot, save) every `n` steps instead of at the end
    /// of each epoch (0: at the end of each epoch).
    pub fn eval_every(mut self, n: u64) -> Self {
        self.eval_every = n;
        self
    }
    /// Accumulate the gradients of `k` batches per optimizer step (`fit`).
    pub fn accumulate(mut self, k: usize) -> Self {
        self.accumulate = k;
        self
    }
    /// Stop early (see [`Patience`]).
    pub fn patience(mut self, p: Patience) -> Self {
        self.patience = Some(p);
        self
    }
    /// Write the run to `path` after every evaluation (atomically).
    pub fn save(mut self, path: impl Into<PathBuf>) -> Self {
        self.save = Some(path.into());
        self
    }
    /// Also save every `n` steps (0: only after evaluations).
    pub fn save_every(mut self, n: u64) -> Self {
        self.save_every = n;
        self
    }
    /// Continue the run saved in `path`.
    pub fn resume(mut self, path: impl Into<PathBuf>) -> Self {
        self.resume = Some(path.into());
        self
    }
    /// Write one JSON line per evaluation to `path` (appended when resuming).
    pub fn log(mut self, path: impl Into<PathBuf>) -> Self {
        self.log = Some(path.into());
        self
    }
    /// Draw the curves into `prefix.png` and `prefix.svg` after every evaluation.
    pub fn plot(mut self, prefix: impl Into<PathBuf>) -> Self {
        self.plot = Some(prefix.into());
        self
    }
    /// Stop after `n` steps in total, saving first (to try `resume`).
    pub fn stop_after(mut self, n: u64) -> Self {
        self.stop_after = Some(n);
        self
    }
    /// A setting a resumed run must share with the saved one (saved as
    /// `run.<key>`; `epochs` and `steps` may grow).
    pub fn fingerprint(mut self, key: &str, value: impl std::fmt::Display) -> Self {
        self.fingerprint.push((key.to_string(), value.to_string()));
        self
    }
    /// Seed of the dropout generator of `fit` (the loader has its own).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
    /// No progress bar and no printed lines.
    pub fn quiet(mut self, quiet: bool) -> Self {
        self.quiet = quiet;
        self
    }
    /// Evaluate `fit`'s network on `data` (records `test_loss`, `test_acc`
    /// for a classifier, and every [`Trainer::metric`] as `test_<name>`).
    pub fn validate(mut self, data: &'h DataLoader) -> Self {
        self.validate = Some(data);
        self
    }
    /// Another number measured at each evaluation of `fit`.
    pub fn metric(mut self, m: impl Metric + 'h) -> Self {
        self.metrics.push(Box::new(m));
        self
    }
    /// The learning rate of each step of `fit`, by step count.
    pub fn schedule(mut self, s: impl Schedule + 'h) -> Self {
        self.schedule = Some(Box::new(s));
        self
    }
    /// The learning rate of each step of `fit`, by step count (boxed).
    pub fn schedule_boxed(mut self, s: Box<dyn Schedule + 'h>) -> Self {
        self.schedule = Some(s);
        self
    }
    /// Called after every optimizer step.
    pub fn on_step(mut self, f: impl FnMut(&StepInfo) -> Result<Control> + 'h) -> Self {
        self.on_step.push(Box::new(f));
        self
    }
    /// Called with every evaluation's record before it is printed, logged
    /// and saved (it may add values).
    pub fn on_eval(mut self, f: impl FnMut(&mut Record) -> Result<Control> + 'h) -> Self {
        self.on_eval.push(Box::new(f));
        self
    }
    /// The budget.
    pub fn budget(&self) -> Budget {
        self.budget
    }

    /// Trains one network on `train` with `opt` and `objective` (see the
    /// module docs); evaluates on [`Trainer::validate`]'s data.
    pub fn fit<E, D, N, O, Ob>(
        self,
        net: &mut N,
        opt: &mut O,
        train: &DataLoader,
        objective: Ob,
    ) -> Result<Report>
    where
        E: Elem,
        D: OptimKernels<E>,
        N: Layer<E, D>,
        O: Optimizer<E, D>,
        Ob: Objective<E, D, N::Out>,
    {
        self.fit_with(net, opt, train, objective, |_, _| Ok(()))
    }

    /// [`Trainer::fit`], calling `after_eval(net, record)` at each
    /// evaluation (to write samples, add numbers to the record).
    pub fn fit_with<'n, E, D, N, O, Ob>(
        mut self,
        net: &'n mut N,
        opt: &'n mut O,
        train: &DataLoader,
        objective: Ob,
        mut after_eval: impl FnMut(&N, &mut Record) -> Result<()>,
    ) -> Result<Report>
    where
        E: Elem,
        D: OptimKernels<E>,
        N: Layer<E, D>,
        O: Optimizer<E, D>,
        Ob: Objective<E, D, N::Out>,
    {
        if self.accumulate == 0 {
            return Err(Error::invalid("Trainer::accumulate", "must be at least 1"));
        }
        let dev = device_of(&*net)?;
        let k = self.accumulate;
        let schedule = self.schedule.take();
        let validate = self.validate;
        let mut metrics = std::mem::take(&mut self.metrics);
        let mut b = FitBufs::<E, D, N>::new(&dev, &*net)?;
        let mut eval_b = FitBufs::<E, D, N>::new(&dev, &*net)?;
        let mut state = FitState {
            net,
            opt,
            objective,
            ctx: TrainCtx::new(self.seed),
            _e: std::marker::PhantomData,
        };
        let mut host_f32: Vec<f32> = Vec::new();
        let mut step =
            |s: &mut FitState<'n, N, O, Ob, E, D>, batch: &Batch, c: &StepCtx| -> Result<StepOut> {
                // The group of `k` batches this one belongs to, and its length
                // (shorter at the end of an epoch).
                let bpe = c.batches_per_epoch.max(1);
                let first = batch.index - batch.index % k;
                let len = k.min(bpe.saturating_sub(first)).max(1);
                let last = batch.index + 1 >= first + len;
                if batch.index == first {
                    if let Some(sch) = &schedule {
                        apply_to(&**sch, &mut *s.opt, c.step);
                    }
                }
                b.load(batch)?;
                s.net
                    .forward_train(&b.x, &mut b.y, &mut b.cache, &mut s.ctx)?;
                let (loss, correct) = s
                    .objective
                    .loss(&b.y, batch, Some(&mut b.dy))
                    .map_err(|e| e.at_step(c.step + 1, s.opt.lr()))?;
                let gacc = if batch.index == first {
                    Acc::Set
                } else {
                    Acc::Add
                };
                let dy = if len > 1 {
                    b.scaled.set_batch(b.dy.batch())?;
                    let n = b.dy.batch() * <N::Out as crate::Shape>::NUMEL;
                    b.dev.axpy(
                        E::of(1.0 / len as f64),
                        &b.dy.buf,
                        &mut b.scaled.buf,
                        n,
                        Acc::Set,
                    )?;
                    &b.scaled
                } else {
                    &b.dy
                };
                s.net
                    .backward(&b.x, &b.y, &mut b.cache, dy, None, &mut b.grads, gacc)?;
                let lr = s.opt.lr();
                if last {
                    s.opt.step(&mut *s.net, &b.grads)?;
                }
                Ok(StepOut {
                    loss,
                    correct: s.objective.classifies().then_some(correct),
                    stepped: last,
                    lr,
                })
            };
        let mut eval = |s: &mut FitState<'n, N, O, Ob, E, D>, rec: &mut Record| -> Result<()> {
            if let Some(data) = validate {
                let e = evaluate_into(
                    &*s.net,
                    data,
                    &mut s.objective,
                    &mut metrics,
                    &mut eval_b,
                    &mut host_f32,
                )?;
                rec.set("test_loss", e.loss);
                if let Some(a) = e.accuracy {
                    rec.set("test_acc", a);
                }
                for mt in metrics.iter() {
                    rec.set(&format!("test_{}", mt.name()), mt.value());
                }
            }
            after_eval(&*s.net, rec)
        };
        self.run(&mut state, Feed::Loader(train), &mut step, &mut eval)
    }

    /// The general loop: `step(state, batch, ctx)` trains on each batch of
    /// `feed`, `eval(state, record)` adds its numbers to each evaluation's
    /// record; the runner does the rest (progress, log, plots, saving and
    /// resuming `state` with the run's position, early stopping, hooks).
    /// Evaluations happen at the end of each epoch, or every
    /// [`Trainer::eval_every`] steps, and at the end of the budget.
    pub fn run<S: Checkpointed>(
        mut self,
        state: &mut S,
        mut feed: Feed<'_>,
        step: &mut dyn FnMut(&mut S, &Batch, &StepCtx) -> Result<StepOut>,
        eval: &mut dyn FnMut(&mut S, &mut Record) -> Result<()>,
    ) -> Result<Report> {
        for (flag, path) in [
            ("--save", &self.save),
            ("--log", &self.log),
            ("--plot", &self.plot),
        ] {
            if let Some(path) = path {
                check_output_path(flag, path)?;
            }
        }
        let (bpe, seed, samples) = match &feed {
            Feed::Loader(l) => (l.batches_per_epoch(), l.seed_value(), l.samples_per_epoch()),
            Feed::Sample { per_epoch, .. } => {
                if !matches!(self.budget, Budget::Steps(_)) {
                    return Err(Error::invalid(
                        "Trainer::run",
                        "batches sampled by a closure need a budget in steps (Trainer::steps)",
                    ));
                }
                ((*per_epoch).max(1), 0, 0)
            }
        };
        let sampled = matches!(feed, Feed::Sample { .. });
        let k = if sampled { 1 } else { self.accumulate.max(1) };
        let spe = (bpe as u64).div_ceil(k as u64).max(1);
        let total = match self.budget {
            Budget::Epochs(e) => e.saturating_mul(spe),
            Budget::Steps(s) => s,
        };
        self.fingerprint.push(("accumulate".into(), k.to_string()));
        let mut st = RunState::new(seed);
        if let Some(path) = &self.resume {
            st = RunState::resume(path, state, &self.fingerprint, &["epochs", "steps"])?;
            let done = st.pos.epoch * spe + (st.pos.batch as u64).div_ceil(k as u64);
            let fits = st.pos.batch <= bpe && st.pos.seed == seed && (sampled || done == st.step);
            if !fits {
                return Err(Error::invalid(
                    "resume",
                    format!(
                        "the saved position (epoch {}, batch {}, step {}, shuffle seed {}) does not fit this run of {bpe} batches per epoch ({k} per step), shuffle seed {seed}",
                        st.pos.epoch, st.pos.batch, st.step, st.pos.seed
                    ),
                )
                .in_file(path));
            }
            if !self.quiet {
                println!(
                    "resumed {} at epoch {}, batch {} (step {})",
                    path.display(),
                    st.pos.epoch + 1,
                    st.pos.batch,
                    st.step
                );
            }
        }
        let mut log = match &self.log {
            Some(p) if self.resume.is_some() => Some(RunLog::append(p)?),
            Some(p) => Some(RunLog::create(p)?),
            None => None,
        };
        let epochs_shown = match self.budget {
            Budget::Epochs(e) => e,
            Budget::Steps(s) => s.div_ceil(spe),
        };
        let t_all = Instant::now();
        let mut t0 = Instant::now();
        let mut classifies = false;
        let mut lr = f64::NAN;
        let mut why: Option<Stopped> = None;
        let mut sample_batch = Batch::new(Vec::new(), Vec::new());
        let mut evaluated_at = if self.resume.is_some() {
            st.step
        } else {
            u64::MAX
        };
        'epochs: while st.step < total {
            let epoch = st.pos.epoch;
            let bar = (!self.quiet).then(|| {
                EpochBar::new(epoch + 1, epochs_shown, if sampled { bpe } else { samples })
            });
            let mut batches = match &feed {
                Feed::Loader(l) => Some(l.resume(st.pos)?),
                Feed::Sample { .. } => None,
            };
            loop {
                let owned;
                let batch: &Batch = match (&mut batches, &mut feed) {
                    (Some(it), _) => match it.next() {
                        Some(b) => {
                            owned = b;
                            &owned
                        }
                        None => break,
                    },
                    (None, Feed::Sample { f, .. }) => {
                        if st.pos.epoch != epoch {
                            break;
                        }
                        f(st.step, &mut sample_batch)?;
                        sample_batch.epoch = epoch;
                        sample_batch.index = st.pos.batch;
                        &sample_batch
                    }
                    (None, Feed::Loader(_)) => break,
                };
                let ctx = StepCtx {
                    step: st.step,
                    epoch,
                    batches_per_epoch: bpe,
                };
                let out = step(state, batch, &ctx)?;
                classifies |= out.correct.is_some();
                st.meter
                    .add(out.loss, out.correct.unwrap_or(0), batch.len());
                st.pos = match &feed {
                    Feed::Loader(l) => l.position_after(batch),
                    Feed::Sample { .. } => {
                        let next = st.pos.batch + 1;
                        crate::data::Position {
                            epoch: if next >= bpe { epoch + 1 } else { epoch },
                            batch: if next >= bpe { 0 } else { next },
                            seed,
                        }
                    }
                };
                if let Some(bar) = &bar {
                    bar.update(&st.meter);
                }
                if !out.stepped {
                    continue;
                }
                st.step += 1;
                if !out.lr.is_nan() {
                    lr = out.lr;
                }
                let info = StepInfo {
                    step: st.step,
                    epoch,
                    loss: out.loss,
                    lr,
                };
                for h in self.on_step.iter_mut() {
                    if h(&info)? == Control::Stop {
                        why = Some(Stopped::Hook);
                    }
                }
                let budget_done = st.step >= total;
                if self.eval_every > 0
                    && (st.step.is_multiple_of(self.eval_every) || budget_done || why.is_some())
                {
                    if let Some(bar) = &bar {
                        bar.finish(&st.meter);
                    }
                    let w =
                        self.evaluate(state, eval, &mut st, epoch, classifies, lr, t0, &mut log)?;
                    t0 = Instant::now();
                    evaluated_at = st.step;
                    why = why.or(w);
                } else if self.save_every > 0 && st.step.is_multiple_of(self.save_every) {
                    self.save_run(state, &st)?;
                }
                if self.stop_after == Some(st.step) && !budget_done && why.is_none() {
                    if evaluated_at != st.step {
                        self.save_run(state, &st)?;
                    }
                    if let Some(bar) = &bar {
                        bar.finish(&st.meter);
                    }
                    if !self.quiet {
                        println!(
                            "stopped after step {} (next: epoch {}, batch {}); continue with --resume",
                            st.step,
                            st.pos.epoch + 1,
                            st.pos.batch
                        );
                    }
                    why = Some(Stopped::StopAfter);
                    break 'epochs;
                }
                if budget_done || why.is_some() {
                    break;
                }
            }
            if let Some(bar) = &bar {
                bar.finish(&st.meter);
            }
            if evaluated_at != st.step
                && (self.eval_every == 0 || st.step >= total || why.is_some())
            {
                let w = self.evaluate(state, eval, &mut st, epoch, classifies, lr, t0, &mut log)?;
                t0 = Instant::now();
                evaluated_at = st.step;
                why = why.or(w);
            }
            if why.is_some() {
                break;
            }
        }
        if !self.quiet {
            println!("total {:.1} s", t_all.elapsed().as_secs_f64());
        }
        Ok(Report {
            history: st.history.clone(),
            steps: st.step,
            stopped: why.unwrap_or(Stopped::Budget),
        })
    }

    /// Evaluates, records, prints, logs, plots, saves; applies patience and
    /// the evaluation hooks. Returns why to stop, if so.
    #[allow(clippy::too_many_arguments)]
    fn evaluate<S: Checkpointed>(
        &mut self,
        state: &mut S,
        eval: &mut dyn FnMut(&mut S, &mut Record) -> Result<()>,
        st: &mut RunState,
        epoch: u64,
        classifies: bool,
        lr: f64,
        t0: Instant,
        log: &mut Option<RunLog>,
    ) -> Result<Option<Stopped>> {
        let secs = t0.elapsed().as_secs_f64();
        let m = std::mem::take(&mut st.meter);
        let mut rec = Record::new(epoch + 1)
            .with("step", st.step as f64)
            .with("train_loss", m.loss());
        if classifies {
            rec.set("train_acc", m.accuracy());
        }
        eval(state, &mut rec)?;
        if !lr.is_nan() {
            rec.set("lr", lr);
        }
        rec.set("samples_per_sec", m.samples_per_sec());
        rec.set("secs", secs);
        let mut stop = None;
        for h in self.on_eval.iter_mut() {
            if h(&mut rec)? == Control::Stop {
                stop = Some(Stopped::Hook);
            }
        }
        if let Some(p) = &self.patience {
            let v = rec.get(&p.metric).ok_or_else(|| {
                Error::invalid(
                    "Patience",
                    format!(
                        "the evaluation records no `{}` (it records: {})",
                        p.metric,
                        rec.values
                            .iter()
                            .map(|(k, _)| k.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })?;
            let better = match (st.best, p.goal) {
                (None, _) => true,
                (Some(b), Goal::Min) => v < b - p.min_delta,
                (Some(b), Goal::Max) => v > b + p.min_delta,
            };
            if better {
                st.best = Some(v);
                st.since_best = 0;
            } else {
                st.since_best += 1;
                if st.since_best >= p.evals && stop.is_none() {
                    stop = Some(Stopped::Patience);
                }
            }
        }
        if !self.quiet {
            println!("{}", format_record(&rec, self.budget));
            if let (Some(Stopped::Patience), Some(p)) = (stop, &self.patience) {
                println!(
                    "early stop: {} has not improved for {} evaluations (best {:.4})",
                    p.metric,
                    p.evals,
                    st.best.unwrap_or(f64::NAN)
                );
            }
        }
        if let Some(log) = log {
            log.write(&rec)?;
        }
        st.history.push(rec);
        self.save_run(state, st)?;
        #[cfg(feature = "plot")]
        if let Some(prefix) = &self.plot {
            super::plot::training_curves(&st.history, prefix)?;
        }
        Ok(stop)
    }

    fn save_run<S: Checkpointed>(&self, state: &S, st: &RunState) -> Result<()> {
        match &self.save {
            Some(path) => st.save(path, state, &self.fingerprint),
            None => Ok(()),
        }
    }
}

/// `epoch  3/8  step 1407  train_loss 0.1234  …` for one record.
fn format_record(r: &Record, budget: Budget) -> String {
    let mut s = match budget {
        Budget::Epochs(e) => format!("epoch {:>2}/{e}", r.epoch),
        Budget::Steps(n) => format!("step {:>6}/{n}", r.get("step").unwrap_or(0.0) as u64),
    };
    for (k, v) in &r.values {
        match k.as_str() {
            "step" => {}
            "samples_per_sec" => s.push_str(&format!("  {v:>6.0} samples/s")),
            "secs" => s.push_str(&format!("  ({v:.1} s)")),
            "lr" => s.push_str(&format!("  lr {v:.3e}")),
            _ => s.push_str(&format!("  {} {v:.4}", k.replace('_', " "))),
        }
    }
    s
}

/// What [`evaluate`] measures.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Evaluation {
    /// The mean loss per sample.
    pub loss: f64,
    /// The fraction of right predictions, for a classifying objective.
    pub accuracy: Option<f64>,
    /// Samples seen.
    pub samples: usize,
}

/// The mean loss and accuracy of `net` on one pass over `data` in
/// evaluation mode (dropout off, batch norm with its running statistics):
/// what [`Trainer::fit`] records as `test_loss` and `test_acc`.
pub fn evaluate<E, D, N, Ob>(net: &N, data: &DataLoader, objective: &mut Ob) -> Result<Evaluation>
where
    E: Elem,
    D: OptimKernels<E>,
    N: Layer<E, D>,
    Ob: Objective<E, D, N::Out>,
{
    let mut b = FitBufs::<E, D, N>::new(&device_of(net)?, net)?;
    evaluate_into(net, data, objective, &mut [], &mut b, &mut Vec::new())
}

fn evaluate_into<E, D, N, Ob>(
    net: &N,
    data: &DataLoader,
    objective: &mut Ob,
    metrics: &mut [Box<dyn Metric + '_>],
    b: &mut FitBufs<E, D, N>,
    host_f32: &mut Vec<f32>,
) -> Result<Evaluation>
where
    E: Elem,
    D: OptimKernels<E>,
    N: Layer<E, D>,
    Ob: Objective<E, D, N::Out>,
{
    let mut m = Meter::new();
    for mt in metrics.iter_mut() {
        mt.reset();
    }
    for batch in data.epoch(0)? {
        b.load(&batch)?;
        net.forward(&b.x, &mut b.y, &mut b.cache)?;
        let (loss, correct) = objective.loss(&b.y, &batch, None)?;
        m.add(loss, correct, batch.len());
        if !metrics.is_empty() {
            let cols = <N::Out as crate::Shape>::NUMEL;
            b.host.resize(batch.len() * cols, E::zero());
            b.y.copy_to_slice(&mut b.host)?;
            host_f32.clear();
            host_f32.extend(b.host.iter().map(|v| v.f64() as f32));
            for mt in metrics.iter_mut() {
                mt.add(host_f32, cols, &batch)?;
            }
        }
    }
    Ok(Evaluation {
        loss: m.loss(),
        accuracy: objective.classifies().then(|| m.accuracy()),
        samples: m.seen(),
    })
}

/// The device of a network's first parameter.
fn device_of<E: Elem, D: crate::Backend<E>, M: Module<E, D>>(m: &M) -> Result<D> {
    let mut dev = None;
    m.visit(&crate::module::Path::ROOT, &mut |_, p| {
        if dev.is_none() {
            dev = Some(p.dev.clone());
        }
    });
    dev.ok_or_else(|| Error::invalid("Trainer::fit", "the network has no parameters to train"))
}

/// `fit`'s state: what it saves and resumes (the network, its optimizer,
/// the dropout generator), and its objective.
struct FitState<'a, N, O, Ob, E, D> {
    net: &'a mut N,
    opt: &'a mut O,
    objective: Ob,
    ctx: TrainCtx,
    _e: std::marker::PhantomData<fn() -> (E, D)>,
}

impl<E: Elem, D: OptimKernels<E>, N: Module<E, D>, O: Optimizer<E, D>, Ob> Checkpointed
    for FitState<'_, N, O, Ob, E, D>
{
    fn problems(&self, c: &Checkpoint) -> Vec<String> {
        let mut p = c.module_problems("", &*self.net);
        if let Err(q) = c.optimizer_state(&*self.net) {
            p.extend(q);
        }
        p
    }
    fn save_to(&self, c: &mut Checkpoint) -> Result<()> {
        c.add_module("", &*self.net)?;
        c.add_optimizer(&*self.net, &*self.opt)?;
        c.set_rng("rng.dropout", &self.ctx.rng);
        Ok(())
    }
    fn load_from(&mut self, c: &Checkpoint, path: &Path) -> Result<()> {
        let rng = c.rng("rng.dropout").map_err(|e| e.in_file(path))?;
        c.load_training(&mut *self.net, &mut *self.opt, path)?;
        self.ctx.rng = rng;
        Ok(())
    }
}

/// `fit`'s buffers, made once and reused.
struct FitBufs<E: Elem, D: OptimKernels<E>, N: Layer<E, D>> {
    dev: D,
    x: Tensor<N::In, E, D>,
    y: Tensor<N::Out, E, D>,
    dy: Tensor<N::Out, E, D>,
    scaled: Tensor<N::Out, E, D>,
    cache: N::Cache,
    grads: N::Grads,
    host: Vec<E>,
}

impl<E: Elem, D: OptimKernels<E>, N: Layer<E, D>> FitBufs<E, D, N> {
    fn new(dev: &D, net: &N) -> Result<Self> {
        Ok(FitBufs {
            dev: dev.clone(),
            x: Tensor::empty(dev)?,
            y: Tensor::empty(dev)?,
            dy: Tensor::empty(dev)?,
            scaled: Tensor::empty(dev)?,
            cache: net.cache()?,
            grads: net.grads()?,
            host: Vec::new(),
        })
    }
    /// The batch's inputs into `x` (converted to `E`).
    fn load(&mut self, batch: &Batch) -> Result<()> {
        let numel = <N::In as crate::Shape>::NUMEL;
        let n = batch.len();
        if batch.x.len() != n * numel {
            return Err(Error::invalid(
                "Trainer::fit",
                format!(
                    "the batch holds {} values per sample, the network's input {:?} takes {numel}",
                    batch.x.len() / n.max(1),
                    <N::In as crate::Shape>::DIMS
                ),
            ));
        }
        self.x.set_batch(n)?;
        self.host.clear();
        self.host.extend(batch.x.iter().map(|&v| E::of(v as f64)));
        self.x.copy_from_slice(&self.host)
    }
}
