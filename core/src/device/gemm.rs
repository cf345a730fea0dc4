//! The descriptors of matrix products on sub-matrices of row-major buffers,
//! [`Gemm`] and its strided batch [`GemmBatched`], with the bounds checks
//! every device runs before launching one (re-exported by [`crate::device`]).

use super::Acc;
use crate::error::{Error, Result};

/// A matrix product on sub-matrices of row-major buffers:
/// `C = α · op(A) · op(B) + β · C` with `op(A)` of size `m × k`, `op(B)` of size
/// `k × n`, `C` of size `m × n`. `lda`, `ldb`, `ldc` are row strides (elements
/// between consecutive rows of the stored, untransposed matrix) and the offsets
/// locate the first element.
#[allow(missing_docs)] // BLAS's and torch.optim's names, documented above
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Gemm {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub trans_a: bool,
    pub trans_b: bool,
    pub a_off: usize,
    pub lda: usize,
    pub b_off: usize,
    pub ldb: usize,
    pub c_off: usize,
    pub ldc: usize,
    pub alpha: f64,
    pub beta: f64,
}

impl Gemm {
    /// A dense product `C[m×n] = op(A)·op(B)` with contiguous operands (β = 0).
    pub fn dense(m: usize, n: usize, k: usize, trans_a: bool, trans_b: bool) -> Self {
        Gemm {
            m,
            n,
            k,
            trans_a,
            trans_b,
            a_off: 0,
            lda: if trans_a { m } else { k },
            b_off: 0,
            ldb: if trans_b { k } else { n },
            c_off: 0,
            ldc: n,
            alpha: 1.0,
            beta: 0.0,
        }
    }
    /// The same product accumulating into `C` according to `acc`.
    pub fn acc(mut self, acc: Acc) -> Self {
        self.beta = if acc == Acc::Add { 1.0 } else { 0.0 };
        self
    }

    /// Checks the product against buffers of `a_len`, `b_len` and `c_len`
    /// elements: every leading dimension must be at least its stored matrix's
    /// row length (as BLAS's `lda ≥ cols`; a smaller `ldc` would make rows
    /// of `C` overlap, and the parallel split would then write one element from
    /// two threads), and every element the product reads or writes must lie
    /// inside its buffer. Each device calls this before launching, so the
    /// checks are written once.
    pub fn check(&self, a_len: usize, b_len: usize, c_len: usize) -> Result<()> {
        let (m, n, k) = (self.m, self.n, self.k);
        let (a_rows, a_cols) = if self.trans_a { (k, m) } else { (m, k) };
        let (b_rows, b_cols) = if self.trans_b { (n, k) } else { (k, n) };
        let operands = [
            ("gemm A", "lda", a_rows, a_cols, self.a_off, self.lda, a_len),
            ("gemm B", "ldb", b_rows, b_cols, self.b_off, self.ldb, b_len),
            ("gemm C", "ldc", m, n, self.c_off, self.ldc, c_len),
        ];
        for (what, ld_name, rows, cols, off, ld, len) in operands {
            if rows > 0 && cols > 0 && ld < cols {
                return Err(Error::invalid(
                    what,
                    format!(
                        "{ld_name} = {ld} is smaller than the row length {cols} of the stored {rows}×{cols} matrix (rows would overlap)"
                    ),
                ));
            }
            let end = if rows == 0 || cols == 0 {
                off
            } else {
                (rows - 1)
                    .checked_mul(ld)
                    .and_then(|v| v.checked_add(off))
                    .and_then(|v| v.checked_add(cols))
                    .unwrap_or(usize::MAX)
            };
            if len < end {
                return Err(Error::invalid(
                    what,
                    format!(
                        "kiln internal error: buffer holds {len} elements, the {rows}×{cols} matrix at offset {off} with {ld_name} = {ld} needs {end}"
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// `batch` matrix products of one shape at strided offsets (cuBLAS's
/// `gemmStridedBatched`): product `i` is [`Gemm`] `gemm` with its offsets
/// moved to `a_off + i·stride_a`, `b_off + i·stride_b`, `c_off + i·stride_c`.
/// A stride of 0 for `A` or `B` broadcasts that operand to every product
/// (one weight matrix against a batch of inputs). Attention's per-head
/// products use it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GemmBatched {
    /// The shape, transposes, leading dimensions, α, β and the first product's offsets.
    pub gemm: Gemm,
    /// Number of products.
    pub batch: usize,
    /// Elements between consecutive `A` operands (0: the same `A` for all).
    pub stride_a: usize,
    /// Elements between consecutive `B` operands (0: the same `B` for all).
    pub stride_b: usize,
    /// Elements between consecutive `C` operands (products must not overlap).
    pub stride_c: usize,
}

impl GemmBatched {
    /// Product `i` as a plain [`Gemm`], or `None` when an offset overflows.
    pub fn product(&self, i: usize) -> Option<Gemm> {
        let mut g = self.gemm;
        g.a_off = i.checked_mul(self.stride_a)?.checked_add(g.a_off)?;
        g.b_off = i.checked_mul(self.stride_b)?.checked_add(g.b_off)?;
        g.c_off = i.checked_mul(self.stride_c)?.checked_add(g.c_off)?;
        Some(g)
    }

    /// Checks the batch against buffers of `a_len`, `b_len` and `c_len`
    /// elements, once for all products: the leading dimensions and lengths
    /// as [`Gemm::check`] on the last product (offsets only grow, so it
    /// reaches furthest), and no two products of `C` sharing an element:
    /// either `stride_c ≥ (m − 1)·ldc + n` (products one after another) or
    /// `stride_c ≥ n` with all products side by side inside one row stride,
    /// `(batch − 1)·stride_c + n ≤ ldc` (heads interleaved in a `[T, H·d]`
    /// output). Overlapping products would make the result depend on the
    /// order of the products, and the devices run them in parallel.
    pub fn check(&self, a_len: usize, b_len: usize, c_len: usize) -> Result<()> {
        if self.batch == 0 {
            return self.gemm.check(a_len, b_len, c_len);
        }
        let last = self.product(self.batch - 1).ok_or_else(|| {
            Error::invalid(
                "gemm_batched",
                format!(
                    "offsets of product {} overflow (strides A {}, B {}, C {})",
                    self.batch - 1,
                    self.stride_a,
                    self.stride_b,
                    self.stride_c
                ),
            )
        })?;
        last.check(a_len, b_len, c_len).map_err(|e| match e {
            Error::InvalidArgument { op, msg } => Error::invalid(
                op,
                format!(
                    "{msg} (product {} of a batch of {}, strides A {}, B {}, C {})",
                    self.batch - 1,
                    self.batch,
                    self.stride_a,
                    self.stride_b,
                    self.stride_c
                ),
            ),
            other => other,
        })?;
        let g = &self.gemm;
        if self.batch > 1 && g.m > 0 && g.n > 0 {
            let footprint = (g.m - 1) * g.ldc + g.n;
            let after = self.stride_c >= footprint;
            let side_by_side = self.stride_c >= g.n
                && (self.batch - 1)
                    .checked_mul(self.stride_c)
                    .and_then(|v| v.checked_add(g.n))
                    .is_some_and(|end| end <= g.ldc);
            if !after && !side_by_side {
                return Err(Error::invalid(
                    "gemm_batched C",
                    format!(
                        "stride_c = {} makes the {} products of {}×{} (ldc = {}) overlap: it must be at least their footprint {footprint}, or at least {} with all products side by side within ldc",
                        self.stride_c, self.batch, g.m, g.n, g.ldc, g.n
                    ),
                ));
            }
        }
        Ok(())
    }
}
