//! Saving and resuming a whole run in one call each: [`RunState`] is where a
//! run stands (steps taken, the loader's position, the epoch's running sums,
//! the history, the early-stopping count), and [`Checkpointed`] is what the
//! run trains (networks, optimizers, random generators), written into the
//! same checkpoint.

use super::{History, Meter};
use crate::checkpoint::Checkpoint;
use crate::data::Position;
use crate::error::{Error, Result};
use crate::kernels::OptimKernels;
use crate::module::Module;
use crate::optim::Optimizer;
use crate::{Elem, Rng};
use std::path::Path;

/// What a run trains, as it goes into a checkpoint and comes back: the
/// networks, their optimizers' state and the random generators of their
/// tapes. [`crate::train::Trainer::fit`] implements it for its one network;
/// a custom step ([`crate::train::Trainer::run`]) implements it for its own
/// state, two networks and two optimizers for a GAN:
///
/// ```ignore
/// impl Checkpointed for Gan {
///     fn save_to(&self, c: &mut Checkpoint) -> kiln::Result<()> {
///         c.add_training_part("g", &self.g, &*self.g_opt, &self.g_tape.ctx.rng)?;
///         c.add_training_part("d", &self.d, &*self.d_opt, &self.d_tape.ctx.rng)
///     }
///     fn problems(&self, c: &Checkpoint) -> Vec<String> {
///         let mut p = c.training_part_problems("g", &self.g);
///         p.extend(c.training_part_problems("d", &self.d));
///         p
///     }
///     fn load_from(&mut self, c: &Checkpoint, path: &Path) -> kiln::Result<()> {
///         c.load_training_part("g", &mut self.g, &mut *self.g_opt, &mut self.g_tape.ctx.rng, path)?;
///         c.load_training_part("d", &mut self.d, &mut *self.d_opt, &mut self.d_tape.ctx.rng, path)
///     }
/// }
/// ```
pub trait Checkpointed {
    /// Every way in which `c` does not fit this state (names, shapes,
    /// optimizer state), without changing anything; empty when it fits.
    fn problems(&self, c: &Checkpoint) -> Vec<String>;
    /// Adds everything this state holds to `c`.
    fn save_to(&self, c: &mut Checkpoint) -> Result<()>;
    /// Loads it back from `c` (read from `path`, for messages), after
    /// [`Checkpointed::problems`] found none.
    fn load_from(&mut self, c: &Checkpoint, path: &Path) -> Result<()>;
}

impl Checkpoint {
    /// The tensors and metadata under `prefix.`, with the prefix removed:
    /// one network's part of a checkpoint holding several.
    pub fn part(&self, prefix: &str) -> Checkpoint {
        let p = format!("{prefix}.");
        let mut c = Checkpoint {
            allow_non_finite: self.allow_non_finite,
            ..Checkpoint::default()
        };
        for (k, v) in &self.tensors {
            if let Some(rest) = k.strip_prefix(&p) {
                c.tensors.insert(rest.to_string(), v.clone());
            }
        }
        for (k, v) in &self.metadata {
            if let Some(rest) = k.strip_prefix(&p) {
                c.metadata.insert(rest.to_string(), v.clone());
            }
        }
        c
    }

    /// Adds every tensor and metadata entry of `part` under `prefix.`.
    pub fn add_part(&mut self, prefix: &str, part: Checkpoint) {
        for (k, v) in part.tensors {
            self.tensors.insert(format!("{prefix}.{k}"), v);
        }
        for (k, v) in part.metadata {
            self.metadata.insert(format!("{prefix}.{k}"), v);
        }
    }

    /// Adds network `m`, its optimizer's state and the random generator of
    /// its tape under `prefix.` (`g.fc1.weight`, `g.optim.state.fc1.weight.exp_avg`,
    /// `g.rng`): one of several networks trained in one run.
    pub fn add_training_part<E: Elem, D: OptimKernels<E>, M: Module<E, D>, O>(
        &mut self,
        prefix: &str,
        m: &M,
        opt: &O,
        rng: &Rng,
    ) -> Result<()>
    where
        O: Optimizer<E, D> + ?Sized,
    {
        let mut p = Checkpoint::new();
        p.add_module("", m)?;
        p.add_optimizer(m, opt)?;
        p.set_rng("rng", rng);
        self.add_part(prefix, p);
        Ok(())
    }

    /// Every way in which the part under `prefix.` does not fit network `m`
    /// and its optimizer (names, shapes, dtypes, optimizer state), each
    /// problem naming the prefixed tensor: what a run checks for all its
    /// networks before it loads any of them.
    pub fn training_part_problems<E: Elem, D: OptimKernels<E>, M: Module<E, D>>(
        &self,
        prefix: &str,
        m: &M,
    ) -> Vec<String> {
        let part = self.part(prefix);
        let mut problems = part.module_problems("", m);
        if let Err(p) = part.optimizer_state(m) {
            problems.extend(p);
        }
        if part.rng("rng").is_err() {
            problems.push("the random generator `rng`: missing from the checkpoint".into());
        }
        problems
            .into_iter()
            .map(|p| format!("[{prefix}] {p}"))
            .collect()
    }

    /// Loads what [`Checkpoint::add_training_part`] wrote: the network and
    /// its optimizer together (all or nothing), then the generator.
    pub fn load_training_part<E: Elem, D: OptimKernels<E>, M: Module<E, D>, O>(
        &self,
        prefix: &str,
        m: &mut M,
        opt: &mut O,
        rng: &mut Rng,
        path: &Path,
    ) -> Result<()>
    where
        O: Optimizer<E, D> + ?Sized,
    {
        let part = self.part(prefix);
        let r = part.rng("rng").map_err(|e| e.in_file(path))?;
        part.load_training(m, opt, path)?;
        *rng = r;
        Ok(())
    }
}

/// Where a run stands: everything a checkpoint holds besides what the run
/// trains. Saved and read back whole by [`RunState::save`] and
/// [`RunState::resume`], so that a resumed run continues bit for bit (same
/// machine kind, same thread count).
#[derive(Clone, Debug)]
pub struct RunState {
    /// Optimizer steps taken (the schedule's position).
    pub step: u64,
    /// The next batch to train on.
    pub pos: Position,
    /// The current epoch's (or evaluation interval's) running sums.
    pub meter: Meter,
    /// One record per evaluation.
    pub history: History,
    /// Early stopping: the best value of the watched metric so far.
    pub best: Option<f64>,
    /// Early stopping: evaluations since the best one.
    pub since_best: u64,
}

impl RunState {
    /// The start of a run whose loader shuffles with `seed`.
    pub fn new(seed: u64) -> Self {
        RunState {
            step: 0,
            pos: Position {
                epoch: 0,
                batch: 0,
                seed,
            },
            meter: Meter::new(),
            history: History::default(),
            best: None,
            since_best: 0,
        }
    }

    /// Writes the run to `path` atomically: `parts` (networks, optimizers,
    /// generators), this state, and `fingerprint` (the settings a resumed
    /// run must share, as `run.<name>` metadata).
    pub fn save(
        &self,
        path: &Path,
        parts: &dyn Checkpointed,
        fingerprint: &[(String, String)],
    ) -> Result<()> {
        let mut c = Checkpoint::new();
        parts.save_to(&mut c)?;
        c.set_meta("scheduler.last_epoch", self.step);
        self.pos.save(&mut c);
        let (loss_sum, correct, seen) = self.meter.sums();
        c.set_meta("meter.loss_sum", format!("{loss_sum:?}"));
        c.set_meta("meter.correct", correct);
        c.set_meta("meter.seen", seen);
        c.set_meta("history", self.history.to_jsonl());
        if let Some(b) = self.best {
            c.set_meta("early_stop.best", format!("{b:?}"));
        }
        c.set_meta("early_stop.since_best", self.since_best);
        for (k, v) in fingerprint {
            c.set_meta(&format!("run.{k}"), v);
        }
        c.save(path)
    }

    /// Reads a run written by [`RunState::save`]. Checks, in this order,
    /// and changes nothing on error: that the checkpoint holds `parts`'
    /// networks (a checkpoint of another network is that problem alone);
    /// that every fingerprint entry except those in `may_change` (a longer
    /// budget) is the same, listing every difference; that the state reads
    /// back. Then loads `parts`.
    pub fn resume(
        path: &Path,
        parts: &mut dyn Checkpointed,
        fingerprint: &[(String, String)],
        may_change: &[&str],
    ) -> Result<RunState> {
        let c = Checkpoint::read(path)?;
        // A checkpoint of another network is that problem alone, before any
        // flag differences (which would send the user to fix flags first).
        let problems = parts.problems(&c);
        if !problems.is_empty() {
            return Err(Error::Checkpoint {
                path: path.to_path_buf(),
                problems,
            });
        }
        let mut problems = Vec::new();
        for (k, want) in fingerprint {
            let got = c
                .metadata
                .get(&format!("run.{k}"))
                .map(String::as_str)
                .unwrap_or("(missing)");
            if got != want && !may_change.contains(&k.as_str()) {
                problems.push(format!(
                    "--{}: {got} in the checkpoint, {want} now",
                    k.replace('_', "-")
                ));
            }
        }
        if !problems.is_empty() {
            return Err(Error::Checkpoint {
                path: path.to_path_buf(),
                problems,
            });
        }
        let at = |e: Error| e.in_file(path);
        let step: u64 = c.meta("scheduler.last_epoch").map_err(at)?;
        let pos = Position::load(&c).map_err(at)?;
        let meter = Meter::resume(
            c.meta("meter.loss_sum").map_err(at)?,
            c.meta("meter.correct").map_err(at)?,
            c.meta("meter.seen").map_err(at)?,
        )
        .map_err(at)?;
        let history =
            History::from_jsonl(c.metadata.get("history").map(String::as_str).unwrap_or(""))
                .map_err(|msg| Error::Format {
                    path: path.to_path_buf(),
                    msg: format!("metadata `history`: {msg}"),
                })?;
        let best = match c.metadata.get("early_stop.best") {
            Some(_) => Some(c.meta::<f64>("early_stop.best").map_err(at)?),
            None => None,
        };
        let since_best = match c.metadata.get("early_stop.since_best") {
            Some(_) => c.meta("early_stop.since_best").map_err(at)?,
            None => 0,
        };
        parts.load_from(&c, path)?;
        Ok(RunState {
            step,
            pos,
            meter,
            history,
            best,
            since_best,
        })
    }
}
