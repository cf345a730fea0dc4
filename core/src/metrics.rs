//! Evaluation metrics: accuracy, top-k accuracy, precision, recall, F1,
//! confusion matrix, ROC curve and AUC, perplexity; and, for generated
//! samples, classifier confidence, class entropy and the Fréchet distance
//! (`generative.rs`, re-exported here).
//!
//! Metrics are computed on the host (predictions are downloaded once per
//! batch); they are not differentiable and are not part of a training step.
//! Conventions follow scikit-learn where it defines one:
//!
//! * the predicted class is the index of the largest score, the first one on
//!   ties (`torch.argmax`);
//! * a confusion matrix has the true class on the rows and the predicted
//!   class on the columns (`sklearn.metrics.confusion_matrix`);
//! * a ratio with a zero denominator (precision of a class never predicted,
//!   recall of a class that never occurs) is 0, scikit-learn's default
//!   `zero_division` result;
//! * macro averages are unweighted means over the classes that occur in the
//!   labels or the predictions (scikit-learn's default label set), so a class
//!   absent from both does not pull the average down;
//! * the ROC curve and its area treat tied scores as one threshold (a
//!   diagonal step of the curve), like `roc_curve` / `roc_auc_score`, so the
//!   AUC equals the probability that a random positive outscores a random
//!   negative, ties counting one half.
//!
//! The course defines `TPR = recall = tp/(tp+fn)`, `FPR = fp/(fp+tn)`,
//! `precision = tp/(tp+fp)`, `accuracy = (tp+tn)/(tp+tn+fp+fn)`, and
//! perplexity as `b^{−(1/N) Σ log_b p(w_i | …)}`, the exponential of the mean
//! cross-entropy (any base `b`, as long as the logarithm matches; kiln's
//! losses use `e`).

use crate::device::Backend;
use crate::elem::Elem;
use crate::error::{check_batch, Error, Result};
use crate::shape::S1;
use crate::tensor::{Labels, Tensor};

mod generative;
pub use generative::{
    class_entropy, frechet_distance, frechet_distance_gaussians, mean_covariance,
    mean_max_probability, sym_eigen, sym_sqrt,
};

/// The index of the largest score of `row` (first on ties; a NaN is never
/// the largest unless the row is all NaN; 0 for an empty row).
pub fn argmax<E: Elem>(row: &[E]) -> usize {
    let mut best = 0;
    for j in 1..row.len() {
        if row[j] > row[best] || (row[best].is_nan() && !row[j].is_nan()) {
            best = j;
        }
    }
    best
}

/// The index of the largest of each row of `cols` scores ([`argmax`] per row).
pub fn argmax_rows<E: Elem>(scores: &[E], cols: usize) -> Vec<u32> {
    scores
        .chunks_exact(cols.max(1))
        .map(|r| argmax(r) as u32)
        .collect()
}

/// How many rows of `cols` host scores have their [`argmax`] at the label:
/// the per-batch count a training loop adds up, without allocating. The
/// scores must be exactly one row per label (else [`Error::LengthMismatch`]:
/// counting fewer rows would silently undercount).
pub fn count_correct<E: Elem>(scores: &[E], cols: usize, labels: &[u32]) -> Result<usize> {
    if cols == 0 || scores.len() != cols * labels.len() {
        return Err(Error::LengthMismatch {
            what: "count_correct scores".into(),
            expected: cols * labels.len(),
            shape: format!("{} labels × {cols} classes", labels.len()),
            got: scores.len(),
        });
    }
    Ok(scores
        .chunks_exact(cols)
        .zip(labels)
        .filter(|(r, &y)| argmax(r) == y as usize)
        .count())
}

/// Downloads a batch of logits with its labels, checking the batch sizes.
fn host_batch<const C: usize, E: Elem, D: Backend<E>>(
    op: &'static str,
    logits: &Tensor<S1<C>, E, D>,
    labels: &Labels<C, D>,
) -> Result<Vec<E>> {
    check_batch(op, "logits", logits.batch(), "labels", labels.len())?;
    if logits.batch() == 0 {
        return Err(Error::EmptyBatch { op });
    }
    logits.to_vec()
}

/// The fraction of samples whose largest logit is at the label.
pub fn accuracy<const C: usize, E: Elem, D: Backend<E>>(
    logits: &Tensor<S1<C>, E, D>,
    labels: &Labels<C, D>,
) -> Result<f64> {
    top_k_accuracy(logits, labels, 1)
}

/// The fraction of samples whose label is among the `k` largest logits.
///
/// The label's rank is the number of classes with a larger score plus the
/// number of *earlier* classes with an equal one, so ties are broken towards
/// the lower class index, consistently with [`argmax_rows`] (top-1 accuracy
/// is [`accuracy`]). `k ≥ C` gives 1.
pub fn top_k_accuracy<const C: usize, E: Elem, D: Backend<E>>(
    logits: &Tensor<S1<C>, E, D>,
    labels: &Labels<C, D>,
    k: usize,
) -> Result<f64> {
    if k == 0 {
        return Err(Error::invalid("top_k_accuracy", "k must be positive"));
    }
    let x = host_batch("top_k_accuracy", logits, labels)?;
    let hits = x
        .chunks_exact(C)
        .zip(labels.as_slice())
        .filter(|(r, &y)| {
            let (y, s) = (y as usize, r[y as usize]);
            let rank = (0..C).filter(|&j| r[j] > s || (j < y && r[j] == s)).count();
            !s.is_nan() && rank < k
        })
        .count();
    Ok(hits as f64 / labels.len() as f64)
}

/// `a / b`, or 0 when `b = 0` (scikit-learn's `zero_division` default).
fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// Counts of (true class, predicted class) pairs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfusionMatrix {
    classes: usize,
    counts: Vec<u64>,
}

impl ConfusionMatrix {
    /// An empty matrix for `classes` classes.
    pub fn new(classes: usize) -> Self {
        ConfusionMatrix {
            classes,
            counts: vec![0; classes * classes],
        }
    }
    /// Fails unless both classes of sample `index` are below the class count.
    fn check(&self, index: usize, truth: usize, pred: usize) -> Result<()> {
        match [truth, pred].into_iter().find(|&c| c >= self.classes) {
            Some(label) => Err(Error::LabelOutOfRange {
                index,
                label,
                classes: self.classes,
            }),
            None => Ok(()),
        }
    }
    /// Counts one sample.
    pub fn add(&mut self, truth: usize, pred: usize) -> Result<()> {
        self.check(0, truth, pred)?;
        self.counts[truth * self.classes + pred] += 1;
        Ok(())
    }
    /// Counts a batch of true and predicted classes (nothing is counted if
    /// any class is out of range).
    pub fn add_all(&mut self, truth: &[u32], pred: &[u32]) -> Result<()> {
        check_batch("ConfusionMatrix", "truth", truth.len(), "pred", pred.len())?;
        for (i, (&t, &p)) in truth.iter().zip(pred).enumerate() {
            self.check(i, t as usize, p as usize)?;
        }
        for (&t, &p) in truth.iter().zip(pred) {
            self.counts[t as usize * self.classes + p as usize] += 1;
        }
        Ok(())
    }
    /// Counts a batch of logits (predicted class: [`argmax_rows`]) against labels.
    pub fn add_logits<const C: usize, E: Elem, D: Backend<E>>(
        &mut self,
        logits: &Tensor<S1<C>, E, D>,
        labels: &Labels<C, D>,
    ) -> Result<()> {
        if C != self.classes {
            return Err(Error::invalid(
                "ConfusionMatrix",
                format!("the matrix has {} classes, the logits {C}", self.classes),
            ));
        }
        let x = host_batch("ConfusionMatrix", logits, labels)?;
        self.add_all(labels.as_slice(), &argmax_rows(&x, C))
    }
    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.classes
    }
    /// Samples of class `truth` predicted as `pred`; either at or above the
    /// class count is [`Error::LabelOutOfRange`].
    pub fn get(&self, truth: usize, pred: usize) -> Result<u64> {
        self.check(0, truth, pred)?;
        Ok(self.at(truth, pred))
    }
    fn at(&self, truth: usize, pred: usize) -> u64 {
        self.counts[truth * self.classes + pred]
    }
    /// Fails unless `c` is below the class count.
    fn class(&self, c: usize) -> Result<usize> {
        self.check(0, c, c).map(|()| c)
    }
    /// The counts, row-major (`[truth][pred]`).
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }
    /// Number of samples counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
    /// Correct predictions, `Σ_c M[c][c]`.
    pub fn correct(&self) -> u64 {
        (0..self.classes).map(|c| self.at(c, c)).sum()
    }
    /// Samples whose true class is `c` (the row sum).
    pub fn support(&self, c: usize) -> Result<u64> {
        self.class(c).map(|c| self.row(c))
    }
    /// Samples predicted as `c` (the column sum).
    pub fn predicted(&self, c: usize) -> Result<u64> {
        self.class(c).map(|c| self.col(c))
    }
    fn row(&self, c: usize) -> u64 {
        (0..self.classes).map(|p| self.at(c, p)).sum()
    }
    fn col(&self, c: usize) -> u64 {
        (0..self.classes).map(|t| self.at(t, c)).sum()
    }
    /// `correct / total` (0 for an empty matrix).
    pub fn accuracy(&self) -> f64 {
        ratio(self.correct(), self.total())
    }
    /// `tp / (tp + fp)` for class `c`, one-vs-rest.
    pub fn precision(&self, c: usize) -> Result<f64> {
        self.class(c).map(|c| self.precision_at(c))
    }
    /// `tp / (tp + fn)` for class `c` (its true positive rate).
    pub fn recall(&self, c: usize) -> Result<f64> {
        self.class(c).map(|c| self.recall_at(c))
    }
    /// The harmonic mean of precision and recall, `2tp / (2tp + fp + fn)`.
    pub fn f1(&self, c: usize) -> Result<f64> {
        self.class(c).map(|c| self.f1_at(c))
    }
    fn precision_at(&self, c: usize) -> f64 {
        ratio(self.at(c, c), self.col(c))
    }
    fn recall_at(&self, c: usize) -> f64 {
        ratio(self.at(c, c), self.row(c))
    }
    fn f1_at(&self, c: usize) -> f64 {
        ratio(2 * self.at(c, c), self.row(c) + self.col(c))
    }
    /// The classes that occur as a label or as a prediction.
    fn present(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.classes).filter(|&c| self.row(c) + self.col(c) > 0)
    }
    fn macro_avg(&self, f: impl Fn(usize) -> f64) -> f64 {
        let (mut sum, mut n) = (0.0, 0usize);
        for c in self.present() {
            sum += f(c);
            n += 1;
        }
        if n == 0 {
            0.0
        } else {
            sum / n as f64
        }
    }
    /// Unweighted mean of the per-class precisions (classes present only).
    pub fn macro_precision(&self) -> f64 {
        self.macro_avg(|c| self.precision_at(c))
    }
    /// Unweighted mean of the per-class recalls (classes present only).
    pub fn macro_recall(&self) -> f64 {
        self.macro_avg(|c| self.recall_at(c))
    }
    /// Unweighted mean of the per-class F1 scores (classes present only;
    /// not the F1 of the macro precision and recall).
    pub fn macro_f1(&self) -> f64 {
        self.macro_avg(|c| self.f1_at(c))
    }
}

/// A ROC curve: false and true positive rates at decreasing thresholds; a
/// sample is predicted positive when its score is `≥` the threshold. The
/// first point is `(0, 0)` at threshold `+∞`.
#[derive(Clone, Debug, PartialEq)]
pub struct RocCurve {
    /// False positive rates, `fp / (fp + tn)`, non-decreasing.
    pub fpr: Vec<f64>,
    /// True positive rates, `tp / (tp + fn)`, non-decreasing.
    pub tpr: Vec<f64>,
    /// The thresholds, decreasing.
    pub thresholds: Vec<f64>,
}

impl RocCurve {
    /// The area under the curve by the trapezoidal rule.
    pub fn auc(&self) -> f64 {
        self.fpr
            .windows(2)
            .zip(self.tpr.windows(2))
            .map(|(f, t)| (f[1] - f[0]) * (t[0] + t[1]) / 2.0)
            .sum()
    }
}

/// The ROC curve of binary `scores` (higher = more positive) against the
/// true classes `positive`, as `sklearn.metrics.roc_curve`: one point per
/// distinct score; with `drop_intermediate`, points on a straight segment
/// between two others are dropped (scikit-learn's default), which leaves
/// the area unchanged. Both classes must occur; scores must not be NaN.
pub fn roc_curve(scores: &[f64], positive: &[bool], drop_intermediate: bool) -> Result<RocCurve> {
    const OP: &str = "roc_curve";
    check_batch(OP, "scores", scores.len(), "labels", positive.len())?;
    if scores.iter().any(|s| s.is_nan()) {
        return Err(Error::invalid(OP, "scores contain NaN"));
    }
    let pos = positive.iter().filter(|&&p| p).count() as u64;
    let neg = positive.len() as u64 - pos;
    if pos == 0 || neg == 0 {
        return Err(Error::invalid(
            OP,
            "only one class present in the labels; the ROC curve needs both",
        ));
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    // Cumulative (fp, tp) at the last sample of each run of equal scores.
    let (mut fps, mut tps, mut thr) = (Vec::new(), Vec::new(), Vec::new());
    let (mut fp, mut tp) = (0u64, 0u64);
    for (i, &s) in order.iter().enumerate() {
        if positive[s] {
            tp += 1;
        } else {
            fp += 1;
        }
        if i + 1 == order.len() || scores[order[i + 1]] != scores[s] {
            fps.push(fp);
            tps.push(tp);
            thr.push(scores[s]);
        }
    }
    if drop_intermediate && fps.len() > 2 {
        // Keep the ends and every point where the curve changes direction
        // (a non-zero second difference of fp or tp).
        let bend = |v: &[u64], i: usize| v[i + 1] + v[i - 1] != 2 * v[i];
        let keep: Vec<usize> = (0..fps.len())
            .filter(|&i| i == 0 || i + 1 == fps.len() || bend(&fps, i) || bend(&tps, i))
            .collect();
        fps = keep.iter().map(|&i| fps[i]).collect();
        tps = keep.iter().map(|&i| tps[i]).collect();
        thr = keep.iter().map(|&i| thr[i]).collect();
    }
    let mut c = RocCurve {
        fpr: vec![0.0],
        tpr: vec![0.0],
        thresholds: vec![f64::INFINITY],
    };
    c.fpr.extend(fps.iter().map(|&f| f as f64 / neg as f64));
    c.tpr.extend(tps.iter().map(|&t| t as f64 / pos as f64));
    c.thresholds.extend(thr);
    Ok(c)
}

/// The area under the ROC curve of binary scores (`sklearn.metrics.roc_auc_score`).
pub fn roc_auc(scores: &[f64], positive: &[bool]) -> Result<f64> {
    Ok(roc_curve(scores, positive, true)?.auc())
}

/// Perplexity from the mean cross-entropy in nats (kiln's
/// [`crate::loss::cross_entropy`] over the tokens): `e^H`.
pub fn perplexity(mean_cross_entropy: f64) -> f64 {
    mean_cross_entropy.exp()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Cpu;

    fn logits(v: &[f64]) -> Tensor<S1<3>, f64> {
        Tensor::from_slice(&Cpu, v).unwrap()
    }

    #[test]
    fn accuracy_and_top_k_by_hand() {
        // Four samples of 3 logits; argmax: 1, 0 (tie 0 = 0 → first), 2, 2.
        let x = logits(&[0.1, 0.7, 0.2, 0.5, 0.5, 0.0, 0.3, 0.3, 0.4, 0.9, 0.05, 0.05]);
        let y = Labels::<3>::new::<f64>(&Cpu, &[1, 1, 2, 1]).unwrap();
        assert_eq!(argmax_rows(&x.to_vec().unwrap(), 3), [1, 0, 2, 0]);
        // Correct: sample 0 (1 = 1), sample 2 (2 = 2) → 2/4.
        assert_eq!(accuracy(&x, &y).unwrap(), 0.5);
        // Top-2: s0 rank 0 ✓; s1 label 1 ties class 0 (earlier) → rank 1 ✓;
        // s2 rank 0 ✓; s3 label 1 (0.05) has 0.9 above and 0.05 tied after → rank 1 ✓ → 4/4.
        assert_eq!(top_k_accuracy(&x, &y, 2).unwrap(), 1.0);
        assert_eq!(top_k_accuracy(&x, &y, 1).unwrap(), 0.5);
        assert!(top_k_accuracy(&x, &y, 0).is_err());
    }

    #[test]
    fn confusion_precision_recall_f1_by_hand() {
        // truth: 0 0 0 1 1 2 ; pred: 0 1 0 1 2 2
        let mut m = ConfusionMatrix::new(4);
        m.add_all(&[0, 0, 0, 1, 1, 2], &[0, 1, 0, 1, 2, 2]).unwrap();
        // Rows = truth: [2 1 0 0], [0 1 1 0], [0 0 1 0], [0 0 0 0].
        assert_eq!(&m.counts()[..12], &[2, 1, 0, 0, 0, 1, 1, 0, 0, 0, 1, 0]);
        assert_eq!((m.total(), m.correct()), (6, 4));
        assert!((m.accuracy() - 4.0 / 6.0).abs() < 1e-15);
        // Class 0: tp 2, fp 0, fn 1 → P = 1, R = 2/3, F1 = 4/5.
        // Class 1: tp 1, fp 1, fn 1 → P = R = F1 = 1/2.
        // Class 2: tp 1, fp 1, fn 0 → P = 1/2, R = 1, F1 = 2/3.
        let want = [
            (1.0, 2.0 / 3.0, 0.8),
            (0.5, 0.5, 0.5),
            (0.5, 1.0, 2.0 / 3.0),
        ];
        for (c, (p, r, f)) in want.iter().enumerate() {
            assert!(
                (m.precision(c).unwrap() - p).abs() < 1e-15
                    && (m.recall(c).unwrap() - r).abs() < 1e-15
                    && (m.f1(c).unwrap() - f).abs() < 1e-15,
                "class {c}"
            );
        }
        // Class 3 never occurs: 0 everywhere, and left out of the macro means:
        // P = (1 + ½ + ½)/3 = 2/3, R = (2/3 + ½ + 1)/3 = 13/18, F1 = (0.8 + ½ + 2/3)/3 = 59/90.
        assert_eq!(
            (
                m.precision(3).unwrap(),
                m.recall(3).unwrap(),
                m.f1(3).unwrap()
            ),
            (0.0, 0.0, 0.0)
        );
        assert!((m.macro_precision() - 2.0 / 3.0).abs() < 1e-15);
        assert!((m.macro_recall() - 13.0 / 18.0).abs() < 1e-15);
        assert!((m.macro_f1() - 59.0 / 90.0).abs() < 1e-15);
        assert!(m.add(4, 0).is_err());
        // From logits: argmax (1, 0, 2) against labels (1, 1, 2) adds (1,1), (1,0), (2,2).
        let mut m = ConfusionMatrix::new(3);
        let x = logits(&[0.0, 1.0, 0.0, 2.0, 1.0, 0.0, 0.0, 0.0, 3.0]);
        m.add_logits(&x, &Labels::<3>::new::<f64>(&Cpu, &[1, 1, 2]).unwrap())
            .unwrap();
        assert_eq!(
            (
                m.get(1, 1).unwrap(),
                m.get(1, 0).unwrap(),
                m.get(2, 2).unwrap(),
                m.total()
            ),
            (1, 1, 1, 3)
        );
    }

    #[test]
    fn roc_without_ties_by_hand() {
        // Scores 0.9 P, 0.8 N, 0.7 P, 0.6 P, 0.2 N (3 positives, 2 negatives).
        let s = [0.9, 0.8, 0.7, 0.6, 0.2];
        let p = [true, false, true, true, false];
        // Thresholds ∞, 0.9, 0.8, 0.7, 0.6, 0.2 give (fp, tp) = (0,0) (0,1) (1,1) (1,2) (1,3) (2,3).
        let c = roc_curve(&s, &p, false).unwrap();
        assert_eq!(c.fpr, [0.0, 0.0, 0.5, 0.5, 0.5, 1.0]);
        assert_eq!(c.tpr, [0.0, 1.0 / 3.0, 1.0 / 3.0, 2.0 / 3.0, 1.0, 1.0]);
        assert_eq!(c.thresholds[1..], [0.9, 0.8, 0.7, 0.6, 0.2]);
        // drop_intermediate removes 0.7, which lies on the vertical segment (½,⅓)–(½,1).
        let d = roc_curve(&s, &p, true).unwrap();
        assert_eq!(d.thresholds[1..], [0.9, 0.8, 0.6, 0.2]);
        // AUC by pairs (P above N): 0.9 beats both negatives, 0.7 and 0.6 beat 0.2 → 4/6.
        // Trapezoids over the full curve: ½·(⅓ + ⅓)/2 + ½·(1 + 1)/2 = 1/6 + 1/2 = 2/3.
        assert!((roc_auc(&s, &p).unwrap() - 4.0 / 6.0).abs() < 1e-15);
        assert!((c.auc() - d.auc()).abs() < 1e-15);
    }

    #[test]
    fn roc_with_ties_by_hand() {
        // Scores: P 0.8, N 0.8, P 0.5, N 0.3, N 0.5 → the two 0.8s and the two 0.5s tie.
        let s = [0.8, 0.8, 0.5, 0.3, 0.5];
        let p = [true, false, true, false, false];
        // One point per distinct score, counting whole tie groups at once:
        // threshold 0.8 → (fp, tp) = (1, 1); 0.5 → (2, 2); 0.3 → (3, 2).
        // fpr = fp/3, tpr = tp/2. drop_intermediate keeps (1, 1): tp's second
        // difference there is 2 − 2·2 + 1 = −1 ≠ 0 (the prepended (0, 0) is not
        // part of that test, as in scikit-learn).
        let c = roc_curve(&s, &p, true).unwrap();
        assert_eq!(c.thresholds, [f64::INFINITY, 0.8, 0.5, 0.3]);
        assert_eq!(c.fpr, [0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0]);
        assert_eq!(c.tpr, [0.0, 0.5, 1.0, 1.0]);
        // Trapezoids: ⅓·(0 + ½)/2 + ⅓·(½ + 1)/2 + ⅓·(1 + 1)/2 = 1/12 + 3/12 + 4/12 = 2/3.
        // By pairs, ties counting ½: P0.8 vs N0.8 ½, vs N0.5 1, vs N0.3 1;
        // P0.5 vs N0.8 0, vs N0.5 ½, vs N0.3 1 → (2.5 + 1.5)/6 = 2/3.
        assert!((roc_auc(&s, &p).unwrap() - 2.0 / 3.0).abs() < 1e-15);
        // Only one class, or a NaN score: errors, like scikit-learn.
        assert!(roc_auc(&[0.1, 0.2], &[true, true]).is_err());
        assert!(roc_auc(&[f64::NAN, 0.2], &[true, false]).is_err());
    }

    #[test]
    fn perplexity_by_hand() {
        // A uniform guess over 6 outcomes: H = ln 6, perplexity 6 (the course's die).
        assert!((perplexity(6f64.ln()) - 6.0).abs() < 1e-12);
        // A coin: H = ln 2 → 2.
        assert!((perplexity(2f64.ln()) - 2.0).abs() < 1e-15);
    }

    #[test]
    fn count_correct_by_hand() {
        // Rows: argmax 2, 0 (tie 0/1 → first), 1 (NaN never wins); labels 2, 1, 1.
        let scores = [0.1f32, 0.2, 0.9, 0.5, 0.5, 0.0, f32::NAN, 0.3, 0.1];
        assert_eq!(argmax_rows(&scores, 3), [2, 0, 1]);
        assert_eq!(count_correct(&scores, 3, &[2, 1, 1]).unwrap(), 2);
        // Fewer labels than rows (or more) is an error, not a smaller count.
        let e = count_correct(&scores, 3, &[2]).unwrap_err();
        assert!(
            e.to_string()
                .contains("expected 3 values (1 labels × 3 classes), got 9"),
            "{e}"
        );
        assert!(count_correct(&scores, 3, &[2, 1, 1, 0]).is_err());
        assert!(count_correct(&scores, 0, &[]).is_err());
    }

    #[test]
    fn confusion_matrix_classes_out_of_range_are_errors() {
        let mut m = ConfusionMatrix::new(3);
        m.add_all(&[0, 1, 2], &[0, 2, 2]).unwrap();
        assert_eq!(m.get(1, 2).unwrap(), 1);
        // Before: get(3, 0) panicked and get(0, 3) read row 1's first count.
        for (t, p) in [(3, 0), (0, 3)] {
            let e = m.get(t, p).unwrap_err();
            assert!(
                matches!(
                    e,
                    Error::LabelOutOfRange {
                        label: 3,
                        classes: 3,
                        ..
                    }
                ),
                "{e}"
            );
        }
        assert!(m.support(3).is_err() && m.predicted(3).is_err());
        assert!(m.precision(3).is_err() && m.recall(3).is_err() && m.f1(3).is_err());
        assert_eq!(m.support(2).unwrap(), 1);
        assert_eq!(m.predicted(2).unwrap(), 2);
    }
}
