//! Matrix products through cuBLAS.
//!
//! kiln's matrices are row-major and cuBLAS's are column-major. A row-major
//! `r × c` matrix with row stride `ld` is, read column-major, its transpose
//! (`c × r`, leading dimension `ld`). So `C = α·op(A)·op(B) + β·C` on row-major
//! buffers is computed as the column-major product
//!
//! ```text
//! Cᵀ = α · op(B)ᵀ · op(A)ᵀ + β · Cᵀ
//! ```
//!
//! i.e. cuBLAS's `A` is kiln's `B` and vice versa, `m` and `n` swap, and each
//! transpose flag carries over to the operand it came with. [`cublas_args`]
//! computes every argument of that call; the tests run a column-major
//! reference product ([`reference_gemm`]) on exactly those arguments and
//! compare with the CPU device, so layout bugs surface without a GPU.

use kiln_core::{Gemm, GemmBatched};
use num_traits::Float;

/// Which of `Backend::gemm`'s operands a cuBLAS operand is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operand {
    /// kiln's `a`.
    A,
    /// kiln's `b`.
    B,
}

/// The arguments of one `cublas{S,D}gemm` call (column-major semantics):
/// `C[m×n] = α · opa(Aᶜ)[m×k] · opb(Bᶜ)[k×n] + β · C`, where `Aᶜ` starts
/// `a_off` elements into operand `a` with leading dimension `lda`, and so on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CublasArgs {
    /// `CUBLAS_OP_T` for cuBLAS's first operand.
    pub transa: bool,
    /// `CUBLAS_OP_T` for cuBLAS's second operand.
    pub transb: bool,
    /// Rows of cuBLAS's `C` (kiln's `n`).
    pub m: usize,
    /// Columns of cuBLAS's `C` (kiln's `m`).
    pub n: usize,
    /// The inner dimension.
    pub k: usize,
    /// α.
    pub alpha: f64,
    /// Which kiln operand is cuBLAS's first (always `B`).
    pub a: Operand,
    /// Element offset of cuBLAS's first operand.
    pub a_off: usize,
    /// Its leading dimension.
    pub lda: usize,
    /// Which kiln operand is cuBLAS's second (always `A`).
    pub b: Operand,
    /// Element offset of cuBLAS's second operand.
    pub b_off: usize,
    /// Its leading dimension.
    pub ldb: usize,
    /// β.
    pub beta: f64,
    /// Element offset of `C`.
    pub c_off: usize,
    /// Leading dimension of `C`.
    pub ldc: usize,
}

/// cuBLAS requires `ld ≥ max(1, rows)` of the stored column-major matrix even
/// where the stride is never used (a single column); raise it there only.
fn ld_for(ld: usize, rows: usize, cols: usize) -> usize {
    if cols <= 1 {
        ld.max(rows).max(1)
    } else {
        ld.max(1)
    }
}

/// The cuBLAS call computing the row-major product `g` (see the module doc).
pub fn cublas_args(g: &Gemm) -> CublasArgs {
    let (m, n, k) = (g.n, g.m, g.k);
    // cuBLAS's A is kiln's B read column-major: stored rows × cols =
    // (trans_b ? k × n : n × k) column-major, i.e. kiln's row-major B transposed.
    let (a_rows, a_cols) = if g.trans_b { (k, m) } else { (m, k) };
    let (b_rows, b_cols) = if g.trans_a { (n, k) } else { (k, n) };
    CublasArgs {
        transa: g.trans_b,
        transb: g.trans_a,
        m,
        n,
        k,
        alpha: g.alpha,
        a: Operand::B,
        a_off: g.b_off,
        lda: ld_for(g.ldb, a_rows, a_cols),
        b: Operand::A,
        b_off: g.a_off,
        ldb: ld_for(g.lda, b_rows, b_cols),
        beta: g.beta,
        c_off: g.c_off,
        ldc: ld_for(g.ldc, m, n),
    }
}

/// A column-major reference `gemm` with BLAS semantics, run on cuBLAS's
/// arguments: `a` and `b` are the buffers of cuBLAS's first and second operand
/// (already chosen by [`CublasArgs::a`] and [`CublasArgs::b`]). With β = 0, `C`
/// is not read (BLAS semantics: NaNs in `C` do not propagate).
pub fn reference_gemm<T: Float>(x: &CublasArgs, a: &[T], b: &[T], c: &mut [T]) {
    let alpha = T::from(x.alpha).unwrap_or_else(T::nan);
    let beta = T::from(x.beta).unwrap_or_else(T::nan);
    for j in 0..x.n {
        for i in 0..x.m {
            let mut s = T::zero();
            for p in 0..x.k {
                let av = if x.transa {
                    a[x.a_off + p + i * x.lda]
                } else {
                    a[x.a_off + i + p * x.lda]
                };
                let bv = if x.transb {
                    b[x.b_off + j + p * x.ldb]
                } else {
                    b[x.b_off + p + j * x.ldb]
                };
                s = s + av * bv;
            }
            let cv = &mut c[x.c_off + i + j * x.ldc];
            *cv = if x.beta == 0.0 {
                alpha * s
            } else {
                alpha * s + beta * *cv
            };
        }
    }
}

/// The arguments of one `cublas{S,D}gemmStridedBatched` call: product `i`
/// is [`CublasArgs`] `args` with cuBLAS's operands moved by `i·stride_a`,
/// `i·stride_b`, `i·stride_c` elements. As in [`cublas_args`], cuBLAS's first
/// operand is kiln's `B`, so the strides swap with the operands.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CublasBatchedArgs {
    /// The arguments of product 0.
    pub args: CublasArgs,
    /// Stride of cuBLAS's first operand (kiln's `stride_b`).
    pub stride_a: usize,
    /// Stride of cuBLAS's second operand (kiln's `stride_a`).
    pub stride_b: usize,
    /// Stride of `C`.
    pub stride_c: usize,
    /// Number of products.
    pub batch: usize,
}

/// The cuBLAS call computing the row-major batch `g` (see the module doc).
pub fn cublas_batched_args(g: &GemmBatched) -> CublasBatchedArgs {
    let args = cublas_args(&g.gemm);
    let stride = |o: Operand| {
        if o == Operand::A {
            g.stride_a
        } else {
            g.stride_b
        }
    };
    CublasBatchedArgs {
        args,
        stride_a: stride(args.a),
        stride_b: stride(args.b),
        stride_c: g.stride_c,
        batch: g.batch,
    }
}

/// [`reference_gemm`] on every product of a strided batch, in order
/// (cuBLAS's semantics of `gemmStridedBatched`).
pub fn reference_gemm_batched<T: Float>(x: &CublasBatchedArgs, a: &[T], b: &[T], c: &mut [T]) {
    for i in 0..x.batch {
        let mut p = x.args;
        p.a_off += i * x.stride_a;
        p.b_off += i * x.stride_b;
        p.c_off += i * x.stride_c;
        reference_gemm(&p, a, b, c);
    }
}
