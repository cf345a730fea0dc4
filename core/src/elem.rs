//! Element types: `f32` and `f64` (anything `num_traits::Float` that a device supports).

use num_traits::{Float, FromPrimitive, ToPrimitive};
use std::fmt::{Debug, Display};
use std::iter::Sum;

/// A plain value that a device buffer can hold (floats and `u32` labels or indices).
pub trait Scalar: Copy + Default + Debug + PartialEq + Send + Sync + 'static {
    /// The name used in kernel symbols (`f32`, `f64`, `u32`).
    const NAME: &'static str;
}

impl Scalar for f32 {
    const NAME: &'static str = "f32";
}
impl Scalar for f64 {
    const NAME: &'static str = "f64";
}
impl Scalar for u32 {
    const NAME: &'static str = "u32";
}

/// A floating-point element type of tensors.
pub trait Elem: Scalar + Float + FromPrimitive + ToPrimitive + Display + Sum {
    /// Converts from `f64` (rounding for `f32`).
    fn of(x: f64) -> Self;
    /// Converts to `f64` exactly.
    fn f64(self) -> f64;
    /// The error function `erf(x) = 2/√π ∫₀ˣ e^{−t²} dt` in this precision
    /// (`num_traits::Float` has none): for `f32` the branch-free rational
    /// form [`erf_f32`] (absolute error ≤ 3.5e-7, GELU's hot loop
    /// vectorises), for `f64` `libm`'s `erf` (the gradient checks run in
    /// `f64`).
    fn erf(self) -> Self;
    /// The logistic function `σ(x) = 1/(1 + e^{−x})` in a form the CPU's
    /// element-wise loops vectorise (no branch, no library call): for `f32`
    /// through [`exp_f32`], absolute error ≤ 1.2e-7 (≤ 2 ulp of 0.5's
    /// neighbourhood; checked against `f64` over [−90, 90] in this module's
    /// tests); for `f64` the exact, numerically stable two-branch form (the
    /// gradient checks run in `f64`).
    fn vsigmoid(self) -> Self;
    /// `tanh x` in the same vectorisable form: for `f32`
    /// `sign(x)·(1 − e)/(1 + e)` with `e = e^{−2|x|}` through [`exp_f32`],
    /// absolute error ≤ 2.4e-7; for `f64` `libm`'s `tanh`.
    fn vtanh(self) -> Self;
    /// `e^x` in the same vectorisable form: for `f32` [`exp_f32`] (relative
    /// error ≤ 2 ulp, the argument clamped to [−87.3, 88.3]); for `f64`
    /// `libm`'s `exp`.
    fn vexp(self) -> Self;
}

/// `e^x` for `f32` without a branch or a library call, so that a loop of it
/// vectorises: `x = n·ln 2 + r` with `n = round(x/ln 2)` (the magic-number
/// rounding `(x·log₂e + 1.5·2²³) − 1.5·2²³`), `|r| ≤ ln2/2`, and
/// `e^r = 1 + r + r²·P(r)` with Cephes' `expf` minimax polynomial `P` of
/// degree 5; then `2ⁿ` is put into the exponent bits. `x` is clamped to
/// `[−87.3, 88.3]` first (so the result is finite and normal; `e^x` of a NaN
/// is NaN). Relative error ≤ 2 ulp on the whole range (this module's tests).
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const MAGIC: f32 = 12_582_912.0; // 1.5·2²³
    let x = x.clamp(-87.3, 88.3);
    let n = (x * LOG2E + MAGIC) - MAGIC;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.987_569_2e-4;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let e = 1.0 + r + r * r * p;
    // n ∈ [−126, 128]: 2ⁿ as exponent bits (n + 127 ≥ 1, so normal). n is
    // read from the bits of n + 1.5·2²³ (exact: |n| < 2²²), whose mantissa
    // holds 2²² + n, not with `n as i32`: a float-to-int cast saturates, which
    // keeps the loop from vectorising (the value is the same).
    let biased = (n + MAGIC).to_bits().wrapping_sub(MAGIC.to_bits()); // n, two's complement
    let scale = f32::from_bits(biased.wrapping_add(127) << 23);
    e * scale
}

/// `erf x` for `f32` without a branch or a library call, so that a loop of
/// it vectorises (GELU's forward and backward; `libm::erff` was 12% of a
/// character-GPT training step): `x` clamped to `[−4, 4]` (beyond, `erf` is
/// ±1 in `f32`), then Eigen's rational minimax form `x·P(x²)/Q(x²)`, `P` of
/// degree 6 and `Q` of degree 4 in `x²`. Absolute error ≤ 3.5e-7 on the
/// whole line, about 3 ulp near ±1 (this module's tests, against `libm`'s
/// `f64` `erf`); `erf` of a NaN is NaN.
#[inline(always)]
pub fn erf_f32(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let p = -2.726_142_3e-10f32;
    let p = p * x2 + 2.770_681_4e-8;
    let p = p * x2 + -2.101_024e-6;
    let p = p * x2 + -5.692_506_4e-5;
    let p = p * x2 + -7.349_906_3e-4;
    let p = p * x2 + -2.954_6e-3;
    let p = p * x2 + -1.609_603_3e-2;
    let q = -1.456_607_2e-5f32;
    let q = q * x2 + -2.133_740_6e-4;
    let q = q * x2 + -1.682_827e-3;
    let q = q * x2 + -7.373_329e-3;
    let q = q * x2 + -1.426_474e-2;
    x * p / q
}

impl Elem for f32 {
    #[inline(always)]
    fn of(x: f64) -> Self {
        x as f32
    }
    #[inline(always)]
    fn f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn erf(self) -> Self {
        erf_f32(self)
    }
    #[inline(always)]
    fn vsigmoid(self) -> Self {
        1.0 / (1.0 + exp_f32(-self))
    }
    #[inline(always)]
    fn vtanh(self) -> Self {
        let e = exp_f32(-2.0 * self.abs());
        ((1.0 - e) / (1.0 + e)).copysign(self)
    }
    #[inline(always)]
    fn vexp(self) -> Self {
        exp_f32(self)
    }
}
impl Elem for f64 {
    #[inline(always)]
    fn of(x: f64) -> Self {
        x
    }
    #[inline(always)]
    fn f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn erf(self) -> Self {
        libm::erf(self)
    }
    #[inline(always)]
    fn vsigmoid(self) -> Self {
        if self >= 0.0 {
            1.0 / (1.0 + (-self).exp())
        } else {
            let e = self.exp();
            e / (1.0 + e)
        }
    }
    #[inline(always)]
    fn vtanh(self) -> Self {
        self.tanh()
    }
    #[inline(always)]
    fn vexp(self) -> Self {
        self.exp()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every 1/1024 over [−90, 90], and the extremes.
    fn grid() -> impl Iterator<Item = f32> {
        (-92_160..=92_160).map(|i| i as f32 / 1024.0).chain([
            f32::MIN,
            -1e30,
            -88.0,
            88.0,
            1e30,
            f32::MAX,
            0.0,
            -0.0,
            1e-30,
            -1e-30,
        ])
    }

    #[test]
    fn exp_f32_is_within_two_ulp_of_the_exact_value() {
        for x in (-87_000..=88_000).map(|i| i as f32 / 1000.0) {
            let exact = (x as f64).exp();
            let got = exp_f32(x) as f64;
            let ulp = (exact as f32).abs() * f32::EPSILON;
            assert!(
                (got - exact).abs() <= 2.0 * ulp as f64,
                "exp({x}) = {got}, exact {exact}"
            );
        }
        assert_eq!(exp_f32(0.0), 1.0);
        assert!(exp_f32(f32::NAN).is_nan());
        assert!(exp_f32(-1e30) > 0.0 && exp_f32(1e30).is_finite());
    }

    #[test]
    fn vsigmoid_and_vtanh_match_f64_for_f32() {
        let (mut es, mut et) = (0.0f64, 0.0f64);
        for x in grid() {
            let xd = x as f64;
            let s = 1.0 / (1.0 + (-xd).exp());
            es = es.max((x.vsigmoid() as f64 - s).abs());
            et = et.max((x.vtanh() as f64 - xd.tanh()).abs());
        }
        assert!(es <= 1.2e-7, "sigmoid: {es}");
        assert!(et <= 2.4e-7, "tanh: {et}");
        // Symmetry and the saturated ends are exact.
        assert_eq!(0.0f32.vtanh(), 0.0);
        assert_eq!(100.0f32.vtanh(), 1.0);
        assert_eq!((-100.0f32).vtanh(), -1.0);
        assert_eq!(0.0f32.vsigmoid(), 0.5);
        assert!(f32::NAN.vsigmoid().is_nan() && f32::NAN.vtanh().is_nan());
    }

    #[test]
    fn erf_f32_matches_f64() {
        let mut e = 0.0f64;
        for x in grid().chain((-8192..=8192).map(|i| i as f32 / 1024.0)) {
            e = e.max((erf_f32(x) as f64 - libm::erf(x as f64)).abs());
        }
        assert!(e <= 3.5e-7, "erf: {e}");
        assert_eq!(erf_f32(0.0), 0.0);
        // Saturated within an ulp of ±1 (the form is evaluated at ±4 there).
        assert!((erf_f32(5.0) - 1.0).abs() <= f32::EPSILON);
        assert!((erf_f32(-1e30) + 1.0).abs() <= f32::EPSILON);
        assert_eq!(erf_f32(-0.5), -erf_f32(0.5));
        assert!(erf_f32(f32::NAN).is_nan());
    }

    #[test]
    fn f64_forms_are_the_exact_ones() {
        for x in [-800.0, -3.0, -1e-9, 0.0, 0.5, 40.0, 800.0f64] {
            assert_eq!(x.vtanh(), x.tanh());
            let s = if x >= 0.0 {
                1.0 / (1.0 + (-x).exp())
            } else {
                x.exp() / (1.0 + x.exp())
            };
            assert_eq!(x.vsigmoid(), s);
        }
    }
}
