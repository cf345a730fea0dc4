//! The common training flags, defined once: [`TrainArgs`] is a `clap::Args`
//! that a program flattens into its own flags (feature `cli`), and
//! [`OptimizerKind`], [`ScheduleKind`] and [`DeviceArg`] build what they name.
//!
//! ```no_run
//! # #[cfg(feature = "cli")] {
//! use clap::Parser;
//! #[derive(Parser)]
//! #[command(mut_arg("lr", |a| a.default_value("0.05")))] // a program's own default
//! struct Args {
//!     #[command(flatten)]
//!     train: kiln_core::train::TrainArgs,
//!     /// The program's own flags.
//!     #[arg(long, default_value_t = 16)]
//!     count: usize,
//! }
//! # }
//! ```

use super::{Budget, Goal, Patience, Trainer};
use crate::data::{DataLoader, Dataset};
use crate::error::{Error, Result};
use crate::kernels::OptimKernels;
use crate::optim::{Adagrad, Adam, Optimizer, RmsProp, Sgd};
use crate::schedule::{
    ConstantLr, CosineAnnealingLr, CosineAnnealingWarmRestarts, ExponentialLr, LinearLr, Schedule,
    Sequential, StepLr,
};
use crate::Elem;
use std::path::PathBuf;
use std::str::FromStr;

/// Which optimizer trains the network (`--optimizer`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum OptimizerKind {
    /// Plain SGD.
    Sgd,
    /// SGD with momentum 0.9.
    Momentum,
    /// SGD with Nesterov momentum 0.9.
    Nesterov,
    /// Adam (β = 0.9, 0.999).
    Adam,
    /// AdamW (decoupled weight decay, default 0.01).
    Adamw,
    /// Adagrad (try `--lr 0.01`).
    Adagrad,
    /// RMSprop (α = 0.99).
    Rmsprop,
}

impl OptimizerKind {
    /// The optimizer at learning rate `lr` with weight decay `wd` (AdamW's
    /// decoupled decay, L2 for the others; `None`: 0, AdamW 0.01).
    pub fn build<E: Elem, D: OptimKernels<E>>(
        self,
        lr: f64,
        wd: Option<f64>,
    ) -> Box<dyn Optimizer<E, D>> {
        let w = wd.unwrap_or(0.0);
        match self {
            OptimizerKind::Sgd => Box::new(Sgd::new(lr).weight_decay(w)),
            OptimizerKind::Momentum => Box::new(Sgd::new(lr).momentum(0.9).weight_decay(w)),
            OptimizerKind::Nesterov => Box::new(Sgd::new(lr).nesterov(0.9).weight_decay(w)),
            OptimizerKind::Adam => Box::new(Adam::new(lr).weight_decay(w)),
            OptimizerKind::Adamw => Box::new(Adam::adamw(lr).weight_decay(wd.unwrap_or(0.01))),
            OptimizerKind::Adagrad => Box::new(Adagrad::new(lr).weight_decay(w)),
            OptimizerKind::Rmsprop => Box::new(RmsProp::new(lr).weight_decay(w)),
        }
    }
}

/// How the learning rate changes over training, applied every step (`--schedule`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum ScheduleKind {
    /// The same learning rate throughout.
    Constant,
    /// Cosine decay from `--lr` to 0 over all steps.
    Cosine,
    /// Cosine with warm restarts, the first period one epoch, each next one twice as long.
    CosineRestarts,
    /// Multiply by `--gamma` every `--step-epochs` epochs.
    Step,
    /// Multiply by `--gamma` every epoch (smoothly, a little every step).
    Exponential,
    /// A linear warm-up from 0.1·lr over `--warmup-epochs`, then cosine decay.
    WarmupCosine,
    /// 0.1·lr for `--warmup-epochs`, then lr (a constant warm-up).
    WarmupConstant,
}

/// The numbers a [`ScheduleKind`] needs.
#[derive(Clone, Copy, Debug)]
pub struct ScheduleSpec {
    /// The base learning rate.
    pub lr: f64,
    /// Steps per epoch.
    pub steps_per_epoch: u64,
    /// Steps in the whole run.
    pub total_steps: u64,
    /// Decay factor (step, exponential).
    pub gamma: f64,
    /// Epochs between decays (step).
    pub step_epochs: u64,
    /// Warm-up epochs (warm-up schedules).
    pub warmup_epochs: u64,
}

impl ScheduleKind {
    /// The schedule, counted in steps.
    pub fn build(self, s: ScheduleSpec) -> Result<Box<dyn Schedule + Send + Sync>> {
        let (lr, spe) = (s.lr, s.steps_per_epoch.max(1));
        let total = s.total_steps.max(1);
        let warm = (spe * s.warmup_epochs).clamp(1, total);
        Ok(match self {
            ScheduleKind::Constant => Box::new(ConstantLr::new(lr, 1.0, 0)?),
            ScheduleKind::Cosine => Box::new(CosineAnnealingLr::new(lr, total, 0.0)?),
            ScheduleKind::CosineRestarts => {
                Box::new(CosineAnnealingWarmRestarts::new(lr, spe, 2, 0.0)?)
            }
            ScheduleKind::Step => Box::new(StepLr::new(lr, spe * s.step_epochs.max(1), s.gamma)?),
            ScheduleKind::Exponential => {
                Box::new(ExponentialLr::new(lr, s.gamma.powf(1.0 / spe as f64)))
            }
            ScheduleKind::WarmupCosine => Box::new(Sequential::warmup(
                LinearLr::new(lr, 0.1, 1.0, warm)?,
                warm,
                CosineAnnealingLr::new(lr, (total - warm).max(1), 0.0)?,
            )),
            ScheduleKind::WarmupConstant => Box::new(ConstantLr::new(lr, 0.1, warm)?),
        })
    }
}

/// The device that trains (`--device cpu|cuda|cuda:N`); `kiln::on_device`
/// opens it and runs a job there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeviceArg {
    /// The CPU.
    #[default]
    Cpu,
    /// A CUDA GPU by ordinal.
    Cuda(usize),
}

impl FromStr for DeviceArg {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "cpu" => Ok(DeviceArg::Cpu),
            "cuda" => Ok(DeviceArg::Cuda(0)),
            _ => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(n)) => Ok(DeviceArg::Cuda(n)),
                _ => {
                    Err("expected `cpu`, `cuda` or `cuda:N` (N: the GPU's ordinal, from 0)".into())
                }
            },
        }
    }
}

/// The flags every training program shares (flatten it into the program's
/// `clap::Parser` struct). [`TrainArgs::trainer`] turns them into a
/// [`Trainer`], [`TrainArgs::optimizer`] and [`TrainArgs::schedule`] build
/// what they name. A program changes a default with clap's
/// `#[command(mut_arg("lr", |a| a.default_value("0.05")))]`.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct TrainArgs {
    /// Passes over the training data.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 8))]
    pub epochs: u64,
    /// Train for this many optimizer steps instead of --epochs.
    #[cfg_attr(feature = "cli", arg(long, value_name = "N"))]
    pub steps: Option<u64>,
    /// Samples per mini-batch.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 128))]
    pub batch_size: usize,
    /// Add the gradients of K batches per optimizer step (an effective batch K times larger).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 1, value_name = "K"))]
    pub accumulate: usize,
    /// Learning rate (the default suits Adam; try 0.05 for momentum/Nesterov, 0.1 for SGD).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 1e-3))]
    pub lr: f64,
    /// Optimizer.
    #[cfg_attr(feature = "cli", arg(long, value_enum, default_value_t = OptimizerKind::Adam))]
    pub optimizer: OptimizerKind,
    /// Weight decay (AdamW's decoupled decay, default 0.01; L2 for the others, default 0).
    #[cfg_attr(feature = "cli", arg(long))]
    pub weight_decay: Option<f64>,
    /// Learning-rate schedule.
    #[cfg_attr(feature = "cli", arg(long, value_enum, default_value_t = ScheduleKind::Cosine))]
    pub schedule: ScheduleKind,
    /// Decay factor of the step and exponential schedules.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 0.5))]
    pub gamma: f64,
    /// Epochs between decays of the step schedule.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 3))]
    pub step_epochs: u64,
    /// Warm-up length of the warm-up schedules, in epochs.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 1))]
    pub warmup_epochs: u64,
    /// Evaluate every N steps instead of at the end of each epoch.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 0, value_name = "N"))]
    pub eval_every: u64,
    /// Stop when --patience-metric has not improved for N evaluations.
    #[cfg_attr(feature = "cli", arg(long, value_name = "N"))]
    pub patience: Option<u64>,
    /// The metric early stopping watches (`test_loss` is minimised, anything else with `acc` in its name maximised).
    #[cfg_attr(
        feature = "cli",
        arg(long, default_value = "test_loss", value_name = "KEY")
    )]
    pub patience_metric: String,
    /// Batches the background loader prepares ahead (0: load in the training thread).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 2))]
    pub prefetch: usize,
    /// CPU threads (0: rayon's default, one per core).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 0))]
    pub threads: usize,
    /// Seed of the initial weights, of the shuffling and of the dropout generator.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 0))]
    pub seed: u64,
    /// Write a checkpoint to PATH after every evaluation (atomically).
    #[cfg_attr(feature = "cli", arg(long, value_name = "PATH"))]
    pub save: Option<PathBuf>,
    /// Also save every N steps (with --save; 0: only after evaluations).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 0, value_name = "N"))]
    pub save_every: u64,
    /// Continue the run saved in PATH (same flags; --epochs/--steps may grow).
    #[cfg_attr(feature = "cli", arg(long, value_name = "PATH"))]
    pub resume: Option<PathBuf>,
    /// Append one JSON line per evaluation to PATH.
    #[cfg_attr(feature = "cli", arg(long, value_name = "PATH"))]
    pub log: Option<PathBuf>,
    /// Draw loss and accuracy curves into PREFIX.png and PREFIX.svg after every evaluation.
    #[cfg_attr(feature = "cli", arg(long, value_name = "PREFIX"))]
    pub plot: Option<PathBuf>,
    /// Stop after this many steps in total (to try --resume), saving first with --save.
    #[cfg_attr(feature = "cli", arg(long, value_name = "STEPS"))]
    pub stop_after: Option<u64>,
    /// Device: cpu, cuda (GPU 0) or cuda:N (needs a build with --features cuda).
    #[cfg_attr(
        feature = "cli",
        arg(long, default_value = "cpu", value_name = "DEVICE")
    )]
    pub device: DeviceArg,
}

impl Default for TrainArgs {
    fn default() -> Self {
        TrainArgs {
            epochs: 8,
            steps: None,
            batch_size: 128,
            accumulate: 1,
            lr: 1e-3,
            optimizer: OptimizerKind::Adam,
            weight_decay: None,
            schedule: ScheduleKind::Cosine,
            gamma: 0.5,
            step_epochs: 3,
            warmup_epochs: 1,
            eval_every: 0,
            patience: None,
            patience_metric: "test_loss".into(),
            prefetch: 2,
            threads: 0,
            seed: 0,
            save: None,
            save_every: 0,
            resume: None,
            log: None,
            plot: None,
            stop_after: None,
            device: DeviceArg::Cpu,
        }
    }
}

impl TrainArgs {
    /// Checks the numbers and sets the thread count (`--threads`).
    pub fn init(&self) -> Result<()> {
        if self.batch_size == 0 {
            return Err(Error::invalid("--batch-size", "must be at least 1"));
        }
        if self.accumulate == 0 {
            return Err(Error::invalid("--accumulate", "must be at least 1"));
        }
        if self.threads > 0 {
            crate::set_threads(self.threads)?;
        }
        Ok(())
    }

    /// A training loader over `data`: `--batch-size`, shuffled by `--seed`,
    /// `--prefetch` batches ahead.
    pub fn loader(&self, data: Dataset) -> DataLoader {
        DataLoader::new(data, self.batch_size)
            .shuffle(self.seed)
            .prefetch(self.prefetch)
    }

    /// The optimizer `--optimizer`, `--lr`, `--weight-decay` name.
    pub fn optimizer<E: Elem, D: OptimKernels<E>>(&self) -> Box<dyn Optimizer<E, D>> {
        self.optimizer.build(self.lr, self.weight_decay)
    }

    /// Optimizer steps per epoch over `train`, with `--accumulate`.
    pub fn steps_per_epoch(&self, train: &DataLoader) -> u64 {
        (train.batches_per_epoch() as u64)
            .div_ceil(self.accumulate.max(1) as u64)
            .max(1)
    }

    /// The schedule `--schedule` names, over this run's steps.
    pub fn schedule(&self, train: &DataLoader) -> Result<Box<dyn Schedule + Send + Sync>> {
        let spe = self.steps_per_epoch(train);
        self.schedule.build(ScheduleSpec {
            lr: self.lr,
            steps_per_epoch: spe,
            total_steps: self.steps.unwrap_or(spe.saturating_mul(self.epochs)),
            gamma: self.gamma,
            step_epochs: self.step_epochs,
            warmup_epochs: self.warmup_epochs,
        })
    }

    /// A [`Trainer`] with the budget, evaluation, accumulation, early
    /// stopping, files and seed these flags give, the schedule over `train`,
    /// and every training flag in its fingerprint (a resumed run must share
    /// them; `--epochs`/`--steps` may grow).
    pub fn trainer<'h>(&self, train: &DataLoader) -> Result<Trainer<'h>> {
        let mut t = Trainer::new()
            .eval_every(self.eval_every)
            .accumulate(self.accumulate)
            .save_every(self.save_every)
            .seed(self.seed)
            .schedule_boxed(self.schedule(train)?);
        t = match self.steps {
            Some(n) => t.steps(n),
            None => t.epochs(self.epochs),
        };
        if let Some(n) = self.patience {
            let goal = if self.patience_metric.contains("acc") {
                Goal::Max
            } else {
                Goal::Min
            };
            t = t.patience(Patience {
                metric: self.patience_metric.clone(),
                evals: n,
                goal,
                min_delta: 0.0,
            });
        }
        for (flag, path) in [
            (&self.save, 0),
            (&self.resume, 1),
            (&self.log, 2),
            (&self.plot, 3),
        ] {
            if let Some(p) = flag {
                t = match path {
                    0 => t.save(p),
                    1 => t.resume(p),
                    2 => t.log(p),
                    _ => t.plot(p),
                };
            }
        }
        if let Some(n) = self.stop_after {
            t = t.stop_after(n);
        }
        Ok(self.fingerprint(t))
    }

    /// One line naming the settings (for the start of a run's output).
    pub fn describe(&self) -> String {
        format!(
            "optimizer {:?}, lr {}, schedule {:?}, batch {}{}, {}, seed {}, threads {}, prefetch {}",
            self.optimizer,
            self.lr,
            self.schedule,
            self.batch_size,
            match self.accumulate {
                1 => String::new(),
                k => format!(" × {k} accumulated"),
            },
            match self.steps {
                Some(s) => format!("{s} steps"),
                None => format!("{} epochs", self.epochs),
            },
            self.seed,
            match self.threads {
                0 => "one per core".to_string(),
                n => n.to_string(),
            },
            self.prefetch
        )
    }

    /// Adds the flags a resumed run must share to `t`'s fingerprint.
    pub fn fingerprint<'h>(&self, t: Trainer<'h>) -> Trainer<'h> {
        let budget = match t.budget() {
            Budget::Epochs(e) => ("epochs", e.to_string()),
            Budget::Steps(s) => ("steps", s.to_string()),
        };
        t.fingerprint("batch_size", self.batch_size)
            .fingerprint("lr", format!("{:?}", self.lr))
            .fingerprint("optimizer", format!("{:?}", self.optimizer))
            .fingerprint("weight_decay", format!("{:?}", self.weight_decay))
            .fingerprint("schedule", format!("{:?}", self.schedule))
            .fingerprint("gamma", format!("{:?}", self.gamma))
            .fingerprint("step_epochs", self.step_epochs)
            .fingerprint("warmup_epochs", self.warmup_epochs)
            .fingerprint("seed", self.seed)
            .fingerprint(budget.0, budget.1)
    }
}
