//! A `B` operand packed once and reused by many products with different `A`
//! (a recurrent layer's `W_hh`: 100 products of 32 rows per sequence, each
//! of which would otherwise pack the whole weight again).
//!
//! [`pack_b`] writes `B` (`k × n`, any strides: a transposed weight is a
//! stride) into a [`PackedB`] as the microkernel's slivers of `NR` columns
//! over the whole contraction, zero-padded to a multiple of `NR`: sliver
//! `s`, step `p`, column `j` at `s·NR·k + p·NR + j`. A block of `KC` steps of
//! one sliver is then `KC·NR` contiguous values, exactly what the blocked
//! loop's own packing of a panel produces, so [`gemm_packed_b`] runs the same
//! loop, the same kernel and the same order of sums as [`super::gemm`] on the
//! blocked path: its results are bitwise those of the unpacked product with
//! the same kernel (when that product takes the blocked path; the GEMV and
//! dot-product paths of `m = 1` and of tiny outputs sum in another order).
//!
//! The layout depends only on the kernel's `NR`, not on `KC`, `NC` or the
//! thread count; a [`PackedB`] remembers the kernel it was packed for and
//! [`gemm_packed_b`] uses that kernel, so a cap changed in between
//! ([`super::set_kernel_cap`]) cannot pair a layout with the wrong kernel.

use super::blocked::{pack_b as pack_panel, BSrc};
use super::kernels::{Isa, Kernel};
use super::{blocked_split, kernel, par, Mat, PAR_MIN_MACS};
use crate::device::Gemm;
use crate::elem::Elem;
use crate::error::{Error, Result};

/// A cache line, so the packed slivers are 64-byte aligned (the AVX-512
/// kernels load a whole line per step of a sliver).
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);

/// A `B` operand of shape `k × n` packed for kiln's CPU GEMM (the module
/// doc of `core/src/gemm/packed.rs`); made by [`crate::Backend::pack_gemm_b`],
/// used by [`crate::Backend::gemm_packed_b`]. Empty until packed; its buffer
/// grows to the largest operand packed into it and is then reused, so
/// repacking an operand of the same size allocates nothing. Devices whose
/// products do not pack their operands (CUDA's cuBLAS) leave it empty.
pub struct PackedB<E> {
    buf: Vec<Line>,
    k: usize,
    n: usize,
    /// The kernel the slivers are laid out for (`None`: nothing packed).
    kern: Option<Kernel<E>>,
    /// Where the operand came from (address, strides), so a product given
    /// another `B` than the packed one is refused (the device's check).
    src: (usize, isize, isize),
}

impl<E> Default for PackedB<E> {
    fn default() -> Self {
        PackedB {
            buf: Vec::new(),
            k: 0,
            n: 0,
            kern: None,
            src: (0, 0, 0),
        }
    }
}

impl<E> std::fmt::Debug for PackedB<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackedB")
            .field("k", &self.k)
            .field("n", &self.n)
            .field("kernel", &self.kern.as_ref().map(|k| k.name))
            .field("bytes", &(self.buf.len() * 64))
            .finish()
    }
}

impl<E: Elem> PackedB<E> {
    /// An empty packed operand (allocates nothing).
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether an operand is packed (and for which `(k, n)`).
    pub fn packed_shape(&self) -> Option<(usize, usize)> {
        self.kern.as_ref().map(|_| (self.k, self.n))
    }

    /// The instruction set of the kernel the operand is packed for.
    pub fn isa(&self) -> Option<Isa> {
        self.kern.as_ref().map(|k| k.isa)
    }

    /// Forgets the packed operand (keeps the buffer).
    pub fn clear(&mut self) {
        self.kern = None;
    }

    /// Whether this holds `B` = `src` (address and strides) of `k × n`.
    pub(crate) fn holds(&self, k: usize, n: usize, src: Mat<E>) -> bool {
        self.kern.is_some() && self.k == k && self.n == n && self.src == key(src)
    }

    pub(super) fn ptr(&self) -> *const E {
        self.buf.as_ptr() as *const E
    }
}

fn key<E>(m: Mat<E>) -> (usize, isize, isize) {
    (m.ptr as usize, m.rs, m.cs)
}

/// Packs `B` (`k × n`, element `(p, j)` at `b.ptr + p·rs + j·cs`) into `dst`
/// for this thread's kernel ([`kernel`]), on kiln's pool when large.
///
/// # Safety
/// Every element `b(p, j)`, `p < k`, `j < n`, lies inside a live allocation.
pub(crate) unsafe fn pack_b<E: Elem>(k: usize, n: usize, b: Mat<E>, dst: &mut PackedB<E>) {
    // SAFETY: the caller's obligation; `kernel` returns a kernel of this CPU.
    unsafe { pack_b_with(kernel::<E>(), par::threads(), k, n, b, dst) }
}

/// [`pack_b`] with a given kernel and thread count (tests run every kernel).
///
/// # Safety
/// Those of [`pack_b`], and `kern` runs on this CPU.
pub(crate) unsafe fn pack_b_with<E: Elem>(
    kern: Kernel<E>,
    threads: usize,
    k: usize,
    n: usize,
    b: Mat<E>,
    dst: &mut PackedB<E>,
) {
    let nr = kern.nr;
    let slivers = n.div_ceil(nr);
    let bytes = slivers * nr * k * std::mem::size_of::<E>();
    dst.kern = None;
    // Grows only (a smaller operand reuses the buffer); new lines are zero.
    let lines = bytes.div_ceil(64);
    if dst.buf.len() < lines {
        dst.buf.resize(lines, Line([0; 64]));
    }
    if slivers > 0 && k > 0 {
        let parts = if threads > 1 && n * k >= PAR_MIN_MACS / 8 {
            threads.min(slivers)
        } else {
            1
        };
        let out = par::SyncPtr(dst.buf.as_mut_ptr() as *mut E);
        let src = SendPtr(b);
        par::for_each(parts, &|t| {
            let (lo, hi) = (slivers * t / parts, slivers * (t + 1) / parts);
            if lo >= hi {
                return;
            }
            let b = src.get();
            let cols = (hi * nr).min(n) - lo * nr;
            // SAFETY: task `t` packs slivers `lo..hi`, columns `lo·nr ..
            // min(hi·nr, n)` of B (elements of the caller's operand, `lo·nr <
            // n` as `lo < slivers`), into `[lo·nr·k, hi·nr·k)` of the buffer
            // (`slivers·nr·k` values of `E`, resized above): the tasks'
            // ranges are disjoint, B is only read and does not overlap the
            // buffer, which this function borrows mutably until
            // `par::for_each` has joined every task. `pack_panel` writes
            // `⌈cols / nr⌉·nr·k` values, zero past column `cols`: this
            // range exactly.
            unsafe {
                pack_panel(
                    k,
                    cols,
                    Mat {
                        ptr: b.at(0, lo * nr),
                        ..b
                    },
                    out.get().add(lo * nr * k),
                    nr,
                )
            };
        });
    }
    dst.k = k;
    dst.n = n;
    dst.src = key(b);
    dst.kern = Some(kern);
}

/// `C[m×n] = α·A·B + β·C` with `B` taken from `packed` (`k × n`, packed by
/// [`pack_b`] with the kernel it names, which this product uses), `A` of
/// `m × k`; the blocked path only, split over [`par`]'s threads as
/// [`super::gemm`] splits it. Nothing packed, or `m = 0`: nothing happens.
///
/// # Safety
/// Those of [`super::gemm`] for `A` and `C` (`A(i, p)` readable, `C[i·ldc +
/// j]` writable, and readable when `β ≠ 0`, for `i < m`, `j < n`, `p < k`;
/// `ldc ≥ n`; `C` overlaps neither `A` nor the packed buffer).
#[allow(clippy::too_many_arguments)] // BLAS's argument list
pub(crate) unsafe fn gemm_packed_b<E: Elem>(
    m: usize,
    alpha: E,
    a: Mat<E>,
    packed: &PackedB<E>,
    beta: E,
    c: *mut E,
    ldc: usize,
) {
    // SAFETY: the caller's obligations.
    unsafe { gemm_packed_b_with(par::threads(), m, alpha, a, packed, beta, c, ldc) }
}

/// [`gemm_packed_b`] with a given thread count.
///
/// # Safety
/// Those of [`gemm_packed_b`].
#[allow(clippy::too_many_arguments)] // BLAS's argument list plus threads
pub(crate) unsafe fn gemm_packed_b_with<E: Elem>(
    threads: usize,
    m: usize,
    alpha: E,
    a: Mat<E>,
    packed: &PackedB<E>,
    beta: E,
    c: *mut E,
    ldc: usize,
) {
    let Some(kern) = packed.kern else { return };
    let (n, k) = (packed.n, packed.k);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 || alpha == E::zero() {
        // The unpacked product's β-only path (B is not read).
        // SAFETY: `B` is not read when `k = 0` or `α = 0`; the rest is the
        // caller's obligations, which are `gemm_with`'s for A and C.
        unsafe {
            super::gemm_with(
                kern,
                1,
                m,
                n,
                k,
                alpha,
                a,
                Mat {
                    ptr: std::ptr::null(),
                    rs: 0,
                    cs: 0,
                },
                beta,
                c,
                ldc,
            )
        };
        return;
    }
    let par = threads > 1 && m * n * k >= PAR_MIN_MACS;
    // SAFETY: `m, n, k ≥ 1`; `packed` holds `⌈n / nr⌉` slivers of `kern.nr`
    // columns over `k` steps (`pack_b_with` wrote them with this kernel, and
    // `&PackedB` keeps them unmodified and alive for this call), which is
    // `BSrc::Packed`'s layout; `kern` ran on this CPU when it packed; A and C
    // are the caller's.
    unsafe {
        blocked_split(
            &kern,
            if par { threads } else { 1 },
            m,
            n,
            k,
            alpha,
            a,
            BSrc::Packed(packed.ptr()),
            beta,
            c,
            ldc,
            super::Epi::none(),
        )
    };
}

/// B's description shared by the packing tasks (read-only).
#[derive(Clone, Copy)]
struct SendPtr<E>(Mat<E>);
// SAFETY: a pointer plus strides that the packing tasks only read through,
// kept alive and unmodified by `pack_b_with`'s caller until `par::for_each`
// has joined every task.
unsafe impl<E: Send> Send for SendPtr<E> {}
// SAFETY: as for `Send`: shared access is read-only.
unsafe impl<E: Send> Sync for SendPtr<E> {}

impl<E: Copy> SendPtr<E> {
    /// The operand (a method, so closures capture the whole `SendPtr`).
    #[inline(always)]
    fn get(&self) -> Mat<E> {
        self.0
    }
}

// ---- the CPU device's bodies of `Backend::pack_gemm_b` / `gemm_packed_b` ----

/// `g`'s operand at `off` in `buf` (row stride `ld`, transposed or not) as
/// a strided [`Mat`]; `off ≤ buf.len()` (where `Gemm::check` found its
/// elements).
fn operand<E>(buf: &[E], off: usize, ld: usize, trans: bool) -> Mat<E> {
    let (rs, cs) = if trans {
        (1, ld as isize)
    } else {
        (ld as isize, 1)
    };
    Mat {
        ptr: buf[off.min(buf.len())..].as_ptr(),
        rs,
        cs,
    }
}

/// `Gemm::check` of `g`'s `B` alone against `b_len` elements.
fn check_b(g: &Gemm, b_len: usize) -> Result<()> {
    Gemm {
        m: 0,
        a_off: 0,
        c_off: 0,
        ..*g
    }
    .check(0, b_len, 0)
}

/// The CPU's [`crate::Backend::pack_gemm_b`]: packs `op(B)` of `g` in `b`.
pub(crate) fn pack_gemm_b_slices<E: Elem>(
    g: &Gemm,
    b: &[E],
    packed: &mut PackedB<E>,
) -> Result<()> {
    check_b(g, b.len())?;
    let bm = operand(b, g.b_off, g.ldb, g.trans_b);
    // SAFETY: `check_b` put every element `(p, j)`, `p < k`, `j < n`, of
    // `op(B)` inside `b`, which outlives the call.
    unsafe { pack_b(g.k, g.n, bm, packed) };
    Ok(())
}

/// The CPU's [`crate::Backend::gemm_packed_b`]: refuses a `packed` that does
/// not hold `op(B)` of `g` in `b` (another buffer, offset, stride, transpose
/// or size), then runs [`gemm_packed_b`].
pub(crate) fn gemm_packed_b_slices<E: Elem>(
    g: &Gemm,
    a: &[E],
    b: &[E],
    packed: &PackedB<E>,
    c: &mut [E],
) -> Result<()> {
    g.check(a.len(), b.len(), c.len())?;
    if !packed.holds(g.k, g.n, operand(b, g.b_off, g.ldb, g.trans_b)) {
        return Err(Error::invalid(
            "gemm_packed_b",
            format!(
                "the packed operand ({packed:?}) is not this product's B ({}×{} at offset {}, ldb {}, transposed: {}): pack it with pack_gemm_b first",
                g.k, g.n, g.b_off, g.ldb, g.trans_b
            ),
        ));
    }
    let am = operand(a, g.a_off, g.lda, g.trans_a);
    // SAFETY: `g.check` put every element of A and C inside `a` and `c`
    // (`ldc ≥ n`, `c_off` in range); `c` is borrowed mutably, so it overlaps
    // neither `a` nor `packed`'s own buffer; `packed` holds this product's
    // `k × n` B (checked just above).
    unsafe {
        gemm_packed_b(
            g.m,
            E::of(g.alpha),
            am,
            packed,
            E::of(g.beta),
            c.as_mut_ptr().add(g.c_off.min(c.len())),
            g.ldc,
        )
    };
    Ok(())
}
