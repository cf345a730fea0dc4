//! Parameter initialisers, following `torch.nn.init`, and normal draws for
//! noise inputs ([`fill_normal`], [`randn`]).
//!
//! `fan_in` and `fan_out` are computed as PyTorch does for a weight of shape
//! `[out, in, k…]`: `fan_in = in · Πk`, `fan_out = out · Πk`.
//!
//! | kiln | PyTorch | distribution |
//! |---|---|---|
//! | [`Init::TorchDefault`] | `nn.Linear`/`nn.Conv2d` default (`kaiming_uniform_(a=√5)`) | `U(−1/√fan_in, 1/√fan_in)` |
//! | [`Init::XavierUniform`] | `xavier_uniform_` | `U(−a, a)`, `a = √(6/(fan_in+fan_out))` |
//! | [`Init::XavierNormal`] | `xavier_normal_` | `N(0, 2/(fan_in+fan_out))` |
//! | [`Init::LecunNormal`] | `kaiming_normal_(nonlinearity='linear')` | `N(0, 1/fan_in)` — the course's "simpler Xavier" `randn·√(1/fan_in)` |
//! | [`Init::HeNormal`] | `kaiming_normal_(nonlinearity='relu')` | `N(0, 2/fan_in)` — the course's "Xavier2" `randn·√(2/fan_in)` |
//! | [`Init::HeUniform`] | `kaiming_uniform_(nonlinearity='relu')` | `U(−√(6/fan_in), √(6/fan_in))` |
//! | [`Init::Normal`] | `normal_(0, std)` | `N(0, std²)`; the course's small random numbers use `std = 0.01` |
//! | [`Init::Zeros`] | `zeros_` | 0 |
//!
//! Values are drawn on the host from the caller's seeded [`crate::Rng`] and
//! uploaded, so the same seed gives the same weights on every device. The
//! stream differs from PyTorch's generator; the distributions are the same
//! (checked against statistics recorded from PyTorch in `tests/fixtures`).

use crate::device::Backend;
use crate::elem::Elem;
use crate::error::Result;
use crate::shape::Shape;
use crate::tensor::Tensor;
use crate::Rng;
use rand::Rng as _;
use rand_distr::{Distribution, StandardNormal};

/// How to fill a weight.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub enum Init {
    /// PyTorch's default for `Linear` and `Conv2d`.
    #[default]
    TorchDefault,
    /// Glorot uniform.
    XavierUniform,
    /// Glorot normal.
    XavierNormal,
    /// LeCun normal.
    LecunNormal,
    /// He/Kaiming normal for ReLU.
    HeNormal,
    /// He/Kaiming uniform for ReLU.
    HeUniform,
    /// `N(0, std²)`.
    Normal(f64),
    /// All zeros.
    Zeros,
}

/// `(fan_in, fan_out)` of a weight of shape `dims` (`[out, in, k…]`).
pub fn fans(dims: &[usize]) -> (usize, usize) {
    match dims {
        [] => (1, 1),
        [n] => (*n, *n),
        [o, i, rest @ ..] => {
            let r: usize = rest.iter().product();
            (i * r, o * r)
        }
    }
}

impl Init {
    /// Draws `n` values for a weight of shape `dims`.
    pub fn sample(self, dims: &[usize], n: usize, rng: &mut Rng) -> Vec<f64> {
        let (fi, fo) = fans(dims);
        let (fi, fo) = (fi.max(1) as f64, fo.max(1) as f64);
        let uniform = |a: f64, rng: &mut Rng| -> Vec<f64> {
            (0..n).map(|_| rng.random_range(-a..=a)).collect()
        };
        let normal = |s: f64, rng: &mut Rng| -> Vec<f64> {
            (0..n)
                .map(|_| {
                    let z: f64 = StandardNormal.sample(rng);
                    z * s
                })
                .collect()
        };
        match self {
            Init::TorchDefault => uniform(1.0 / fi.sqrt(), rng),
            Init::XavierUniform => uniform((6.0 / (fi + fo)).sqrt(), rng),
            Init::XavierNormal => normal((2.0 / (fi + fo)).sqrt(), rng),
            Init::LecunNormal => normal((1.0 / fi).sqrt(), rng),
            Init::HeNormal => normal((2.0 / fi).sqrt(), rng),
            Init::HeUniform => uniform((6.0 / fi).sqrt(), rng),
            Init::Normal(s) => normal(s, rng),
            Init::Zeros => vec![0.0; n],
        }
    }

    /// A parameter tensor (batch 1) of shape `S` filled by this initialiser.
    pub fn tensor<S: Shape, E: Elem, D: Backend<E>>(
        self,
        dev: &D,
        rng: &mut Rng,
    ) -> Result<Tensor<S, E, D>> {
        self.tensor_with_fans::<S, E, D>(dev, rng, S::DIMS)
    }

    /// Like [`Init::tensor`] but with the fans of another shape (a bias uses its
    /// weight's `fan_in`, as PyTorch does).
    pub fn tensor_with_fans<S: Shape, E: Elem, D: Backend<E>>(
        self,
        dev: &D,
        rng: &mut Rng,
        fan_dims: &[usize],
    ) -> Result<Tensor<S, E, D>> {
        let v: Vec<E> = self
            .sample(fan_dims, S::NUMEL, rng)
            .into_iter()
            .map(E::of)
            .collect();
        Tensor::from_vec(dev, 1, v)
    }
}

/// Fills `out` with draws of `N(mean, std²)` from `rng` (the noise `z` of a
/// generator, `ε` of a reparameterisation): `mean + std · z`, `z` a standard
/// normal from `rand_distr` (ziggurat), so the stream is fixed by the seed.
/// A negative or non-finite `std` or a non-finite `mean` is an error.
pub fn fill_normal<E: Elem>(rng: &mut Rng, out: &mut [E], mean: f64, std: f64) -> Result<()> {
    if !(std.is_finite() && std >= 0.0 && mean.is_finite()) {
        return Err(crate::Error::invalid(
            "fill_normal",
            format!("needs a finite mean and a finite std ≥ 0, got N({mean}, {std}²)"),
        ));
    }
    for v in out {
        let z: f64 = StandardNormal.sample(rng);
        *v = E::of(mean + std * z);
    }
    Ok(())
}

/// A batch of `batch` samples of shape `S` drawn from `N(0, 1)`
/// ([`fill_normal`]), uploaded to `dev`.
pub fn randn<S: Shape, E: Elem, D: Backend<E>>(
    dev: &D,
    batch: usize,
    rng: &mut Rng,
) -> Result<Tensor<S, E, D>> {
    let mut v = vec![E::of(0.0); batch * S::NUMEL];
    fill_normal(rng, &mut v, 0.0, 1.0)?;
    Tensor::from_vec(dev, batch, v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(v: &[f64]) -> (f64, f64, f64) {
        let n = v.len() as f64;
        let m = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n;
        let max = v.iter().fold(0.0f64, |a, b| a.max(b.abs()));
        (m, var.sqrt(), max)
    }

    #[test]
    fn fans_follow_pytorch() {
        assert_eq!(fans(&[256, 784]), (784, 256));
        assert_eq!(fans(&[16, 6, 5, 5]), (150, 400));
    }

    #[test]
    fn standard_deviations_match_the_formulas() {
        // Weight [400, 300]: fan_in 300, fan_out 400; 120 000 draws give the
        // standard deviation to about 0.3 %.
        let dims = [400, 300];
        let n = 120_000;
        let mut rng = crate::rng(7);
        let cases = [
            (Init::TorchDefault, (1.0 / 300f64).sqrt() / 3f64.sqrt()),
            (Init::XavierUniform, (6.0 / 700f64).sqrt() / 3f64.sqrt()),
            (Init::XavierNormal, (2.0 / 700f64).sqrt()),
            (Init::LecunNormal, (1.0 / 300f64).sqrt()),
            (Init::HeNormal, (2.0 / 300f64).sqrt()),
            (Init::HeUniform, (6.0 / 300f64).sqrt() / 3f64.sqrt()),
            (Init::Normal(0.01), 0.01),
        ];
        for (init, want) in cases {
            let v = init.sample(&dims, n, &mut rng);
            let (m, s, _) = stats(&v);
            assert!(
                (s / want - 1.0).abs() < 0.01,
                "{init:?}: std {s} want {want}"
            );
            assert!(
                m.abs() < 4.0 * want / (n as f64).sqrt(),
                "{init:?}: mean {m}"
            );
        }
        let v = Init::HeUniform.sample(&dims, n, &mut rng);
        assert!(stats(&v).2 <= (6.0 / 300f64).sqrt());
    }

    #[test]
    fn seeded_is_reproducible() {
        let a = Init::HeNormal.sample(&[3, 4], 12, &mut crate::rng(1));
        let b = Init::HeNormal.sample(&[3, 4], 12, &mut crate::rng(1));
        let c = Init::HeNormal.sample(&[3, 4], 12, &mut crate::rng(2));
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn fill_normal_has_the_asked_moments() {
        let mut v = vec![0f32; 100_000];
        fill_normal(&mut crate::rng(4), &mut v, 1.5, 0.5).unwrap();
        let w: Vec<f64> = v.iter().map(|&x| x as f64).collect();
        let (m, s, _) = stats(&w);
        // Standard errors: 0.5/√n ≈ 0.0016 for the mean, ≈ 0.0011 for the std.
        assert!((m - 1.5).abs() < 0.01, "mean {m}");
        assert!((s - 0.5).abs() < 0.01, "std {s}");
        let mut a = [0f64; 4];
        let mut b = [0f64; 4];
        fill_normal(&mut crate::rng(9), &mut a, 0.0, 1.0).unwrap();
        fill_normal(&mut crate::rng(9), &mut b, 0.0, 1.0).unwrap();
        assert_eq!(a, b, "seeded");
        let e = fill_normal(&mut crate::rng(0), &mut a, 0.0, -1.0).unwrap_err();
        assert!(e.to_string().contains("fill_normal"), "{e}");
        let t =
            randn::<crate::S2<2, 3>, f64, crate::Cpu>(&crate::Cpu, 5, &mut crate::rng(9)).unwrap();
        assert_eq!(t.batch(), 5);
        assert_eq!(
            &t.to_vec().unwrap()[..4],
            &b[..],
            "randn draws the same stream"
        );
    }
}
