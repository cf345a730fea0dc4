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
//! # use kiln_core::{data::{DataLoader, Mnist}, optim::Adam, train::{Classify, Trainer}, Cpu, Layer, S1};
//! // `Mlp` is `kiln::network! { pub struct Mlp { input: [784], fc1: Linear(128), relu, fc2: Linear(10) } }`,
//! // made with `Mlp::init(&Cpu, &mut kiln::rng(0))?` (the README's runner example, compiled
//! // in full by tests/readme_runner.rs).
//! # fn demo<Mlp: Layer<f32, Cpu, In = S1<784>, Out = S1<10>>>(net: &mut Mlp) -> kiln_core::Result<()> {
//! let data = Mnist::load("data/mnist")?;
//! let test = DataLoader::new(data.test, 1000);
//! let report = Trainer::new().epochs(3).validate(&test)
//!     .fit(net, &mut Adam::new(1e-3), &DataLoader::new(data.train, 128).shuffle(0), Classify::new())?;
//! println!("test accuracy {:.4}", report.last("test_acc").unwrap_or(0.0));
//! # Ok(()) }
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
use super::{check_output_path, EpochBar, Meter, Record, RunLog};
use crate::data::{Batch, DataLoader};
use crate::error::{Error, Result};
use crate::kernels::OptimKernels;
use crate::module::{Layer, TrainCtx};
use crate::optim::Optimizer;
use crate::schedule::{apply_to, Schedule};
use crate::{Acc, Elem};
use std::path::PathBuf;
use std::time::Instant;

mod fit_parts;
mod types;
use fit_parts::{device_of, evaluate_into, FitBufs, FitState};
pub use fit_parts::{evaluate, Evaluation};
pub use types::{
    Budget, Control, Feed, Goal, Patience, Report, SampleFn, StepCtx, StepInfo, StepOut, Stopped,
};

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
            Feed::Loader(l) if l.batches_per_epoch() == 0 => {
                // No step could ever be taken: the epoch loop would spin.
                return Err(Error::invalid(
                    "Trainer::run",
                    format!(
                        "the data loader yields no batch (batch size {}): its dataset is empty, or smaller than one batch with drop_last",
                        l.batch_size()
                    ),
                ));
            }
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
