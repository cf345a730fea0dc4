//! The small types of the runner: its budget, early-stopping rule, what
//! hooks and custom steps see and return, where batches come from, and the
//! report a run ends with.

use super::super::History;
use crate::data::{Batch, DataLoader};
use crate::error::Result;

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
