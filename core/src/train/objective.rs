//! What [`crate::train::Trainer::fit`] minimises: an [`Objective`] turns a
//! network's outputs for a batch into a loss, its gradient and (for a
//! classifier) the count of right predictions. [`Classify`] (softmax
//! cross-entropy against the batch's labels, or its soft labels under
//! CutMix), [`Reconstruct`] (the batch's own inputs as the target: an
//! autoencoder) and [`LossFn`] (any closure) cover the common cases.
//!
//! Evaluation [`Metric`]s read the outputs on the host: [`TopK`] and
//! [`MacroF1`] are provided.

use crate::data::Batch;
use crate::error::{Error, Result};
use crate::kernels::LossKernels;
use crate::loss::{bce_with_logits, cross_entropy, l1, mse, soft_cross_entropy};
use crate::metrics::{argmax, count_correct, ConfusionMatrix};
use crate::{Backend, Elem, Labels, Shape, Tensor, S1};

/// A loss over a batch, for outputs of per-sample shape `S`.
pub trait Objective<E: Elem, D: Backend<E>, S: Shape> {
    /// Whether the second value of [`Objective::loss`] counts right
    /// predictions (shown as accuracy); `false` for a regression.
    fn classifies(&self) -> bool;
    /// The mean loss of outputs `y` for `batch`, writing `∂loss/∂y` into
    /// `dy` when given, and the number of right predictions (0 when
    /// [`Objective::classifies`] is false).
    fn loss(
        &mut self,
        y: &Tensor<S, E, D>,
        batch: &Batch,
        dy: Option<&mut Tensor<S, E, D>>,
    ) -> Result<(f64, usize)>;
}

/// Softmax cross-entropy of `C` logits against the batch's class labels
/// (`batch.y`), or against its soft labels when the loader mixes images
/// (CutMix: `batch.soft`); accuracy against the labels. Buffers are made on
/// the first batch and reused.
pub struct Classify<const C: usize, E: Elem, D: Backend<E>> {
    labels: Option<Labels<C, D>>,
    soft: Option<Tensor<S1<C>, E, D>>,
    host: Vec<E>,
    soft_host: Vec<E>,
    /// Label smoothing of the soft-label loss (PyTorch's `label_smoothing`).
    pub label_smoothing: f64,
}

impl<const C: usize, E: Elem, D: Backend<E>> Classify<C, E, D> {
    /// Cross-entropy against the labels.
    pub fn new() -> Self {
        Classify {
            labels: None,
            soft: None,
            host: Vec::new(),
            soft_host: Vec::new(),
            label_smoothing: 0.0,
        }
    }
}

impl<const C: usize, E: Elem, D: Backend<E>> Default for Classify<C, E, D> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const C: usize, E: Elem, D: LossKernels<E>> Objective<E, D, S1<C>> for Classify<C, E, D> {
    fn classifies(&self) -> bool {
        true
    }
    fn loss(
        &mut self,
        y: &Tensor<S1<C>, E, D>,
        batch: &Batch,
        dy: Option<&mut Tensor<S1<C>, E, D>>,
    ) -> Result<(f64, usize)> {
        let n = batch.len();
        if y.batch() != n {
            return Err(Error::invalid(
                "Classify",
                format!("{} outputs for a batch of {n} samples", y.batch()),
            ));
        }
        let labels = match &mut self.labels {
            Some(l) => l,
            None => self.labels.insert(Labels::empty::<E>(y.device())?),
        };
        labels.set::<E>(&batch.y)?;
        let loss = if batch.soft.is_empty() {
            cross_entropy(y, labels, dy)?
        } else {
            if batch.soft.len() != n * C {
                return Err(Error::invalid(
                    "Classify",
                    format!(
                        "{} soft-label values for {n} samples of {C} classes",
                        batch.soft.len()
                    ),
                ));
            }
            let soft = match &mut self.soft {
                Some(t) => t,
                None => self.soft.insert(Tensor::zeros(y.device(), n)?),
            };
            soft.set_batch(n)?;
            self.soft_host.clear();
            self.soft_host
                .extend(batch.soft.iter().map(|&v| E::of(v as f64)));
            soft.copy_from_slice(&self.soft_host)?;
            soft_cross_entropy(y, soft, self.label_smoothing, dy)?
        };
        self.host.resize(n * C, E::zero());
        y.copy_to_slice(&mut self.host)?;
        let correct = count_correct(&self.host, C, &batch.y)?;
        Ok((loss.f64(), correct))
    }
}

/// Which distance [`Reconstruct`] measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Distance {
    /// Mean squared error.
    Mse,
    /// Mean absolute error.
    L1,
    /// Binary cross-entropy on logits (targets in `[0, 1]`), mean over elements.
    BceWithLogits,
}

/// The batch's own inputs (`batch.x`) as the target of the outputs: an
/// autoencoder. The output shape must hold as many values per sample as the
/// input (a `[1, 28, 28]` image may come back as `[784]`).
pub struct Reconstruct<S: Shape, E: Elem, D: Backend<E>> {
    distance: Distance,
    target: Option<Tensor<S, E, D>>,
    host: Vec<E>,
}

impl<S: Shape, E: Elem, D: Backend<E>> Reconstruct<S, E, D> {
    /// Mean squared error to the input.
    pub fn mse() -> Self {
        Self::with(Distance::Mse)
    }
    /// The given distance to the input.
    pub fn with(distance: Distance) -> Self {
        Reconstruct {
            distance,
            target: None,
            host: Vec::new(),
        }
    }
}

impl<S: Shape, E: Elem, D: LossKernels<E>> Objective<E, D, S> for Reconstruct<S, E, D> {
    fn classifies(&self) -> bool {
        false
    }
    fn loss(
        &mut self,
        y: &Tensor<S, E, D>,
        batch: &Batch,
        dy: Option<&mut Tensor<S, E, D>>,
    ) -> Result<(f64, usize)> {
        let n = batch.len();
        if batch.x.len() != n * S::NUMEL || y.batch() != n {
            return Err(Error::invalid(
                "Reconstruct",
                format!(
                    "outputs of {} values per sample cannot reconstruct inputs of {} ({} outputs, {n} samples)",
                    S::NUMEL,
                    batch.x.len() / n.max(1),
                    y.batch()
                ),
            ));
        }
        let target = match &mut self.target {
            Some(t) => t,
            None => self.target.insert(Tensor::zeros(y.device(), n)?),
        };
        target.set_batch(n)?;
        self.host.clear();
        self.host.extend(batch.x.iter().map(|&v| E::of(v as f64)));
        target.copy_from_slice(&self.host)?;
        let loss = match self.distance {
            Distance::Mse => mse(y, target, dy)?,
            Distance::L1 => l1(y, target, dy)?,
            Distance::BceWithLogits => bce_with_logits(y, target, dy)?,
        };
        Ok((loss.f64(), 0))
    }
}

/// Any loss as a closure `|y, batch, dy| -> Result<(loss, correct)>`
/// (correct: 0 for a regression; `classifies` says which).
pub struct LossFn<F> {
    f: F,
    classifies: bool,
}

impl<F> LossFn<F> {
    /// A regression loss (no accuracy shown).
    pub fn new(f: F) -> Self {
        LossFn {
            f,
            classifies: false,
        }
    }
    /// A loss whose second value counts right predictions.
    pub fn classifier(f: F) -> Self {
        LossFn {
            f,
            classifies: true,
        }
    }
}

impl<S: Shape, E: Elem, D: Backend<E>, F> Objective<E, D, S> for LossFn<F>
where
    F: FnMut(&Tensor<S, E, D>, &Batch, Option<&mut Tensor<S, E, D>>) -> Result<(f64, usize)>,
{
    fn classifies(&self) -> bool {
        self.classifies
    }
    fn loss(
        &mut self,
        y: &Tensor<S, E, D>,
        batch: &Batch,
        dy: Option<&mut Tensor<S, E, D>>,
    ) -> Result<(f64, usize)> {
        (self.f)(y, batch, dy)
    }
}

/// A number measured over an evaluation pass from the outputs (on the
/// host, row-major, `cols` values per sample) and the batches.
pub trait Metric {
    /// The name it is logged under (prefixed `test_` by the runner).
    fn name(&self) -> &str;
    /// Forgets the previous pass.
    fn reset(&mut self);
    /// Adds one batch.
    fn add(&mut self, outputs: &[f32], cols: usize, batch: &Batch) -> Result<()>;
    /// The value over the batches added since [`Metric::reset`].
    fn value(&self) -> f64;
}

/// Top-k accuracy: the label is among the `k` largest outputs.
pub struct TopK {
    k: usize,
    name: String,
    hits: usize,
    seen: usize,
}

impl TopK {
    /// Logged as `top{k}`.
    pub fn new(k: usize) -> Self {
        TopK {
            k,
            name: format!("top{k}"),
            hits: 0,
            seen: 0,
        }
    }
}

impl Metric for TopK {
    fn name(&self) -> &str {
        &self.name
    }
    fn reset(&mut self) {
        self.hits = 0;
        self.seen = 0;
    }
    fn add(&mut self, outputs: &[f32], cols: usize, batch: &Batch) -> Result<()> {
        if cols == 0 || outputs.len() != batch.len() * cols {
            return Err(Error::invalid(
                "TopK",
                format!(
                    "{} outputs for {} samples of {cols}",
                    outputs.len(),
                    batch.len()
                ),
            ));
        }
        for (row, &label) in outputs.chunks(cols).zip(&batch.y) {
            let l = label as usize;
            let v = *row.get(l).ok_or(Error::LabelOutOfRange {
                index: 0,
                label: l,
                classes: cols,
            })?;
            // Rank of the label's score: how many scores beat it (ties go to
            // the lower index, as argmax does).
            let above = row
                .iter()
                .enumerate()
                .filter(|&(j, &s)| s > v || (s == v && j < l))
                .count();
            self.hits += usize::from(above < self.k);
        }
        self.seen += batch.len();
        Ok(())
    }
    fn value(&self) -> f64 {
        self.hits as f64 / self.seen.max(1) as f64
    }
}

/// Macro-averaged F1 over the classes (argmax predictions).
pub struct MacroF1 {
    m: ConfusionMatrix,
}

impl MacroF1 {
    /// For `classes` classes.
    pub fn new(classes: usize) -> Self {
        MacroF1 {
            m: ConfusionMatrix::new(classes),
        }
    }
}

impl Metric for MacroF1 {
    fn name(&self) -> &str {
        "macro_f1"
    }
    fn reset(&mut self) {
        self.m = ConfusionMatrix::new(self.m.classes());
    }
    fn add(&mut self, outputs: &[f32], cols: usize, batch: &Batch) -> Result<()> {
        if cols == 0 || outputs.len() != batch.len() * cols {
            return Err(Error::invalid(
                "MacroF1",
                format!(
                    "{} outputs for {} samples of {cols}",
                    outputs.len(),
                    batch.len()
                ),
            ));
        }
        for (row, &label) in outputs.chunks(cols).zip(&batch.y) {
            self.m.add(label as usize, argmax(row))?;
        }
        Ok(())
    }
    fn value(&self) -> f64 {
        self.m.macro_f1()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Batch;
    use crate::Cpu;

    #[test]
    fn top_k_counts_ranks_and_ties_as_argmax_does() {
        let b = Batch::new(vec![0.0; 6], vec![2, 0]);
        let mut m = TopK::new(2);
        // Row 0: the label's score 0.5 is second (top-2 hit, top-1 miss);
        // row 1: label 0 ties with column 1 and wins the tie (index order).
        m.add(&[0.1, 0.9, 0.5, 0.7, 0.7, 0.1], 3, &b).unwrap();
        assert_eq!(m.value(), 1.0);
        let mut m1 = TopK::new(1);
        m1.add(&[0.1, 0.9, 0.5, 0.7, 0.7, 0.1], 3, &b).unwrap();
        assert_eq!(m1.value(), 0.5);
        assert!(m1.add(&[0.0; 5], 3, &b).is_err());
    }

    #[test]
    fn classify_matches_cross_entropy_and_counts() {
        let dev = Cpu;
        let mut y = Tensor::<S1<3>, f64>::zeros(&dev, 2).unwrap();
        y.copy_from_slice(&[2.0, 1.0, 0.0, 0.0, 0.0, 3.0]).unwrap();
        let b = Batch::new(vec![0.0; 2], vec![0, 1]);
        let mut c = Classify::<3, f64, Cpu>::new();
        let (l, correct) = c.loss(&y, &b, None).unwrap();
        // −log softmax: row 0 = log(e²+e+1) − 2, row 1 = log(2+e³) − 0.
        let want = (((2f64).exp() + 1f64.exp() + 1.0).ln() - 2.0 + (2.0 + 3f64.exp()).ln()) / 2.0;
        assert!((l - want).abs() < 1e-12, "{l} vs {want}");
        assert_eq!(correct, 1);
    }

    #[test]
    fn reconstruct_is_the_mse_to_the_input() {
        let dev = Cpu;
        let mut y = Tensor::<S1<2>, f64>::zeros(&dev, 2).unwrap();
        y.copy_from_slice(&[1.0, 0.0, 0.5, 0.5]).unwrap();
        let b = Batch::new(vec![0.0, 0.0, 0.5, 1.5], vec![0, 0]);
        let mut r = Reconstruct::<S1<2>, f64, Cpu>::mse();
        let (l, c) = r.loss(&y, &b, None).unwrap();
        assert!((l - (1.0 + 0.0 + 0.0 + 1.0) / 4.0).abs() < 1e-12, "{l}");
        assert_eq!(c, 0);
        let bad = Batch::new(vec![0.0; 6], vec![0, 0]);
        let e = r.loss(&y, &bad, None).unwrap_err().to_string();
        assert!(e.contains("cannot reconstruct inputs of 3"), "{e}");
    }
}
