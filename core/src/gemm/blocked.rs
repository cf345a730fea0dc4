//! The blocked product (see the module doc of [`super`]): the thread-local
//! packing buffer, the loops over `KC × NC` panels of `B` and `MC × KC` blocks
//! of `A` that call the microkernel, and the packing of both operands into
//! slivers.

use super::kernels::Kernel;
use super::{Epi, Mat, DIRECT_B_MAX_M};
use crate::elem::Elem;
use std::any::TypeId;
use std::cell::RefCell;

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
/// elements; the largest is the AVX-512 `f64` kernel's, `MC = 240`,
/// `KC = 256`, `NC = 4096`), so a thread allocates its buffer once in its
/// life, whatever shapes come later. Reserved, not touched: pages that a
/// thread's products never reach cost no memory.
const PACK_BYTES: usize = (240 * 256 + 256 * 4096) * 8;

/// Reserves this thread's packing buffer (pool helpers call it when they start).
pub(crate) fn warm_thread() {
    with_pack::<u8, _>(0, |_| ());
}

/// Runs `f` with a packing buffer of at least `len` elements of `E`.
pub(super) fn with_pack<E: Copy, R>(len: usize, f: impl FnOnce(*mut E) -> R) -> R {
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

/// Where the blocked product reads `B` from.
#[derive(Clone, Copy)]
pub(super) enum BSrc<E> {
    /// The operand itself: packed panel by panel (or read in place, see
    /// [`DIRECT_B_MAX_M`]).
    Mat(Mat<E>),
    /// Already packed ([`super::PackedB`]'s layout): `⌈n / nr⌉` slivers of
    /// `nr` columns over the whole contraction, sliver `s`, step `p`, column
    /// `j` at `ptr[s·nr·k + p·nr + j]`, columns past `n` zero.
    Packed(*const E),
}

/// The single-threaded blocked product (see the module doc).
///
/// # Safety
/// Those of [`gemm_with`](super::gemm_with) (operands valid for the
/// `m × n × k` product, `kern` runnable on this CPU), and `m, n, k ≥ 1`.
/// `kern.mc` is a multiple of `kern.mr` and `kern.nc` of `kern.nr` (true of
/// every kernel in `kernels.rs`), so the zero-padded slivers fit in the
/// packing buffer. A [`BSrc::Packed`] `B` holds the layout its doc states for
/// this `n`, `k` and `kern.nr`, and does not overlap `C`. `epi`'s obligations
/// ([`Epi::apply`]) hold for all of this `m × n` `C`.
#[allow(clippy::too_many_arguments)] // BLAS's argument list plus the kernel
pub(super) unsafe fn blocked<E: Elem>(
    kern: &Kernel<E>,
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
    let (mr, nr) = (kern.mr, kern.nr);
    let with_epi = !epi.is_none();
    let mc = kern.mc.min(m.div_ceil(mr) * mr);
    let nc = kern.nc.min(n.div_ceil(nr) * nr);
    let kc = kern.kc.min(k);
    let (b, packed) = match b {
        BSrc::Mat(b) => (b, None),
        // `b` is not read on this path.
        BSrc::Packed(p) => (
            Mat {
                ptr: p,
                rs: 0,
                cs: 0,
            },
            Some(p),
        ),
    };
    let direct_b = packed.is_none() && b.cs == 1 && b.rs > 0 && m <= DIRECT_B_MAX_M;
    // A panel of B packed here: the tile loop keeps an A sliver in L1 and
    // streams B's slivers; B read in place or pre-packed (small `m`) keeps
    // a B sliver in L1 and streams A's few slivers instead.
    let a_in_l1 = !direct_b && packed.is_none();
    // A pre-packed B needs no room for a panel.
    let b_room = if packed.is_some() { 0 } else { kc * nc };
    // SAFETY: `buf` holds `mc·kc + kc·nc` values of `E` (`with_pack`), 64-byte
    // aligned: A's block packs into the first `mc·kc` (`mb ≤ mc` rows padded to
    // a multiple of `mr`, still `≤ mc` as `mc` is one), B's panel into the next
    // `kc·nc` (`nb ≤ nc` columns padded to a multiple of `nr`, `≤ nc`; the
    // narrow direct-B sliver needs only `kb·nr`; a pre-packed B is read from
    // its own sliver `(jc + jr) / nr` at step `pc`, `kb·nr` values inside the
    // caller's `⌈n / nr⌉·nr·k`). Every `a.at`/`b.at` is at
    // `ic < m`, `pc < k`, `jc + jr < n`: elements of the caller's operands.
    // Each kernel call gets `mr.min(mb − ir) ≤ mr` rows and `cols ≤ nr`
    // columns of C starting at row `ic + ir`, column `jc + jr`: inside C. Its B
    // is either a packed sliver (`nr` values per step) or, for direct B, `nr`
    // contiguous values (`b.cs = 1`, `cols = nr`) of each of `kb` rows,
    // `b.rs` apart: inside B. The buffer is this thread's own, so C, A and B
    // do not overlap it, and the kernel runs on this CPU (caller's obligation).
    // The epilogue is applied to each `mb × nb` block of C once its last KC
    // block is summed (inside C; `epi`'s obligations hold for all of C).
    with_pack::<E, _>(mc * kc + b_room, |buf| unsafe {
        let (ap, bp) = (buf, buf.add(mc * kc));
        for jc in (0..n).step_by(nc) {
            let nb = nc.min(n - jc);
            for pc in (0..k).step_by(kc) {
                let kb = kc.min(k - pc);
                if a_in_l1 {
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
                    if a_in_l1 {
                        // B's panel was packed above (`bp`, `kb × nb`, in L2):
                        // each A sliver stays in L1 while B's slivers stream
                        // past it, and consecutive tiles of C lie side by side
                        // in one row block (see the module doc of `super`).
                        for ir in (0..mb).step_by(mr) {
                            let rows = mr.min(mb - ir);
                            for jr in (0..nb).step_by(nr) {
                                (kern.f)(
                                    kb,
                                    ap.add(ir * kb),
                                    bp.add(jr * kb),
                                    nr,
                                    c.add((ic + ir) * ldc + jc + jr),
                                    ldc,
                                    rows,
                                    nr.min(nb - jr),
                                    alpha,
                                    beta,
                                );
                            }
                        }
                    } else {
                        for jr in (0..nb).step_by(nr) {
                            let cols = nr.min(nb - jr);
                            let (bs, ldb) = if let Some(p) = packed {
                                (p.add((jc + jr) * k + pc * nr), nr)
                            } else if cols == nr {
                                (b.at(pc, jc + jr), b.rs as usize)
                            } else {
                                // Direct B's last, narrow sliver: packed
                                // (zero-padded).
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
                                let rows = mr.min(mb - ir);
                                (kern.f)(
                                    kb,
                                    ap.add(ir * kb),
                                    bs,
                                    ldb,
                                    c.add((ic + ir) * ldc + jc + jr),
                                    ldc,
                                    rows,
                                    cols,
                                    alpha,
                                    beta,
                                );
                            }
                        }
                    }
                    if with_epi && pc + kb == k {
                        // The block's sums are complete: its epilogue, while
                        // it is still in L2.
                        epi.apply(c, ldc, ic, jc, mb, nb);
                    }
                }
            }
        }
    })
}

/// Whether packing a transposed sliver of `E` takes the AVX-512 transposes
/// of `interleave.rs`: `f32` where [`crate::simd::avx512`] says so, so the
/// GEMM kernel cap (`KILN_GEMM_KERNEL`) turns it off with the rest. It writes the same values
/// as the scalar loops, moved 16 × 16 at a time.
#[inline]
fn interleave_on<E: Elem>() -> bool {
    TypeId::of::<E>() == TypeId::of::<f32>() && crate::simd::avx512()
}

/// Packs the `mb × kb` block `a` into slivers of `mr` rows: sliver `s`,
/// step `p`, row `r` at `dst[s·mr·kb + p·mr + r]`; rows past `mb` are zero.
///
/// # Safety
/// `a(i, p)` is readable for `i < mb`, `p < kb`; `dst` is writable for
/// `⌈mb / mr⌉ · mr · kb` values and does not overlap `a`.
unsafe fn pack_a<E: Elem>(mb: usize, kb: usize, a: Mat<E>, dst: *mut E, mr: usize) {
    let fast = a.cs == 1 && interleave_on::<E>();
    for i0 in (0..mb).step_by(mr) {
        let rows = mr.min(mb - i0);
        // SAFETY: `i0 + r < mb` and `p < kb`, so every `a.at` read is an element
        // of the block; `d + p·mr + r` with `p < kb`, `r < mr` lies in sliver
        // `i0 / mr`, inside `dst`'s `⌈mb / mr⌉ · mr · kb` values; the
        // interleave path reads the same elements and writes the same
        // `mr · kb` values of the sliver, and `fast` says AVX-512F runs. With
        // `a.rs = 1` a column's `rows` values are contiguous, and `dst` does
        // not overlap `a` (caller), as `copy_nonoverlapping` needs.
        unsafe {
            let d = dst.add(i0 * kb);
            if a.cs == 1 {
                #[cfg(target_arch = "x86_64")]
                if fast {
                    // `E = f32` and AVX-512F (`fast`); row `i0 + r` is `rows`
                    // lines of `kb` contiguous values, `a.rs` apart.
                    super::interleave::interleave_f32(
                        a.at(i0, 0) as *const f32,
                        a.rs,
                        rows,
                        kb,
                        d as *mut f32,
                        mr,
                    );
                    continue;
                }
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
                if a.rs == 1 && rows == mr && copy_rows(a.at(i0, 0), a.cs, d, kb, mr) {
                    continue;
                }
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
pub(super) unsafe fn pack_b<E: Elem>(kb: usize, nb: usize, b: Mat<E>, dst: *mut E, nr: usize) {
    let fast = b.rs == 1 && b.cs != 1 && interleave_on::<E>();
    for j0 in (0..nb).step_by(nr) {
        let cols = nr.min(nb - j0);
        // SAFETY: `p < kb`, `j0 + j < nb`: every `b.at` read is an element of
        // the block; `d + p·nr + j` with `p < kb`, `j < nr` lies in sliver
        // `j0 / nr`, inside `dst` (the interleave path: the same elements and
        // the sliver's `nr · kb` values; `fast` says AVX-512F runs and
        // `E = f32`). With `b.cs = 1` a row's `cols` values are
        // contiguous, and `dst` does not overlap `b` (caller).
        unsafe {
            let d = dst.add(j0 * kb);
            if b.rs == 1 && b.cs != 1 {
                #[cfg(target_arch = "x86_64")]
                if fast {
                    // `E = f32` and AVX-512F (`fast`); column `j0 + j` is
                    // `cols` lines of `kb` contiguous values, `b.cs` apart.
                    super::interleave::interleave_f32(
                        b.at(0, j0) as *const f32,
                        b.cs,
                        cols,
                        kb,
                        d as *mut f32,
                        nr,
                    );
                    continue;
                }
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
                if b.cs == 1 && cols == nr && copy_rows(b.at(0, j0), b.rs, d, kb, nr) {
                    continue;
                }
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

/// Copies `kb` rows of `w` contiguous values, `src_ld` apart from `src`, to
/// `dst` back to back (one full sliver of packing) when `w` is the width of
/// a built-in kernel's tile, as a loop of constant-length copies (a few
/// vector moves each); returns `false`, copying nothing, for other widths.
/// A copy of a run-time length is a `memmove` call per row (5–6 % of a
/// char LSTM training step in perf, before this), and a `match` on the
/// length around one such copy per row is merged back into it by LLVM.
///
/// # Safety
/// `src + p·src_ld` is readable for `w` values and `dst + p·w` writable for
/// `w` values, for every `p < kb`; the two do not overlap.
#[inline(always)]
unsafe fn copy_rows<E: Copy>(
    src: *const E,
    src_ld: isize,
    dst: *mut E,
    kb: usize,
    w: usize,
) -> bool {
    /// The loop for one constant width.
    ///
    /// # Safety
    /// `copy_rows`'s, with `w = N`.
    #[inline(always)]
    unsafe fn rows<E: Copy, const N: usize>(src: *const E, src_ld: isize, dst: *mut E, kb: usize) {
        for p in 0..kb {
            // SAFETY: row `p < kb` of the source and of the destination, `N`
            // values each (the caller's obligation); unaligned accesses, as
            // neither side is aligned to `[E; N]`'s size.
            unsafe {
                let v = std::ptr::read_unaligned(src.offset(p as isize * src_ld) as *const [E; N]);
                std::ptr::write_unaligned(dst.add(p * N) as *mut [E; N], v);
            }
        }
    }
    // SAFETY: each arm runs `rows` with `N = w` (the caller's obligations).
    unsafe {
        match w {
            4 => rows::<E, 4>(src, src_ld, dst, kb),
            6 => rows::<E, 6>(src, src_ld, dst, kb),
            8 => rows::<E, 8>(src, src_ld, dst, kb),
            12 => rows::<E, 12>(src, src_ld, dst, kb),
            16 => rows::<E, 16>(src, src_ld, dst, kb),
            32 => rows::<E, 32>(src, src_ld, dst, kb),
            _ => return false,
        }
    }
    true
}
