//! kiln's matrix product for the CPU device: `C = α·A·B + β·C` with `A` and
//! `B` given by arbitrary row and column strides (so a transposed operand is
//! a stride, never a copy) and `C` row-major.
//!
//! The classic BLIS structure (Goto's algorithm):
//!
//! * `B` is packed in panels of `KC × NC` (kept in L3), cut into slivers of
//!   `NR` columns; `A` in blocks of `MC × KC` (kept in L2), cut into slivers
//!   of `MR` rows; a microkernel multiplies one A sliver by one B sliver into
//!   an `MR × NR` tile of `C` held in registers (`kernels.rs`: AVX2+FMA 6×16
//!   for `f32` and 6×8 for `f64`, chosen at run time by CPU feature
//!   detection, and a portable 4×8 kernel for everything else).
//! * The packing buffers are thread-local and grow to the largest size a
//!   thread has needed, then are reused: after the first call of a given
//!   size, a product allocates nothing.
//! * Products with enough work are split into one block of `C` columns (or
//!   rows, for narrow `C`) per thread, run on [`par`]'s pool; each thread
//!   packs its own operands.
//! * `m = 1` with contiguous dot products (a linear layer at batch 1) takes a
//!   GEMV path: no packing, each weight read once.
//!
//! Every element of `C` is summed in the same order whatever the thread
//! count: blocks of `KC` in order, and inside a block the `p` loop in order.

pub(crate) mod kernels;
pub(crate) mod par;

use crate::elem::Elem;
use kernels::Kernel;
use std::any::TypeId;
use std::cell::RefCell;

/// An operand: element `(i, j)` is at `ptr + i·rs + j·cs`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mat<E> {
    pub ptr: *const E,
    pub rs: isize,
    pub cs: isize,
}

impl<E> Mat<E> {
    /// The address of element `(i, j)`.
    ///
    /// # Safety
    /// `ptr + i·rs + j·cs` lies inside (or one past the end of) the allocation
    /// `ptr` points into, as `pointer::offset` requires; in practice `(i, j)`
    /// is an element of the operand (or the row/column just past it).
    #[inline(always)]
    unsafe fn at(&self, i: usize, j: usize) -> *const E {
        // SAFETY: the offset stays inside the operand's allocation (the
        // caller's obligation above), so it cannot overflow `isize` either.
        unsafe { self.ptr.offset(i as isize * self.rs + j as isize * self.cs) }
    }
}

/// Below this many multiply–adds a product runs on one thread (a hand-off
/// costs about a microsecond; one core does ~2·10⁵ multiply–adds in that time
/// only at full speed, so smaller products are not worth splitting).
const PAR_MIN_MACS: usize = 1 << 17;

/// Products with at most this many outputs and a contraction of at least
/// [`DOT_MIN_K`], whose operands are both contiguous along the contraction
/// (`C = A·Bᵀ` with row-major `A` and `B`: a convolution's weight gradient),
/// are computed as blocked dot products ([`dot_small`]) instead of packing:
/// packing would transpose all of `B` to use each element a few times.
const DOT_MAX_MN: usize = 4096;
/// See [`DOT_MAX_MN`].
const DOT_MIN_K: usize = 512;
/// At most this many rows of `C`, and `B`'s rows contiguous: `B` is read in
/// place instead of packed (each element is used by so few rows of `A` that
/// packing would cost as much as the product: a convolution's forward pass).
const DIRECT_B_MAX_M: usize = 18;

/// The kernel for `E` on this CPU.
pub(crate) fn kernel<E: Elem>() -> Kernel<E> {
    #[cfg(target_arch = "x86_64")]
    if kernels::avx2::available() {
        if TypeId::of::<E>() == TypeId::of::<f32>() {
            // SAFETY: the `TypeId`s are equal, so `E` is `f32` and both sides
            // are the same type: `transmute_copy` is a plain copy of a `Copy` value.
            return unsafe {
                std::mem::transmute_copy::<Kernel<f32>, Kernel<E>>(&kernels::avx2::f32_kernel())
            };
        }
        if TypeId::of::<E>() == TypeId::of::<f64>() {
            // SAFETY: as above, `E` is `f64` (equal `TypeId`s).
            return unsafe {
                std::mem::transmute_copy::<Kernel<f64>, Kernel<E>>(&kernels::avx2::f64_kernel())
            };
        }
    }
    kernels::generic_kernel::<E>()
}

/// The name of the kernel used for `E` (for benchmarks and docs).
pub fn kernel_name<E: Elem>() -> &'static str {
    kernel::<E>().name
}

/// `C[m×n] = α·A·B + β·C`, `A` of `m × k`, `B` of `k × n`, `C` row-major with
/// row stride `ldc`. With `β = 0`, `C` is not read.
///
/// # Safety
/// Every element `A(i, p)`, `B(p, j)` and `C[i·ldc + j]` (`i < m`, `j < n`,
/// `p < k`) lies inside a live allocation; `C` is valid for writes (and for
/// reads when `β ≠ 0`); `ldc ≥ n`, so the rows of `C` do not overlap (threads
/// write different rows or columns); `C` does not overlap `A` or `B`. The CPU
/// device establishes all of this with `Gemm::check` before calling.
#[allow(clippy::too_many_arguments)] // BLAS's argument list
pub(crate) unsafe fn gemm<E: Elem>(
    m: usize,
    n: usize,
    k: usize,
    alpha: E,
    a: Mat<E>,
    b: Mat<E>,
    beta: E,
    c: *mut E,
    ldc: usize,
) {
    // SAFETY: the caller's obligations are `gemm_with`'s; `kernel` returns a
    // kernel that runs on this CPU (AVX2 only when `avx2::available()`).
    unsafe {
        gemm_with(
            kernel::<E>(),
            par::threads(),
            m,
            n,
            k,
            alpha,
            a,
            b,
            beta,
            c,
            ldc,
        )
    }
}

/// [`gemm`] with a given kernel and thread count (tests run every kernel).
///
/// # Safety
/// Those of [`gemm`], and `kern` runs on this CPU (the AVX2 kernels only
/// where `kernels::avx2::available()`): its name selects the AVX2-only
/// `dot_small` path too.
#[allow(clippy::too_many_arguments)] // BLAS's argument list plus kernel and threads
pub(crate) unsafe fn gemm_with<E: Elem>(
    kern: Kernel<E>,
    threads: usize,
    m: usize,
    n: usize,
    k: usize,
    alpha: E,
    a: Mat<E>,
    b: Mat<E>,
    beta: E,
    c: *mut E,
    ldc: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 || alpha == E::zero() {
        for i in 0..m {
            for j in 0..n {
                // SAFETY: `i < m`, `j < n`: an element of C (caller's
                // obligation), read only when β ≠ 0.
                unsafe {
                    let d = c.add(i * ldc + j);
                    *d = if beta == E::zero() {
                        E::zero()
                    } else {
                        beta * *d
                    };
                }
            }
        }
        return;
    }
    let par = threads > 1 && m * n * k >= PAR_MIN_MACS;
    if m == 1 && a.cs == 1 && b.rs == 1 {
        // SAFETY: `m = 1` and `a.cs = 1`: A's only row is `k` contiguous values
        // at `a.ptr`; `b.rs = 1`: each column of B is `k` contiguous values;
        // C's only row holds `n` values. All inside the caller's operands.
        unsafe {
            gemv_dot(
                n,
                k,
                alpha,
                a.ptr,
                b,
                beta,
                c,
                if par { threads } else { 1 },
            )
        };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if TypeId::of::<E>() == TypeId::of::<f32>()
        && kern.name == kernels::avx2::f32_kernel().name
        && a.cs == 1
        && b.rs == 1
        && m * n <= DOT_MAX_MN
        && k >= DOT_MIN_K
    {
        // SAFETY: equal `TypeId`s make `E` `f32`, so the transmutes are
        // copies between identical types and `c` really points to `f32`s.
        // `dot_small`'s conditions: the kernel is the AVX2 one, which the caller
        // only passes where AVX2 and FMA exist; `a.cs = 1` and `b.rs = 1` are
        // checked just above; `m, n ≥ 1` (returned early otherwise); the
        // operands are the caller's, valid for the whole product.
        unsafe {
            let (a, b) = (
                std::mem::transmute_copy::<Mat<E>, Mat<f32>>(&a),
                std::mem::transmute_copy::<Mat<E>, Mat<f32>>(&b),
            );
            dot_small(
                m,
                n,
                k,
                alpha.f64() as f32,
                a,
                b,
                beta.f64() as f32,
                c as *mut f32,
                ldc,
                if par { threads } else { 1 },
            );
        }
        return;
    }
    if !par {
        // SAFETY: `m, n, k ≥ 1` (returned early above); the operands and the
        // kernel are the caller's, valid for this product.
        unsafe { blocked(&kern, m, n, k, alpha, a, b, beta, c, ldc) };
        return;
    }
    // One block of C per thread: columns when C is wide enough (each thread
    // packs only its part of B), rows otherwise.
    let (by_cols, unit, dim) = if n >= kern.nr * threads {
        (true, kern.nr, n)
    } else {
        (false, kern.mr, m)
    };
    let units = dim.div_ceil(unit);
    let parts = threads.min(units);
    let (cp, ap, bp) = (par::SyncPtr(c), a, b);
    let (ap, bp) = (SendMat(ap), SendMat(bp));
    par::for_each(parts, &|t| {
        let lo = (units * t / parts * unit).min(dim);
        let hi = (units * (t + 1) / parts * unit).min(dim);
        if lo >= hi {
            return;
        }
        let (a, b) = (ap.get(), bp.get());
        // SAFETY: task `t` gets `lo..hi`, and these ranges do not overlap
        // between tasks, so each task writes its own columns (or rows) of C:
        // with `ldc ≥ n` (caller's obligation) no element of C is written by
        // two threads. `lo < hi ≤ n` (or `≤ m`), so `b.at(0, lo)`, `a.at(lo, 0)`
        // and `c + lo` (`c + lo·ldc`) address elements of the operands, and the
        // sub-product stays inside them. A and B are only read. `par::for_each`
        // returns only after every task has, so the caller's pointers outlive
        // the tasks; `m, n, k ≥ 1` as `blocked` needs.
        unsafe {
            if by_cols {
                let b = Mat {
                    ptr: b.at(0, lo),
                    ..b
                };
                blocked(
                    &kern,
                    m,
                    hi - lo,
                    k,
                    alpha,
                    a,
                    b,
                    beta,
                    cp.get().add(lo),
                    ldc,
                );
            } else {
                let a = Mat {
                    ptr: a.at(lo, 0),
                    ..a
                };
                blocked(
                    &kern,
                    hi - lo,
                    n,
                    k,
                    alpha,
                    a,
                    b,
                    beta,
                    cp.get().add(lo * ldc),
                    ldc,
                );
            }
        }
    });
}

/// An operand shared by the tasks of one product (read-only).
#[derive(Clone, Copy)]
struct SendMat<E>(Mat<E>);
// SAFETY: a `Mat` is a raw pointer plus strides; the tasks of one product only
// read through it (never write), while the caller's `gemm` contract keeps the
// operand alive and unmodified until `par::for_each` has joined every task.
// Reading `E` values from other threads needs `E: Send` (and `Elem`s are
// plain numbers).
unsafe impl<E: Send> Send for SendMat<E> {}
// SAFETY: as for `Send`: shared access is read-only.
unsafe impl<E: Send> Sync for SendMat<E> {}

impl<E: Copy> SendMat<E> {
    #[inline(always)]
    fn get(&self) -> Mat<E> {
        self.0
    }
}

/// A cache line, so packing buffers are 64-byte aligned.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);

thread_local! {
    /// This thread's packing buffer: grows to the largest size needed, then is reused.
    static PACK: RefCell<Vec<Line>> = const { RefCell::new(Vec::new()) };
}

/// Bytes every thread reserves for packing on its first product: the most
/// that any built-in kernel needs for `f32` or `f64` (`(MC·KC + KC·NC)`
/// elements), so a thread allocates its buffer once in its life, whatever
/// shapes come later. Reserved, not touched: pages that a thread's products
/// never reach cost no memory.
const PACK_BYTES: usize = (128 * 256 + 256 * 4096) * 8;

/// Reserves this thread's packing buffer (pool helpers call it when they start).
pub(crate) fn warm_thread() {
    with_pack::<u8, _>(0, |_| ());
}

/// Runs `f` with a packing buffer of at least `len` elements of `E`.
fn with_pack<E: Copy, R>(len: usize, f: impl FnOnce(*mut E) -> R) -> R {
    let bytes = len * std::mem::size_of::<E>();
    let lines = bytes.div_ceil(64).max(PACK_BYTES / 64);
    // The buffer is used through raw pointers only, within its capacity
    // (written by packing before it is read); its length stays 0.
    PACK.with(|cell| match cell.try_borrow_mut() {
        Ok(mut v) => {
            if v.capacity() < lines {
                v.reserve_exact(lines);
            }
            f(v.as_mut_ptr() as *mut E)
        }
        // Re-entered on this thread (cannot happen today): a buffer of its own.
        Err(_) => {
            let mut v: Vec<Line> = Vec::with_capacity(bytes.div_ceil(64).max(1));
            f(v.as_mut_ptr() as *mut E)
        }
    })
}

/// The single-threaded blocked product (see the module doc).
///
/// # Safety
/// Those of [`gemm_with`] (operands valid for the `m × n × k` product, `kern`
/// runnable on this CPU), and `m, n, k ≥ 1`. `kern.mc` is a multiple of
/// `kern.mr` and `kern.nc` of `kern.nr` (true of every kernel in
/// `kernels.rs`), so the zero-padded slivers fit in the packing buffer.
#[allow(clippy::too_many_arguments)] // BLAS's argument list plus the kernel
unsafe fn blocked<E: Elem>(
    kern: &Kernel<E>,
    m: usize,
    n: usize,
    k: usize,
    alpha: E,
    a: Mat<E>,
    b: Mat<E>,
    beta: E,
    c: *mut E,
    ldc: usize,
) {
    let (mr, nr) = (kern.mr, kern.nr);
    let mc = kern.mc.min(m.div_ceil(mr) * mr);
    let nc = kern.nc.min(n.div_ceil(nr) * nr);
    let kc = kern.kc.min(k);
    let direct_b = b.cs == 1 && b.rs > 0 && m <= DIRECT_B_MAX_M;
    // SAFETY: `buf` holds `mc·kc + kc·nc` values of `E` (`with_pack`), 64-byte
    // aligned: A's block packs into the first `mc·kc` (`mb ≤ mc` rows padded to
    // a multiple of `mr`, still `≤ mc` as `mc` is one), B's panel into the next
    // `kc·nc` (`nb ≤ nc` columns padded to a multiple of `nr`, `≤ nc`; the
    // narrow direct-B sliver needs only `kb·nr`). Every `a.at`/`b.at` is at
    // `ic < m`, `pc < k`, `jc + jr < n`: elements of the caller's operands.
    // Each kernel call gets `mr.min(mb − ir) ≤ mr` rows and `cols ≤ nr`
    // columns of C starting at row `ic + ir`, column `jc + jr`: inside C. Its B
    // is either a packed sliver (`nr` values per step) or, for direct B, `nr`
    // contiguous values (`b.cs = 1`, `cols = nr`) of each of `kb` rows,
    // `b.rs` apart: inside B. The buffer is this thread's own, so C, A and B
    // do not overlap it, and the kernel runs on this CPU (caller's obligation).
    with_pack::<E, _>(mc * kc + kc * nc, |buf| unsafe {
        let (ap, bp) = (buf, buf.add(mc * kc));
        for jc in (0..n).step_by(nc) {
            let nb = nc.min(n - jc);
            for pc in (0..k).step_by(kc) {
                let kb = kc.min(k - pc);
                if !direct_b {
                    pack_b(
                        kb,
                        nb,
                        Mat {
                            ptr: b.at(pc, jc),
                            ..b
                        },
                        bp,
                        nr,
                    );
                }
                let beta = if pc == 0 { beta } else { E::one() };
                for ic in (0..m).step_by(mc) {
                    let mb = mc.min(m - ic);
                    pack_a(
                        mb,
                        kb,
                        Mat {
                            ptr: a.at(ic, pc),
                            ..a
                        },
                        ap,
                        mr,
                    );
                    for jr in (0..nb).step_by(nr) {
                        let cols = nr.min(nb - jr);
                        let (bs, ldb) = if !direct_b {
                            (bp.add(jr * kb) as *const E, nr)
                        } else if cols == nr {
                            (b.at(pc, jc + jr), b.rs as usize)
                        } else {
                            // The last, narrow sliver: packed (zero-padded).
                            pack_b(
                                kb,
                                cols,
                                Mat {
                                    ptr: b.at(pc, jc + jr),
                                    ..b
                                },
                                bp,
                                nr,
                            );
                            (bp as *const E, nr)
                        };
                        for ir in (0..mb).step_by(mr) {
                            (kern.f)(
                                kb,
                                ap.add(ir * kb),
                                bs,
                                ldb,
                                c.add((ic + ir) * ldc + jc + jr),
                                ldc,
                                mr.min(mb - ir),
                                cols,
                                alpha,
                                beta,
                            );
                        }
                    }
                }
            }
        }
    })
}

/// Packs the `mb × kb` block `a` into slivers of `mr` rows: sliver `s`,
/// step `p`, row `r` at `dst[s·mr·kb + p·mr + r]`; rows past `mb` are zero.
///
/// # Safety
/// `a(i, p)` is readable for `i < mb`, `p < kb`; `dst` is writable for
/// `⌈mb / mr⌉ · mr · kb` values and does not overlap `a`.
unsafe fn pack_a<E: Elem>(mb: usize, kb: usize, a: Mat<E>, dst: *mut E, mr: usize) {
    for i0 in (0..mb).step_by(mr) {
        let rows = mr.min(mb - i0);
        // SAFETY: `i0 + r < mb` and `p < kb`, so every `a.at` read is an element
        // of the block; `d + p·mr + r` with `p < kb`, `r < mr` lies in sliver
        // `i0 / mr`, inside `dst`'s `⌈mb / mr⌉ · mr · kb` values. With
        // `a.rs = 1` a column's `rows` values are contiguous, and `dst` does
        // not overlap `a` (caller), as `copy_nonoverlapping` needs.
        unsafe {
            let d = dst.add(i0 * kb);
            if a.cs == 1 {
                for r in 0..rows {
                    let src = a.at(i0 + r, 0);
                    for p in 0..kb {
                        *d.add(p * mr + r) = *src.add(p);
                    }
                }
                for r in rows..mr {
                    for p in 0..kb {
                        *d.add(p * mr + r) = E::zero();
                    }
                }
            } else {
                for p in 0..kb {
                    let src = a.at(i0, p);
                    let dp = d.add(p * mr);
                    if a.rs == 1 {
                        std::ptr::copy_nonoverlapping(src, dp, rows);
                    } else {
                        for r in 0..rows {
                            *dp.add(r) = *src.offset(r as isize * a.rs);
                        }
                    }
                    for r in rows..mr {
                        *dp.add(r) = E::zero();
                    }
                }
            }
        }
    }
}

/// Packs the `kb × nb` block `b` into slivers of `nr` columns: sliver `s`,
/// step `p`, column `j` at `dst[s·nr·kb + p·nr + j]`; columns past `nb` are zero.
///
/// # Safety
/// `b(p, j)` is readable for `p < kb`, `j < nb`; `dst` is writable for
/// `⌈nb / nr⌉ · nr · kb` values and does not overlap `b`.
unsafe fn pack_b<E: Elem>(kb: usize, nb: usize, b: Mat<E>, dst: *mut E, nr: usize) {
    for j0 in (0..nb).step_by(nr) {
        let cols = nr.min(nb - j0);
        // SAFETY: `p < kb`, `j0 + j < nb`: every `b.at` read is an element of
        // the block; `d + p·nr + j` with `p < kb`, `j < nr` lies in sliver
        // `j0 / nr`, inside `dst`. With `b.cs = 1` a row's `cols` values are
        // contiguous, and `dst` does not overlap `b` (caller).
        unsafe {
            let d = dst.add(j0 * kb);
            if b.rs == 1 && b.cs != 1 {
                // Columns contiguous (a transposed weight): read down each column.
                for j in 0..cols {
                    let src = b.at(0, j0 + j);
                    for p in 0..kb {
                        *d.add(p * nr + j) = *src.add(p);
                    }
                }
                for j in cols..nr {
                    for p in 0..kb {
                        *d.add(p * nr + j) = E::zero();
                    }
                }
            } else {
                for p in 0..kb {
                    let src = b.at(p, j0);
                    let dp = d.add(p * nr);
                    if b.cs == 1 {
                        std::ptr::copy_nonoverlapping(src, dp, cols);
                    } else {
                        for j in 0..cols {
                            *dp.add(j) = *src.offset(j as isize * b.cs);
                        }
                    }
                    for j in cols..nr {
                        *dp.add(j) = E::zero();
                    }
                }
            }
        }
    }
}

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
unsafe fn dot_small(
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
unsafe fn gemv_dot<E: Elem>(
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

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> f64 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 33) as f64 / (1u64 << 31) as f64) - 0.5
    }

    /// Checks one shape against a naive f64 product, for every transpose
    /// combination, β ∈ {0, 1, 0.5}, and the given kernel and thread count.
    fn check<E: Elem>(kern: Kernel<E>, threads: usize, m: usize, n: usize, k: usize, tol: f64) {
        let mut seed = (m * 131 + n * 7 + k) as u64;
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            for beta in [0.0, 1.0, 0.5] {
                let (lda, ldb, ldc) = (
                    if ta { m } else { k } + 1,
                    if tb { k } else { n } + 2,
                    n + 3,
                );
                let a: Vec<E> = (0..(if ta { k } else { m }) * lda + 1)
                    .map(|_| E::of(lcg(&mut seed)))
                    .collect();
                let b: Vec<E> = (0..(if tb { n } else { k }) * ldb + 1)
                    .map(|_| E::of(lcg(&mut seed)))
                    .collect();
                let mut c: Vec<E> = (0..m * ldc).map(|_| E::of(lcg(&mut seed))).collect();
                if beta == 0.0 {
                    c.iter_mut().for_each(|v| *v = E::nan()); // β = 0 must not read C
                }
                let c0 = c.clone();
                let am = if ta {
                    Mat {
                        ptr: a.as_ptr(),
                        rs: 1,
                        cs: lda as isize,
                    }
                } else {
                    Mat {
                        ptr: a.as_ptr(),
                        rs: lda as isize,
                        cs: 1,
                    }
                };
                let bm = if tb {
                    Mat {
                        ptr: b.as_ptr(),
                        rs: 1,
                        cs: ldb as isize,
                    }
                } else {
                    Mat {
                        ptr: b.as_ptr(),
                        rs: ldb as isize,
                        cs: 1,
                    }
                };
                let alpha = 1.25;
                // SAFETY: `a`, `b` and `c` are vectors sized for the strides
                // (`lda`, `ldb`, `ldc ≥ n`) of `m × k`, `k × n` and `m × n`
                // operands, distinct allocations; `kern` comes from
                // `all_kernels_*`, which lists AVX2 only where available.
                unsafe {
                    gemm_with(
                        kern,
                        threads,
                        m,
                        n,
                        k,
                        E::of(alpha),
                        am,
                        bm,
                        E::of(beta),
                        c.as_mut_ptr(),
                        ldc,
                    )
                };
                for i in 0..m {
                    for j in 0..n {
                        let mut s = 0.0;
                        for p in 0..k {
                            // SAFETY: `(i, p)` and `(p, j)` are elements of
                            // the operands, inside `a` and `b`.
                            let av = unsafe { *am.at(i, p) }.f64();
                            // SAFETY: as above.
                            let bv = unsafe { *bm.at(p, j) }.f64();
                            s += av * bv;
                        }
                        let old = if beta == 0.0 {
                            0.0
                        } else {
                            c0[i * ldc + j].f64() * beta
                        };
                        let want = alpha * s + old;
                        let got = c[i * ldc + j].f64();
                        assert!(
                            (got - want).abs() <= tol * (1.0 + want.abs()) * (k as f64).sqrt(),
                            "{} m{m} n{n} k{k} ta{ta} tb{tb} β{beta} t{threads} ({i},{j}): {got} vs {want}",
                            kern.name
                        );
                    }
                }
                // Padding columns of C are untouched.
                for i in 0..m {
                    for j in n..ldc {
                        assert!(c[i * ldc + j].f64().to_bits() == c0[i * ldc + j].f64().to_bits());
                    }
                }
            }
        }
    }

    const SHAPES: &[(usize, usize, usize)] = &[
        (1, 1, 1),
        (1, 37, 19),
        (1, 300, 260),
        (5, 3, 2),
        (6, 16, 8),
        (7, 17, 9),
        (13, 33, 1),
        (64, 10, 128),
        (150, 40, 300),
        (37, 300, 70),
        (3, 4100, 3),
        (16, 100, 150),
        (6, 25, 600),
        (5, 7, 513),
        (16, 150, 1030),
    ];

    fn all_kernels_f64() -> Vec<Kernel<f64>> {
        let mut v = vec![kernels::generic_kernel::<f64>()];
        #[cfg(target_arch = "x86_64")]
        if kernels::avx2::available() {
            v.push(kernels::avx2::f64_kernel());
        }
        v
    }

    fn all_kernels_f32() -> Vec<Kernel<f32>> {
        let mut v = vec![kernels::generic_kernel::<f32>()];
        #[cfg(target_arch = "x86_64")]
        if kernels::avx2::available() {
            v.push(kernels::avx2::f32_kernel());
        }
        v
    }

    #[test]
    fn f64_matches_naive() {
        for kern in all_kernels_f64() {
            for &(m, n, k) in SHAPES {
                for threads in [1, 2, 3] {
                    check(kern, threads, m, n, k, 1e-14);
                }
            }
        }
    }

    #[test]
    fn f32_matches_naive() {
        for kern in all_kernels_f32() {
            for &(m, n, k) in SHAPES {
                for threads in [1, 2] {
                    check(kern, threads, m, n, k, 2e-6);
                }
            }
        }
    }

    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        let (m, n, k) = (70, 90, 600);
        let mut seed = 3;
        let a: Vec<f32> = (0..m * k).map(|_| lcg(&mut seed) as f32).collect();
        let b: Vec<f32> = (0..k * n).map(|_| lcg(&mut seed) as f32).collect();
        let run = |t: usize| {
            let mut c = vec![0.0f32; m * n];
            let am = Mat {
                ptr: a.as_ptr(),
                rs: k as isize,
                cs: 1,
            };
            let bm = Mat {
                ptr: b.as_ptr(),
                rs: n as isize,
                cs: 1,
            };
            // SAFETY: `a` is `m × k`, `b` `k × n` and `c` `m × n`, all
            // row-major and separate; `kernel()` picks a kernel this CPU runs.
            unsafe {
                gemm_with(
                    kernel::<f32>(),
                    t,
                    m,
                    n,
                    k,
                    1.0,
                    am,
                    bm,
                    0.0,
                    c.as_mut_ptr(),
                    n,
                )
            };
            c
        };
        let one = run(1);
        assert_eq!(one, run(2));
        assert_eq!(one, run(3));
    }
}
