//! Adversarial examples: the fast gradient sign method (FGSM, Goodfellow et
//! al. 2015) and projected gradient descent (PGD, Madry et al. 2018), in
//! pixel units of `[0, 1]`.
//!
//! With `x₀` the clean images, `ε` the budget, `g(x, y) = ∂ CE(f(x), y)/∂x`
//! (the cross-entropy of the network's scores against labels `y`):
//!
//! * untargeted (true labels `y`): each step *raises* the loss of `y`,
//!   `x ← x + α·sign(g(x, y))`;
//! * toward target classes `t`: each step *lowers* the loss of `t`,
//!   `x ← x − α·sign(g(x, t))`;
//! * after every step `x` is projected onto the `L∞` ball and the image
//!   range: `x ← clip(clip(x, x₀ − ε, x₀ + ε), 0, 1)`.
//!
//! FGSM is one step with `α = ε` from `x₀`; PGD is `iters` steps of `α =
//! step`, from `x₀` or, with `random_start`, from `x₀ + U(−ε, ε)` projected.
//! `sign(0) = 0`.
//!
//! The attacks are generic over the network: the caller passes `loss_grad`,
//! which returns `g` for a batch (a generated network computes it with
//! `backward_from(tape, "<logits>", ∂CE/∂logits, "<input>", GradMode::Plain)`;
//! [`softmax_ce_grad`] gives `∂CE/∂logits`). Images are clipped to `[0, 1]`
//! *before* any normalisation, which belongs inside `loss_grad` (whose
//! chain rule through `(x − μ)/σ` is a positive factor `1/σ`, so the sign
//! is unchanged).

use crate::error::{Error, Result};
use rand::Rng as _;

/// Which way an attack pushes each sample.
#[derive(Clone, Copy, Debug)]
pub enum Goal<'a> {
    /// Away from the true labels (raise their loss).
    Untargeted(&'a [u32]),
    /// Toward these classes (lower their loss).
    Toward(&'a [u32]),
}

impl Goal<'_> {
    fn labels(&self) -> &[u32] {
        match self {
            Goal::Untargeted(l) | Goal::Toward(l) => l,
        }
    }
    /// +1 to ascend the loss, −1 to descend it.
    fn direction(&self) -> f32 {
        match self {
            Goal::Untargeted(_) => 1.0,
            Goal::Toward(_) => -1.0,
        }
    }
}

/// PGD's settings (in pixel units of `[0, 1]`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pgd {
    /// `ε`, the `L∞` budget.
    pub eps: f32,
    /// `α`, the step.
    pub step: f32,
    /// The number of steps.
    pub iters: usize,
    /// Start from a uniform point of the ball instead of `x₀`.
    pub random_start: bool,
}

fn check(op: &'static str, x: &[f32], goal: &Goal, eps: f32) -> Result<()> {
    if !(eps.is_finite() && eps >= 0.0) {
        return Err(Error::invalid(
            op,
            format!("ε = {eps}: the budget must be finite and ≥ 0"),
        ));
    }
    let n = goal.labels().len();
    if n == 0 || !x.len().is_multiple_of(n) {
        return Err(Error::invalid(
            op,
            format!(
                "{} labels for {} pixel values: need one label per image",
                n,
                x.len()
            ),
        ));
    }
    if let Some(v) = x.iter().find(|v| !(0.0..=1.0).contains(*v)) {
        return Err(Error::invalid(
            op,
            format!("pixel value {v} outside [0, 1]: attacks take un-normalised images"),
        ));
    }
    Ok(())
}

/// One signed step of size `alpha` from `x`, projected onto the ball of
/// radius `eps` around `x0` and onto `[0, 1]`.
fn step<F>(
    op: &'static str,
    x0: &[f32],
    x: &mut [f32],
    alpha: f32,
    eps: f32,
    goal: &Goal,
    loss_grad: &mut F,
) -> Result<()>
where
    F: FnMut(&[f32], &[u32]) -> Result<Vec<f32>>,
{
    let g = loss_grad(x, goal.labels())?;
    if g.len() != x.len() {
        return Err(Error::LengthMismatch {
            what: format!("{op}: the gradient loss_grad returned"),
            expected: x.len(),
            shape: format!("{} images", goal.labels().len()),
            got: g.len(),
        });
    }
    let dir = goal.direction();
    for ((v, &g), &v0) in x.iter_mut().zip(&g).zip(x0) {
        let s = if g > 0.0 {
            1.0
        } else if g < 0.0 {
            -1.0
        } else {
            0.0
        };
        *v = project(*v + dir * alpha * s, v0, eps);
    }
    Ok(())
}

/// `clip(clip(v, v0 − ε, v0 + ε), 0, 1)`.
fn project(v: f32, v0: f32, eps: f32) -> f32 {
    v.clamp(v0 - eps, v0 + eps).clamp(0.0, 1.0)
}

/// FGSM: `x₀ ± ε·sign(g)` (see the module doc), clipped to `[0, 1]`.
/// `x` holds the batch's images in `[0, 1]`, one label per image in `goal`.
pub fn fgsm<F>(x: &[f32], eps: f32, goal: Goal, mut loss_grad: F) -> Result<Vec<f32>>
where
    F: FnMut(&[f32], &[u32]) -> Result<Vec<f32>>,
{
    check("fgsm", x, &goal, eps)?;
    let mut adv = x.to_vec();
    step("fgsm", x, &mut adv, eps, eps, &goal, &mut loss_grad)?;
    Ok(adv)
}

/// PGD (see the module doc): `cfg.iters` steps of `cfg.step`, each
/// projected onto the `ε` ball and `[0, 1]`; `rng` draws the random start.
pub fn pgd<F>(
    x: &[f32],
    cfg: &Pgd,
    goal: Goal,
    rng: &mut crate::Rng,
    mut loss_grad: F,
) -> Result<Vec<f32>>
where
    F: FnMut(&[f32], &[u32]) -> Result<Vec<f32>>,
{
    check("pgd", x, &goal, cfg.eps)?;
    if !(cfg.step.is_finite() && cfg.step > 0.0) {
        return Err(Error::invalid(
            "pgd",
            format!("step = {}: must be finite and > 0", cfg.step),
        ));
    }
    let mut adv = x.to_vec();
    if cfg.eps == 0.0 {
        // The ball is the point x₀: every step would be projected back.
        return Ok(adv);
    }
    if cfg.random_start {
        for (v, &v0) in adv.iter_mut().zip(x) {
            *v = project(v0 + rng.random_range(-cfg.eps..=cfg.eps), v0, cfg.eps);
        }
    }
    for _ in 0..cfg.iters {
        step("pgd", x, &mut adv, cfg.step, cfg.eps, &goal, &mut loss_grad)?;
    }
    Ok(adv)
}

/// Mean over images of the `L∞` distance `max_i |x_i − x0_i|` (`numel`
/// values per image).
pub fn mean_linf(x0: &[f32], x: &[f32], numel: usize) -> f32 {
    let n = x0.len() / numel.max(1);
    if n == 0 {
        return 0.0;
    }
    x0.chunks(numel)
        .zip(x.chunks(numel))
        .map(|(a, b)| {
            a.iter()
                .zip(b)
                .fold(0.0f32, |m, (p, q)| m.max((p - q).abs()))
        })
        .sum::<f32>()
        / n as f32
}

/// The mean cross-entropy of `logits` (`classes` per sample) against
/// `labels`, and its gradient `(softmax(z) − onehot(y))/B` with respect to
/// the logits (what `loss_grad` seeds `backward_from` with).
pub fn softmax_ce_grad(logits: &[f32], classes: usize, labels: &[u32]) -> Result<(f32, Vec<f32>)> {
    if classes == 0 || logits.len() != classes * labels.len() {
        return Err(Error::invalid(
            "softmax_ce_grad",
            format!(
                "{} logits for {} labels of {classes} classes",
                logits.len(),
                labels.len()
            ),
        ));
    }
    let b = labels.len() as f32;
    let mut grad = Vec::with_capacity(logits.len());
    let mut loss = 0.0f64;
    for (z, &y) in logits.chunks(classes).zip(labels) {
        let y = y as usize;
        if y >= classes {
            return Err(Error::invalid(
                "softmax_ce_grad",
                format!("label {y} of {classes} classes"),
            ));
        }
        let m = z.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        let sum: f32 = z.iter().map(|v| (v - m).exp()).sum();
        loss += f64::from(sum.ln() + m - z[y]);
        grad.extend(
            z.iter()
                .enumerate()
                .map(|(c, &v)| ((v - m).exp() / sum - if c == y { 1.0 } else { 0.0 }) / b),
        );
    }
    Ok(((loss / f64::from(b)) as f32, grad))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixed gradient field: every step moves by exactly `α·sign(g)`.
    fn field(x: &[f32], _: &[u32]) -> Result<Vec<f32>> {
        Ok(x.iter()
            .enumerate()
            .map(|(i, _)| [1.0, -2.0, 0.0][i % 3])
            .collect())
    }

    #[test]
    fn fgsm_moves_by_eps_sign_and_clips() {
        let x = [0.5, 0.5, 0.5, 0.95, 0.02, 0.5];
        let up = fgsm(&x, 0.1, Goal::Untargeted(&[0, 1]), field).unwrap();
        let want = [0.6, 0.4, 0.5, 1.0, 0.0, 0.5];
        for (a, b) in up.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{up:?}");
        }
        let down = fgsm(&x, 0.1, Goal::Toward(&[0, 1]), field).unwrap();
        let want = [0.4, 0.6, 0.5, 0.85, 0.12, 0.5];
        for (a, b) in down.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{down:?}");
        }
    }

    /// PGD with a random start and a gradient of random signs stays in the
    /// ball and in [0, 1]; with a fixed field it walks to the ball's edge.
    #[test]
    fn pgd_stays_in_the_ball_and_the_image_range() {
        let mut r = crate::rng(1);
        let x: Vec<f32> = (0..60).map(|i| i as f32 / 59.0).collect();
        let cfg = Pgd {
            eps: 0.1,
            step: 0.03,
            iters: 10,
            random_start: true,
        };
        let mut noise = crate::rng(2);
        let adv = pgd(&x, &cfg, Goal::Untargeted(&[0; 6]), &mut r, |x, _| {
            Ok(x.iter().map(|_| noise.random_range(-1.0f32..1.0)).collect())
        })
        .unwrap();
        for (a, b) in adv.iter().zip(&x) {
            assert!((a - b).abs() <= 0.1 + 1e-6 && (0.0..=1.0).contains(a));
        }
        assert!(adv.iter().zip(&x).any(|(a, b)| a != b));
        let adv = pgd(
            &x,
            &Pgd {
                random_start: false,
                ..cfg
            },
            Goal::Untargeted(&[0; 6]),
            &mut r,
            field,
        )
        .unwrap();
        assert!((adv[30] - (x[30] + 0.1)).abs() < 1e-6 && (adv[31] - (x[31] - 0.1)).abs() < 1e-6);
        assert_eq!(adv[32], x[32]);
        assert!(
            (mean_linf(&x, &adv, 10) - 0.1).abs() < 1e-6,
            "{}",
            mean_linf(&x, &adv, 10)
        );
    }

    #[test]
    fn bad_arguments_are_errors() {
        let e = fgsm(&[0.5; 4], -0.1, Goal::Untargeted(&[0]), field).unwrap_err();
        assert!(e.to_string().contains("ε = -0.1"), "{e}");
        let e = fgsm(&[0.5; 4], 0.1, Goal::Untargeted(&[0; 3]), field).unwrap_err();
        assert!(e.to_string().contains("3 labels for 4 pixel values"), "{e}");
        let e = fgsm(&[1.5; 4], 0.1, Goal::Untargeted(&[0]), field).unwrap_err();
        assert!(e.to_string().contains("1.5 outside [0, 1]"), "{e}");
        let e = fgsm(&[0.5; 4], 0.1, Goal::Untargeted(&[0]), |_, _| {
            Ok(vec![1.0; 3])
        })
        .unwrap_err();
        assert!(e.to_string().contains("gradient"), "{e}");
    }

    /// Worked example: logits (0, ln 3) for label 1: p = (¼, ¾), loss
    /// −ln ¾, gradient (¼, −¼).
    #[test]
    fn softmax_cross_entropy_worked_example() {
        let (l, g) = softmax_ce_grad(&[0.0, 3.0f32.ln()], 2, &[1]).unwrap();
        assert!((l - (4.0f32 / 3.0).ln()).abs() < 1e-6);
        assert!((g[0] - 0.25).abs() < 1e-6 && (g[1] + 0.25).abs() < 1e-6);
        assert!(softmax_ce_grad(&[0.0; 4], 2, &[2, 0]).is_err());
    }
}
