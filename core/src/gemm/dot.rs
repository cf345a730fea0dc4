//! The products computed as dot products instead of packing: [`dot_small`]
//! (few outputs, a long contraction, both operands contiguous along it) and
//! [`gemv_dot`] (a single row of `C`). [`super::gemm_with`] picks them.

#[cfg(target_arch = "x86_64")]
use super::blocked::with_pack;
#[cfg(target_arch = "x86_64")]
use super::kernels;
use super::{par, Mat, SendMat};
use crate::elem::Elem;
#[cfg(target_arch = "x86_64")]
use std::any::TypeId;

/// `C[m×n] = α·A·B + β·C` for `f32` when both `A`'s rows and `B`'s columns
/// are contiguous along the contraction (`a.cs = 1`, `b.rs = 1`): tiles of
/// 4 rows of `A` × 3 columns of `B` as dot products, eight lanes each, the
/// contraction cut into chunks that stay in L1 with the partial sums kept in
/// this thread's buffer between chunks. Every output's lanes run over `p` in
/// order and are summed in a fixed order at the end, so the result does not
/// depend on the chunking or the threads (split by tiles of columns).
///
/// # Safety
/// AVX2 and FMA present; `m, n ≥ 1`; `a` is `m × k` with `a.cs = 1` and `b`
/// is `k × n` with `b.rs = 1`, every element readable; `c + i·ldc + j` is
/// writable (readable when `β ≠ 0`) for `i < m`, `j < n`, with `ldc ≥ n`, and
/// overlaps neither operand.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)] // BLAS's argument list plus threads
pub(super) unsafe fn dot_small(
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: Mat<f32>,
    b: Mat<f32>,
    beta: f32,
    c: *mut f32,
    ldc: usize,
    threads: usize,
) {
    use kernels::avx2::{hsum8, sdot_4x3_acc};
    const KCH: usize = 512;
    let (ib, jb) = (m.div_ceil(4), n.div_ceil(3));
    let (ap, bp, cp) = (SendMat(a), SendMat(b), par::SyncPtr(c));
    // SAFETY: the caller's obligations, and: rows `(ti·4 + i).min(m − 1)` and
    // columns `(tj·3 + j).min(n − 1)` are clamped into the operands (the
    // duplicate rows of an edge tile are computed and dropped), each read
    // `len` or `k` contiguous values from `p0` or 0, with `p0 + len ≤ k`; the
    // partial sums use `tiles · 96` values of this thread's packing buffer, 96
    // per tile at `((tj − j0)·ib + ti)·96`; only `row < m`, `col < n` are
    // stored into C. A call `run(j0, j1)` writes columns `3·j0 .. 3·j1` of C
    // only, and the tasks below get disjoint `j0..j1`, so no element of C is
    // written twice; `par::for_each` joins them before this function returns.
    let run = |j0: usize, j1: usize| unsafe {
        let (a, b, c) = (ap.get(), bp.get(), cp.get());
        let tiles = ib * (j1 - j0);
        with_pack::<f32, _>(tiles * 96, |acc| {
            std::ptr::write_bytes(acc, 0, tiles * 96);
            let k8 = k / 8 * 8;
            for p0 in (0..k8).step_by(KCH) {
                let len = KCH.min(k8 - p0);
                for tj in j0..j1 {
                    let bj = [0, 1, 2].map(|j| b.at(p0, (tj * 3 + j).min(n - 1)));
                    for ti in 0..ib {
                        let ai = [0, 1, 2, 3].map(|i| a.at((ti * 4 + i).min(m - 1), p0));
                        sdot_4x3_acc(len, ai, bj, acc.add(((tj - j0) * ib + ti) * 96));
                    }
                }
            }
            for tj in j0..j1 {
                for ti in 0..ib {
                    let t = acc.add(((tj - j0) * ib + ti) * 96);
                    for i in 0..4.min(m - ti * 4) {
                        for j in 0..3.min(n - tj * 3) {
                            let (row, col) = (ti * 4 + i, tj * 3 + j);
                            let mut s = hsum8(t.add((i * 3 + j) * 8));
                            let (ar, bc) = (a.at(row, 0), b.at(0, col));
                            for q in k8..k {
                                s = (*ar.add(q)).mul_add(*bc.add(q), s);
                            }
                            let v = alpha * s;
                            let d = c.add(row * ldc + col);
                            *d = if beta == 0.0 { v } else { beta.mul_add(*d, v) };
                        }
                    }
                }
            }
        })
    };
    let parts = threads.min(jb);
    if parts <= 1 {
        run(0, jb);
    } else {
        par::for_each(parts, &|t| run(jb * t / parts, jb * (t + 1) / parts));
    }
}

/// `c[j] = α·Σ_p a[p]·b(p, j) + β·c[j]` for `j < n`, with `a` contiguous and
/// each column of `b` contiguous (`b.rs = 1`): `n` dot products, eight at a
/// time, split over `threads` by column.
///
/// # Safety
/// `a` is readable for `k` values; `b(0, j)` for `j < n` starts `k` readable
/// contiguous values (`b.rs = 1`); `c` is writable (readable when `β ≠ 0`)
/// for `n` values and overlaps neither `a` nor `b`.
#[allow(clippy::too_many_arguments)] // BLAS's argument list plus threads
pub(super) unsafe fn gemv_dot<E: Elem>(
    n: usize,
    k: usize,
    alpha: E,
    a: *const E,
    b: Mat<E>,
    beta: E,
    c: *mut E,
    threads: usize,
) {
    let (ap, bp, cp) = (par::SyncPtr(a as *mut E), SendMat(b), par::SyncPtr(c));
    // SAFETY: `lo ≤ j < hi ≤ n`, so every column `b.at(0, j)` and output
    // `c + j` is one the caller vouched for, and dot products read `k` values
    // of `a` and of a column. The AVX2 path runs only where
    // `avx2::available()`, and only for `E = f32` (equal `TypeId`s), so the
    // pointer casts are identities. A is only read (the `*mut` in `SyncPtr`
    // is never written through). The tasks below get disjoint `lo..hi`, so each
    // element of C is written by one thread, and `par::for_each` joins them
    // before this function returns.
    let run = |lo: usize, hi: usize| unsafe {
        let (a, b, c) = (ap.get() as *const E, bp.get(), cp.get());
        let mut j = lo;
        #[cfg(target_arch = "x86_64")]
        if TypeId::of::<E>() == TypeId::of::<f32>() && kernels::avx2::available() {
            while j + 8 <= hi {
                let w = [0, 1, 2, 3, 4, 5, 6, 7].map(|r| b.at(0, j + r) as *const f32);
                let s = kernels::avx2::sdot8(k, a as *const f32, w);
                for r in 0..8 {
                    let v = alpha * E::of(s[r] as f64);
                    let d = c.add(j + r);
                    *d = if beta == E::zero() { v } else { v + beta * *d };
                }
                j += 8;
            }
            while j + 4 <= hi {
                let w = [0, 1, 2, 3].map(|r| b.at(0, j + r) as *const f32);
                let s = kernels::avx2::sdot4(k, a as *const f32, w);
                for r in 0..4 {
                    let v = alpha * E::of(s[r] as f64);
                    let d = c.add(j + r);
                    *d = if beta == E::zero() { v } else { v + beta * *d };
                }
                j += 4;
            }
        }
        while j < hi {
            let col = b.at(0, j);
            let mut lanes = [E::zero(); 8];
            let mut p = 0;
            while p + 8 <= k {
                for l in 0..8 {
                    lanes[l] = lanes[l] + *a.add(p + l) * *col.add(p + l);
                }
                p += 8;
            }
            let mut s = lanes.iter().fold(E::zero(), |x, y| x + *y);
            while p < k {
                s = s + *a.add(p) * *col.add(p);
                p += 1;
            }
            let v = alpha * s;
            let d = c.add(j);
            *d = if beta == E::zero() { v } else { v + beta * *d };
            j += 1;
        }
    };
    let parts = threads.min(n.div_ceil(8));
    if parts <= 1 {
        run(0, n);
    } else {
        let units = n.div_ceil(8);
        par::for_each(parts, &|t| {
            run(
                (units * t / parts * 8).min(n),
                (units * (t + 1) / parts * 8).min(n),
            )
        });
    }
}
