//! What the interleaved A/B examples (`gemm_ab`, `conv_direct_ab`) share:
//! reading a numeric flag, timing a closure, the median and range of the
//! rounds, and fixed operand values.
//!
//! Included by each example as a module (`#[path = "common/ab.rs"]`).

use std::time::Instant;

/// The number after `name` on the command line, or `default`.
pub fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().expect("a number"))
        .unwrap_or(default)
}

/// Median and fastest seconds of `f` over `reps` calls (after one warm-up).
pub fn time_fn(reps: usize, mut f: impl FnMut()) -> (f64, f64) {
    f();
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    (t[reps / 2], t[0])
}

/// The median of `v` (sorted in place; the upper one of an even count).
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The smallest and largest of `v` (`(f64::MAX, 0)` when empty).
#[allow(dead_code)] // not every example that includes this module needs it
pub fn min_max(v: &[f64]) -> (f64, f64) {
    v.iter()
        .fold((f64::MAX, 0.0f64), |(l, h), &x| (l.min(x), h.max(x)))
}

/// `len` fixed operand values in [−0.06, 0.06], a pattern of period 13
/// stepped by `s` (different `s`, different operands).
#[allow(dead_code)] // not every example that includes this module needs it
pub fn vals(len: usize, s: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((i * s % 13) as f32 - 6.0) * 0.01)
        .collect()
}
