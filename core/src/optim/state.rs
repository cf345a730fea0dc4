//! Exporting and importing an optimizer's state, for checkpoints that let a
//! run resume exactly ([`crate::checkpoint::Checkpoint::add_optimizer`]).
//!
//! The state leaves the device as an [`OptimState`]: the optimizer's kind
//! (PyTorch's class name: `SGD`, `Adam`, `AdamW`, `Adagrad`, `RMSprop`), a few
//! scalars (the learning rate, Adam's global step count) and, per parameter
//! that has been updated at least once, its step count and its buffers under
//! PyTorch's names:
//!
//! | optimizer | buffers |
//! |---|---|
//! | [`super::Sgd`] | `momentum_buffer` (only with momentum) |
//! | [`super::Adam`] (and AdamW) | `exp_avg`, `exp_avg_sq` |
//! | [`super::Adagrad`] | `sum` |
//! | [`super::RmsProp`] | `square_avg`, `grad_avg` (centred), `momentum_buffer` (with momentum) |
//!
//! Parameters are keyed by their visiting index, as the optimizer keys its
//! state; the checkpoint translates indices to dotted paths
//! (`optim.state.fc1.weight.exp_avg`). Importing checks everything first and
//! replaces the state only when all of it fits, so a failed import changes
//! nothing.

use super::{Slot, Slots};
use crate::device::Backend;
use crate::elem::Elem;
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// One parameter's optimizer state, on the host.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamState<E> {
    /// The parameter's dotted path (for messages; may be empty).
    pub name: String,
    /// Number of values of the parameter.
    pub numel: usize,
    /// The parameter's own step count (`state[p]["step"]` in PyTorch).
    pub step: u64,
    /// Named buffers (`exp_avg`, …), `numel` values each.
    pub buffers: Vec<(String, Vec<E>)>,
}

/// An optimizer's whole state, on the host (see the [module docs](self)).
#[derive(Clone, Debug, PartialEq)]
pub struct OptimState<E> {
    /// PyTorch's class name of the optimizer that wrote it (`Adam`).
    pub kind: String,
    /// Scalars: `lr`, and `steps` for Adam's global step count.
    pub scalars: BTreeMap<String, f64>,
    /// Per-parameter state by visiting index; parameters never updated (frozen) are absent.
    pub params: BTreeMap<usize, ParamState<E>>,
}

impl<E> OptimState<E> {
    /// An empty state of optimizer `kind`.
    pub fn new(kind: impl Into<String>) -> Self {
        OptimState {
            kind: kind.into(),
            scalars: BTreeMap::new(),
            params: BTreeMap::new(),
        }
    }
    /// A scalar, if present.
    pub fn scalar(&self, key: &str) -> Option<f64> {
        self.scalars.get(key).copied()
    }
}

/// What an optimizer keeps per parameter: the names of its buffers, in slot
/// order, and whether each must be present once the parameter has been updated.
pub(crate) struct Layout<'a> {
    pub(crate) kind: &'a str,
    pub(crate) buffers: &'a [(&'a str, bool)],
}

/// The error of a failed import: every problem, named.
pub(crate) fn problems(kind: &str, problems: Vec<String>) -> Error {
    Error::Checkpoint {
        path: PathBuf::from(format!("{kind} optimizer state")),
        problems,
    }
}

impl<E: Elem, D: Backend<E>> Slots<E, D> {
    /// The per-parameter state on the host; empty buffers (features switched
    /// off) are left out.
    pub(crate) fn export(
        &self,
        dev: &D,
        layout: &Layout<'_>,
    ) -> Result<BTreeMap<usize, ParamState<E>>> {
        let mut out = BTreeMap::new();
        for (i, slot) in self.slots.iter().enumerate() {
            let Some(s) = slot else { continue };
            let mut buffers = Vec::new();
            for (k, buf) in s.bufs.iter().enumerate() {
                let n = dev.len(buf);
                if n == 0 {
                    continue;
                }
                let name = layout.buffers.get(k).map(|b| b.0).ok_or_else(|| {
                    Error::invalid(
                        "optimizer state",
                        format!(
                            "kiln internal error: {} has no name for buffer {k}",
                            layout.kind
                        ),
                    )
                })?;
                let mut host = vec![E::zero(); s.numel];
                dev.download(buf, &mut host)?;
                buffers.push((name.to_string(), host));
            }
            out.insert(
                i,
                ParamState {
                    name: String::new(),
                    numel: s.numel,
                    step: s.steps,
                    buffers,
                },
            );
        }
        Ok(out)
    }

    /// New slots from `state`, after checking its kind and every buffer's
    /// name and length; all problems are returned together.
    pub(crate) fn import(dev: &D, state: &OptimState<E>, layout: &Layout<'_>) -> Result<Self> {
        let mut bad = Vec::new();
        if state.kind != layout.kind {
            bad.push(format!(
                "the state was written by {}, this optimizer is {}",
                state.kind, layout.kind
            ));
            return Err(problems(layout.kind, bad));
        }
        for (i, p) in &state.params {
            let who = if p.name.is_empty() {
                format!("parameter {i}")
            } else {
                format!("`{}`", p.name)
            };
            for (name, values) in &p.buffers {
                if !layout.buffers.iter().any(|b| b.0 == name) {
                    bad.push(format!("{who}: {} keeps no buffer `{name}`", layout.kind));
                } else if values.len() != p.numel {
                    bad.push(format!(
                        "{who}: buffer `{name}` has {} values, the parameter {}",
                        values.len(),
                        p.numel
                    ));
                }
            }
            for (name, required) in layout.buffers {
                if *required && p.step > 0 && !p.buffers.iter().any(|b| b.0 == *name) {
                    bad.push(format!("{who}: buffer `{name}` is missing"));
                }
            }
        }
        if !bad.is_empty() {
            return Err(problems(layout.kind, bad));
        }
        let mut slots = Slots::new();
        for (&i, p) in &state.params {
            let mut bufs = Vec::with_capacity(layout.buffers.len());
            for (name, _) in layout.buffers {
                match p.buffers.iter().find(|b| b.0 == *name) {
                    Some((_, v)) => {
                        let mut b = dev.zeros(v.len())?;
                        dev.upload(v, &mut b)?;
                        bufs.push(b);
                    }
                    None => bufs.push(dev.zeros(0)?),
                }
            }
            if slots.slots.len() <= i {
                slots.slots.resize_with(i + 1, || None);
            }
            slots.slots[i] = Some(Slot {
                bufs,
                numel: p.numel,
                steps: p.step,
            });
        }
        Ok(slots)
    }
}

/// Reads scalar `key` of `state` into `dst` if present.
pub(crate) fn take_scalar(state: &OptimState<impl Sized>, key: &str, dst: &mut f64) {
    if let Some(v) = state.scalar(key) {
        *dst = v;
    }
}
