//! The parts of [`super::Trainer::fit`]: one evaluation pass ([`evaluate`]),
//! the state `fit` saves and resumes, and the buffers it makes once.

use super::{Checkpointed, Meter, Metric, Objective};
use crate::checkpoint::Checkpoint;
use crate::data::{Batch, DataLoader};
use crate::error::{Error, Result};
use crate::kernels::OptimKernels;
use crate::module::{Layer, Module, TrainCtx};
use crate::optim::Optimizer;
use crate::{Elem, Tensor};
use std::path::Path;

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

pub(super) fn evaluate_into<E, D, N, Ob>(
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
pub(super) fn device_of<E: Elem, D: crate::Backend<E>, M: Module<E, D>>(m: &M) -> Result<D> {
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
pub(super) struct FitState<'a, N, O, Ob, E, D> {
    pub(super) net: &'a mut N,
    pub(super) opt: &'a mut O,
    pub(super) objective: Ob,
    pub(super) ctx: TrainCtx,
    pub(super) _e: std::marker::PhantomData<fn() -> (E, D)>,
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
pub(super) struct FitBufs<E: Elem, D: OptimKernels<E>, N: Layer<E, D>> {
    pub(super) dev: D,
    pub(super) x: Tensor<N::In, E, D>,
    pub(super) y: Tensor<N::Out, E, D>,
    pub(super) dy: Tensor<N::Out, E, D>,
    pub(super) scaled: Tensor<N::Out, E, D>,
    pub(super) cache: N::Cache,
    pub(super) grads: N::Grads,
    pub(super) host: Vec<E>,
}

impl<E: Elem, D: OptimKernels<E>, N: Layer<E, D>> FitBufs<E, D, N> {
    pub(super) fn new(dev: &D, net: &N) -> Result<Self> {
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
    pub(super) fn load(&mut self, batch: &Batch) -> Result<()> {
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
