//! kiln's matrix product for the CPU device: `C = α·A·B + β·C` with `A` and
//! `B` given by arbitrary row and column strides (so a transposed operand is
//! a stride, never a copy) and `C` row-major.
//!
//! The classic BLIS structure (Goto's algorithm):
//!
//! * `B` is packed in panels of `KC × NC`, cut into slivers of `NR`
//!   columns; `A` in blocks of `MC × KC`, cut into slivers of `MR` rows; a
//!   microkernel multiplies one A sliver by one B sliver into an `MR × NR`
//!   tile of `C` held in registers. The tile loop keeps one A sliver in L1
//!   and streams the panel's B slivers past it from L2 (`NC` is chosen at
//!   run time so that the panel fills half of this core's L2, and at least
//!   1 MiB: `choice::panel_cols`), so the tiles
//!   it writes one after the other lie side by side in a row block of `C`.
//!   (With B's sliver in L1 and A's streaming, BLIS's order for its own
//!   kernel shape, consecutive tiles were `MR` rows apart, every row of a
//!   4096-wide `C` in the same L1 set, and the panel in L3: the kernel ran
//!   at 77 % of the FMA peak against 88 % in this order, measured on the
//!   tile loop alone.) Where B is read in place or was packed beforehand
//!   (small `m`), the B sliver stays in L1 and A's few slivers stream.
//! * The microkernels: `avx512.rs`, AVX-512F 12×32
//!   for `f32` and 12×16 for `f64`; `kernels.rs`: AVX2+FMA 6×16 and 6×8, and
//!   a portable 4×8 kernel for everything else; the widest this CPU runs is
//!   chosen at run time by feature detection, and `KILN_GEMM_KERNEL=avx2`
//!   or `portable`, or [`set_kernel_cap`], caps it.
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
//!
//! Files: this one holds the operand type, the epilogue and the dispatch
//! ([`gemm_with`]: which path a product takes, and its split over threads);
//! `choice.rs` which kernel a product gets (the instruction-set cap, the
//! widest kernel under it, the panel width from the L2 size);
//! `blocked.rs` the packing buffer, the blocked loops and the packing;
//! `interleave.rs` the AVX-512 transposes that pack transposed slivers;
//! `packed.rs` the pre-packed B; `dot.rs` the dot-product paths
//! (`dot_small`, `gemv_dot`); `kernels.rs` the portable and AVX2
//! microkernels, `avx512.rs` the AVX-512 ones; `peak.rs` the FMA probe;
//! `par.rs` the thread pool; `tests.rs` the tests.

#[cfg(target_arch = "x86_64")]
mod avx512;
mod blocked;
mod choice;
mod dot;
#[cfg(target_arch = "x86_64")]
mod interleave;
pub(crate) mod kernels;
mod packed;
pub(crate) mod par;
mod peak;
pub use peak::fma_peak_gflops;
#[cfg(test)]
mod tests;

use crate::elem::Elem;
pub(crate) use blocked::warm_thread;
use blocked::{blocked, BSrc};
pub(crate) use choice::kernel;
#[cfg(test)]
pub(crate) use choice::{available_caps, kernel_capped, with_kernel_cap};
pub use choice::{kernel_cap, kernel_isa, kernel_name, set_kernel_cap};
#[cfg(target_arch = "x86_64")]
use dot::dot_small;
use dot::gemv_dot;
pub use kernels::Isa;
use kernels::Kernel;
pub use packed::PackedB;
pub(crate) use packed::{gemm_packed_b_slices, pack_gemm_b_slices};
use std::any::TypeId;

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

/// What a product does to `C` once its sums are complete: the epilogue of a
/// dense layer. `C[i, j] += bias[j]` when `bias` is not null, then, with a
/// function `f`, `y[i·ldc + j] = f(C[i, j])` (`y` laid out as `C`, row stride
/// `ldc`; `C` keeps the pre-activation, which the backward pass reads). The
/// blocked product applies it to each `MR × NR` tile of `C` right after the
/// tile's last microkernel call, while the tile is in L1 (not in registers:
/// the microkernels store the tile first, then the epilogue reads it back);
/// the dot-product paths apply it to their rows after the product. Either way
/// each element gets `add_bias`'s and `act_fwd`'s operations in their order,
/// so the values are bitwise those of the three separate passes.
#[derive(Clone, Copy)]
pub(crate) struct Epi<E> {
    /// The bias, indexed by the column of `C` (null: none).
    pub bias: *const E,
    /// The element-wise function, with its output `y` (non-null when `f` is).
    pub f: Option<crate::kernels::unary::Act>,
    pub y: *mut E,
}

impl<E: Elem> Epi<E> {
    /// No epilogue: the plain product.
    pub(crate) fn none() -> Self {
        Epi {
            bias: std::ptr::null(),
            f: None,
            y: std::ptr::null_mut(),
        }
    }

    fn is_none(&self) -> bool {
        self.bias.is_null() && self.f.is_none()
    }

    /// The epilogue of the part of `C` that starts `rows` rows and `cols`
    /// columns in (a thread's block of `C`, whose origin moved as much).
    ///
    /// # Safety
    /// Row `rows`, column `cols` lies inside `C` (so inside `y`, laid out as
    /// `C`, and column `cols` inside `bias`).
    unsafe fn shifted(self, rows: usize, cols: usize, ldc: usize) -> Self {
        // SAFETY: the offsets stay inside `bias` and `y` (caller's obligation);
        // null pointers are not offset.
        unsafe {
            Epi {
                bias: if self.bias.is_null() {
                    self.bias
                } else {
                    self.bias.add(cols)
                },
                f: self.f,
                y: if self.y.is_null() {
                    self.y
                } else {
                    self.y.add(rows * ldc + cols)
                },
            }
        }
    }

    /// Applies the epilogue to the `rows × cols` block of `C` at row `i0`,
    /// column `j0` of the `C` at `c` (row stride `ldc`).
    ///
    /// # Safety
    /// The block lies inside `C`, which is valid for reads and writes and
    /// does not overlap `y` or `bias`; `bias` (when not null) holds the
    /// block's columns, `y` (when `f` is given) the block's elements at `C`'s
    /// offsets; nothing else accesses these elements meanwhile.
    #[inline]
    pub(crate) unsafe fn apply(
        &self,
        c: *mut E,
        ldc: usize,
        i0: usize,
        j0: usize,
        rows: usize,
        cols: usize,
    ) {
        // SAFETY: the caller's obligations: every row slice below is `cols`
        // elements inside `C`, `y` or `bias`, and they do not overlap.
        unsafe {
            let b =
                (!self.bias.is_null()).then(|| std::slice::from_raw_parts(self.bias.add(j0), cols));
            match self.f {
                // The function matched once per block, not once per row.
                Some(f) => f.bias_map_rows(
                    b,
                    (i0..i0 + rows).map(|r| {
                        (
                            std::slice::from_raw_parts_mut(c.add(r * ldc + j0), cols),
                            std::slice::from_raw_parts_mut(self.y.add(r * ldc + j0), cols),
                        )
                    }),
                ),
                None => {
                    if let Some(b) = b {
                        for r in i0..i0 + rows {
                            let pre = std::slice::from_raw_parts_mut(c.add(r * ldc + j0), cols);
                            for (v, bb) in pre.iter_mut().zip(b) {
                                *v = *v + *bb;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Below this many multiply–adds a product runs on one thread (a hand-off
/// costs about a microsecond; one core does ~2·10⁵ multiply–adds in that time
/// only at full speed, so smaller products are not worth splitting). This is
/// the threshold of the paths that pack nothing (the GEMV and the blocked dot
/// products); the packing path has its own, [`PAR_MIN_MACS_PACKED`].
const PAR_MIN_MACS: usize = 1 << 17;

/// Below this many multiply–adds a product that packs its operands runs on
/// one thread. A split product costs more than the hand-off: each thread
/// packs the whole of the operand that is not split, and waits for the
/// other at the end. Measured on the Emerald Rapids Xeon (two threads,
/// interleaved bench rounds, thresholds 2¹⁷ to 2²³; log #25 of
/// `docs/performance.md`): from 2¹⁷ to 2²¹, W1 took 0.94–0.98× and W7
/// 0.95–0.99× of the time over four sittings, W2, W5 and W6 unchanged; 2²³
/// lost it again (W1 1.02×). The GEMV stays at [`PAR_MIN_MACS`]: it is
/// bandwidth-bound, and at 2²¹ W3 took 1.30× (each core reads its half
/// of the weights from its own L2).
const PAR_MIN_MACS_PACKED: usize = 1 << 21;

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

/// `C[m×n] = α·A·B + β·C`, `A` of `m × k`, `B` of `k × n`, `C` row-major with
/// row stride `ldc` (with `β = 0`, `C` is not read), followed by the epilogue
/// `epi` (see [`Epi`]; [`Epi::none`] for the plain product), on this CPU's
/// widest kernel and the pool's threads.
///
/// # Safety
/// Every element `A(i, p)`, `B(p, j)` and `C[i·ldc + j]` (`i < m`, `j < n`,
/// `p < k`) lies inside a live allocation; `C` is valid for writes (and for
/// reads when `β ≠ 0`); `ldc ≥ n`, so the rows of `C` do not overlap (threads
/// write different rows or columns); `C` does not overlap `A` or `B`. The CPU
/// device establishes all of this with `Gemm::check` before calling.
/// The epilogue's obligations are [`Epi::apply`]'s for the whole `C`.
#[allow(clippy::too_many_arguments)] // BLAS's argument list plus the epilogue
pub(crate) unsafe fn gemm_epi<E: Elem>(
    m: usize,
    n: usize,
    k: usize,
    alpha: E,
    a: Mat<E>,
    b: Mat<E>,
    beta: E,
    c: *mut E,
    ldc: usize,
    epi: Epi<E>,
) {
    // SAFETY: the caller's obligations are `gemm_epi_with`'s; `kernel` returns
    // a kernel that runs on this CPU (AVX-512 only when `avx512::available()`,
    // AVX2 only when `avx2::available()`).
    unsafe {
        gemm_epi_with(
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
            epi,
        )
    }
}

/// The plain product with a given kernel and thread count (tests run every kernel).
///
/// # Safety
/// Those of [`gemm_epi`] (without the epilogue), and `kern` runs on this CPU (the AVX2 kernels only
/// where `kernels::avx2::available()`, the AVX-512 ones only where
/// `avx512::available()`): its `isa` of `Avx2` or wider selects the
/// AVX2-only `dot_small` path too (every AVX-512 CPU has AVX2 and FMA).
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
    // SAFETY: the caller's obligations are `gemm_epi_with`'s; no epilogue.
    unsafe {
        gemm_epi_with(
            kern,
            threads,
            m,
            n,
            k,
            alpha,
            a,
            b,
            beta,
            c,
            ldc,
            Epi::none(),
        )
    }
}

/// [`gemm_with`] followed by the epilogue `epi` on all of `C` (see [`Epi`]).
///
/// # Safety
/// Those of [`gemm_with`], and those of [`Epi::apply`] for the whole `m × n`
/// `C` (the bias holds `n` values; `y`, laid out as `C`, is writable and
/// overlaps nothing else).
#[allow(clippy::too_many_arguments)] // BLAS's argument list plus kernel, threads, epilogue
pub(crate) unsafe fn gemm_epi_with<E: Elem>(
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
    epi: Epi<E>,
) {
    if m == 0 || n == 0 {
        return;
    }
    // The dot-product paths apply the epilogue after the product, to all of C.
    let after = |epi: &Epi<E>| {
        if !epi.is_none() {
            // SAFETY: all of C (`m × n`, the caller's) after the product has
            // returned; the caller's obligations cover `bias` and `y`.
            unsafe { epi.apply(c, ldc, 0, 0, m, n) };
        }
    };
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
        after(&epi);
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
        after(&epi);
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if TypeId::of::<E>() == TypeId::of::<f32>()
        && kern.isa >= kernels::Isa::Avx2
        && a.cs == 1
        && b.rs == 1
        && m * n <= DOT_MAX_MN
        && k >= DOT_MIN_K
    {
        // SAFETY: equal `TypeId`s make `E` `f32`, so the transmutes are
        // copies between identical types and `c` really points to `f32`s.
        // `dot_small`'s conditions: the kernel is the AVX2 or the AVX-512
        // one, which the caller only passes where AVX2 and FMA exist; `a.cs = 1` and `b.rs = 1` are
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
        after(&epi);
        return;
    }
    // SAFETY: `m, n, k ≥ 1` (returned early above); the operands and the
    // kernel are the caller's, valid for this product.
    unsafe {
        blocked_split(
            &kern,
            if par && m * n * k >= PAR_MIN_MACS_PACKED {
                threads
            } else {
                1
            },
            m,
            n,
            k,
            alpha,
            a,
            BSrc::Mat(b),
            beta,
            c,
            ldc,
            epi,
        )
    };
}

/// The blocked product on `threads` threads: one block of `C` columns per
/// thread (each thread packs only its part of `B`, or reads only its slivers
/// of a pre-packed one) or one block of rows (each packs only its part of
/// `A`), whichever leaves less to pack twice.
///
/// # Safety
/// Those of [`blocked`] for the whole `m × n × k` product.
#[allow(clippy::too_many_arguments)] // BLAS's argument list plus kernel and threads
unsafe fn blocked_split<E: Elem>(
    kern: &Kernel<E>,
    threads: usize,
    m: usize,
    n: usize,
    k: usize,
    alpha: E,
    a: Mat<E>,
    b: BSrc<E>,
    beta: E,
    c: *mut E,
    ldc: usize,
    epi: Epi<E>,
) {
    if threads <= 1 {
        // SAFETY: the caller's obligations are `blocked`'s.
        unsafe { blocked(kern, m, n, k, alpha, a, b, beta, c, ldc, epi) };
        return;
    }
    // Each thread packs all of the operand that is not split: by columns, all
    // of A (`m·k`) and its share of B; by rows, its share of A and all of B
    // (`k·n`). So columns when `n ≥ m` (the smaller operand is the one packed
    // whole), rows when `m > n` and there are rows enough; a pre-packed B
    // costs nothing to share, so it goes by columns whenever it can.
    let cols_ok = n >= kern.nr * threads;
    let rows_ok = m >= kern.mr * threads;
    let by_cols = match b {
        BSrc::Packed(_) => cols_ok,
        BSrc::Mat(_) => cols_ok && (n >= m || !rows_ok),
    };
    let (unit, dim) = if by_cols { (kern.nr, n) } else { (kern.mr, m) };
    let units = dim.div_ceil(unit);
    let parts = threads.min(units);
    let cp = par::SyncPtr(c);
    let (ap, bp, ep) = (SendMat(a), SendB(b), SendEpi(epi));
    par::for_each(parts, &|t| {
        let lo = (units * t / parts * unit).min(dim);
        let hi = (units * (t + 1) / parts * unit).min(dim);
        if lo >= hi {
            return;
        }
        let (a, b, epi) = (ap.get(), bp.get(), ep.get());
        // SAFETY: task `t` gets `lo..hi`, and these ranges do not overlap
        // between tasks, so each task writes its own columns (or rows) of C:
        // with `ldc ≥ n` (caller's obligation) no element of C is written by
        // two threads. `lo < hi ≤ n` (or `≤ m`), so `b.at(0, lo)`, `a.at(lo, 0)`
        // and `c + lo` (`c + lo·ldc`) address elements of the operands, and the
        // sub-product stays inside them; `lo` is a multiple of `nr` when
        // splitting columns, so a pre-packed B's columns `lo..hi` are its
        // slivers from `lo / nr` on, `lo·k` values in, in the same layout for
        // `hi − lo` columns. A and B are only read. `par::for_each`
        // returns only after every task has, so the caller's pointers outlive
        // the tasks; `m, n, k ≥ 1` as `blocked` needs. The epilogue moves
        // with C's origin, so each task applies it to its own block only.
        unsafe {
            if by_cols {
                let b = match b {
                    BSrc::Mat(b) => BSrc::Mat(Mat {
                        ptr: b.at(0, lo),
                        ..b
                    }),
                    BSrc::Packed(p) => BSrc::Packed(p.add(lo * k)),
                };
                blocked(
                    kern,
                    m,
                    hi - lo,
                    k,
                    alpha,
                    a,
                    b,
                    beta,
                    cp.get().add(lo),
                    ldc,
                    epi.shifted(0, lo, ldc),
                );
            } else {
                let a = Mat {
                    ptr: a.at(lo, 0),
                    ..a
                };
                blocked(
                    kern,
                    hi - lo,
                    n,
                    k,
                    alpha,
                    a,
                    b,
                    beta,
                    cp.get().add(lo * ldc),
                    ldc,
                    epi.shifted(lo, 0, ldc),
                );
            }
        }
    });
}

/// The epilogue shared by the tasks of one product: each writes only its own
/// block of `C` and of `y` through it, and reads the bias.
#[derive(Clone, Copy)]
struct SendEpi<E>(Epi<E>);
// SAFETY: pointers the tasks read (`bias`) or write in disjoint blocks (`y`,
// each task its own rows or columns, as for `C`), kept alive by the caller
// until `par::for_each` has joined every task.
unsafe impl<E: Send> Send for SendEpi<E> {}
// SAFETY: as for `Send`: shared access reads the bias and writes disjoint blocks.
unsafe impl<E: Send> Sync for SendEpi<E> {}

impl<E: Copy> SendEpi<E> {
    #[inline(always)]
    fn get(&self) -> Epi<E> {
        self.0
    }
}

/// A `B` operand shared by the tasks of one product (read-only).
#[derive(Clone, Copy)]
struct SendB<E>(BSrc<E>);
// SAFETY: as for `SendMat` below: a pointer (plus strides) that the tasks
// only read through, kept alive and unmodified by the caller until
// `par::for_each` has joined every task.
unsafe impl<E: Send> Send for SendB<E> {}
// SAFETY: as for `Send`: shared access is read-only.
unsafe impl<E: Send> Sync for SendB<E> {}

impl<E: Copy> SendB<E> {
    /// The operand (a method, so closures capture the whole `SendB`).
    #[inline(always)]
    fn get(&self) -> BSrc<E> {
        self.0
    }
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
