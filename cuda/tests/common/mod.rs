//! Helpers shared by the CUDA test binaries: comparing a device with the CPU
//! through the `Backend` trait on random inputs.
#![allow(dead_code)]

use kiln_core::{Backend, Cpu, Elem, Rng};
use kiln_cuda::{Cuda, CudaBuf};
use rand::Rng as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The emulated CUDA device, its shim library built once per test binary.
pub fn emulated() -> Cuda {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    let lib = LIB.get_or_init(|| {
        // Shared by the test binaries: the library is rebuilt only when the
        // kernels or the shim change.
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("kiln-cuda-shim");
        let shim = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/shim");
        kiln_cuda::emulate::build(&out, &shim, None)
            .unwrap_or_else(|e| panic!("building the shim library: {e}"))
    });
    Cuda::emulated(lib).unwrap()
}

/// Uniform values in `[-s, s]`.
pub fn rand_vec<E: Elem>(rng: &mut Rng, n: usize, s: f64) -> Vec<E> {
    (0..n).map(|_| E::of(rng.random_range(-s..=s))).collect()
}

/// Values in `[-s, -0.05] ∪ [0.05, s]` (away from ReLU's kink).
pub fn rand_nonzero<E: Elem>(rng: &mut Rng, n: usize, s: f64) -> Vec<E> {
    (0..n)
        .map(|_| {
            let v = rng.random_range(0.05..=s);
            E::of(if rng.random_bool(0.5) { v } else { -v })
        })
        .collect()
}

pub fn up<E: Elem>(d: &Cuda, v: &[E]) -> CudaBuf<E> {
    let mut b = <Cuda as Backend<E>>::zeros::<E>(d, v.len()).unwrap();
    <Cuda as Backend<E>>::upload(d, v, &mut b).unwrap();
    b
}

pub fn up_u32<E: Elem>(d: &Cuda, v: &[u32]) -> CudaBuf<u32> {
    let mut b = <Cuda as Backend<E>>::zeros::<u32>(d, v.len()).unwrap();
    <Cuda as Backend<E>>::upload(d, v, &mut b).unwrap();
    b
}

pub fn down<E: Elem>(d: &Cuda, b: &CudaBuf<E>) -> Vec<E> {
    let mut v = vec![E::zero(); b.len()];
    <Cuda as Backend<E>>::download(d, b, &mut v).unwrap();
    v
}

/// Largest `|a − b| / (1 + |b|)`.
pub fn max_err<E: Elem>(got: &[E], want: &[E]) -> f64 {
    assert_eq!(got.len(), want.len(), "lengths differ");
    got.iter()
        .zip(want)
        .map(|(a, b)| {
            let (a, b) = (a.f64(), b.f64());
            if a.is_nan() && b.is_nan() {
                0.0
            } else {
                (a - b).abs() / (1.0 + b.abs())
            }
        })
        .fold(
            0.0,
            |m: f64, e| if e.is_nan() { f64::INFINITY } else { m.max(e) },
        )
}

/// Tolerance of the emulated device (same formulas, other summation orders).
pub fn tol<E: Elem>() -> f64 {
    if std::mem::size_of::<E>() == 4 {
        2e-5
    } else {
        1e-12
    }
}

/// Asserts `max_err(got, want) ≤ tol` and returns the error.
pub fn check<E: Elem>(what: &str, got: &[E], want: &[E], tol: f64) -> f64 {
    let e = max_err(got, want);
    assert!(
        e <= tol,
        "{what} ({}): max |a − b|/(1 + |b|) = {e:e} > {tol:e}",
        E::NAME
    );
    e
}

/// A CPU buffer.
pub fn cpu<E: Elem>(v: &[E]) -> Vec<E> {
    v.to_vec()
}

pub const CPU: Cpu = Cpu;
