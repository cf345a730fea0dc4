//! Which kernel a product gets, and its blocking: the instruction-set cap
//! (`KILN_GEMM_KERNEL`, [`set_kernel_cap`], a per-thread cap for tests),
//! the widest kernel this CPU runs under it, and the B panel's width from
//! this core's L2 size.

#[cfg(target_arch = "x86_64")]
use super::avx512;
use super::kernels::{self, Isa, Kernel};
use crate::elem::Elem;
use std::any::TypeId;
use std::sync::atomic::{AtomicU8, Ordering};

/// The widest instruction set [`kernel`] may choose, as `Isa as u8`, or
/// [`CAP_UNSET`] before the first product has read `KILN_GEMM_KERNEL`.
static CAP: AtomicU8 = AtomicU8::new(CAP_UNSET);
const CAP_UNSET: u8 = u8::MAX;

#[cfg(test)]
thread_local! {
    /// A cap for this thread only, over [`CAP`] (tests run every kernel
    /// through the public paths without racing the other tests).
    static TEST_CAP: std::cell::Cell<Option<Isa>> = const { std::cell::Cell::new(None) };
}

/// The cap `KILN_GEMM_KERNEL` asks for: `avx512`, `avx2` or `portable`
/// (unset or empty: no cap). Anything else is reported once and ignored.
fn cap_from_env() -> Isa {
    match std::env::var("KILN_GEMM_KERNEL").as_deref() {
        Err(_) | Ok("") | Ok("avx512") | Ok("auto") => Isa::Avx512,
        Ok("avx2") => Isa::Avx2,
        Ok("portable") => Isa::Portable,
        Ok(other) => {
            eprintln!(
                "kiln: KILN_GEMM_KERNEL={other:?} is not one of avx512, avx2, portable; ignored"
            );
            Isa::Avx512
        }
    }
}

/// The widest instruction set the GEMM may use (see [`set_kernel_cap`]).
pub fn kernel_cap() -> Isa {
    #[cfg(test)]
    if let Some(c) = TEST_CAP.with(|c| c.get()) {
        return c;
    }
    match CAP.load(Ordering::Relaxed) {
        CAP_UNSET => {
            let c = cap_from_env();
            CAP.store(c as u8, Ordering::Relaxed);
            c
        }
        0 => Isa::Portable,
        1 => Isa::Avx2,
        _ => Isa::Avx512,
    }
}

/// Caps the instruction set of the GEMM's kernels, process-wide: the product
/// uses the widest kernel this CPU runs that is not wider than `cap`
/// (`Isa::Avx2` compares the AVX2 path with the AVX-512 one on a machine
/// that has both). Overrides `KILN_GEMM_KERNEL`. For benchmarks and tests;
/// results differ between kernels in the last bits (the sums are grouped
/// differently), so change it only between runs you compare.
pub fn set_kernel_cap(cap: Isa) {
    CAP.store(cap as u8, Ordering::Relaxed);
}

/// Runs `f` with this thread's products capped at `cap` (tests only).
#[cfg(test)]
pub(crate) fn with_kernel_cap<R>(cap: Isa, f: impl FnOnce() -> R) -> R {
    let old = TEST_CAP.with(|c| c.replace(Some(cap)));
    let r = f();
    TEST_CAP.with(|c| c.set(old));
    r
}

/// Every kernel for `E` this CPU runs, portable first (tests run them all,
/// and say which instruction sets this CPU lacks).
#[cfg(test)]
pub(crate) fn available_caps() -> Vec<Isa> {
    let mut v = vec![Isa::Portable];
    #[cfg(target_arch = "x86_64")]
    {
        if kernels::avx2::available() {
            v.push(Isa::Avx2);
        } else {
            eprintln!("gemm tests: this CPU has no AVX2+FMA; the AVX2 kernels are not tested");
        }
        if avx512::available() {
            v.push(Isa::Avx512);
        } else {
            eprintln!("gemm tests: this CPU has no AVX-512F; the AVX-512 kernels are not tested");
        }
    }
    v
}

/// `E`'s kernel for `f32`/`f64` from `f32`'s and `f64`'s (the portable one
/// for other types).
fn pick<E: Elem>(k32: Kernel<f32>, k64: Kernel<f64>) -> Kernel<E> {
    if TypeId::of::<E>() == TypeId::of::<f32>() {
        // SAFETY: the `TypeId`s are equal, so `E` is `f32` and both sides
        // are the same type: `transmute_copy` is a plain copy of a `Copy` value.
        return unsafe { std::mem::transmute_copy::<Kernel<f32>, Kernel<E>>(&k32) };
    }
    if TypeId::of::<E>() == TypeId::of::<f64>() {
        // SAFETY: as above, `E` is `f64` (equal `TypeId`s).
        return unsafe { std::mem::transmute_copy::<Kernel<f64>, Kernel<E>>(&k64) };
    }
    kernels::generic_kernel::<E>()
}

/// The kernel for `E` on this CPU: AVX-512F where the CPU has it, else
/// AVX2+FMA, else the portable one, never wider than [`kernel_cap`].
pub(crate) fn kernel<E: Elem>() -> Kernel<E> {
    kernel_capped::<E>(kernel_cap())
}

/// The widest kernel for `E` this CPU runs that is not wider than `cap`.
pub(crate) fn kernel_capped<E: Elem>(cap: Isa) -> Kernel<E> {
    let mut kern = widest::<E>(cap);
    kern.nc = panel_cols(
        kern.nc,
        kern.kc,
        kern.nr,
        std::mem::size_of::<E>(),
        l2_bytes(),
    );
    kern
}

/// The widest kernel for `E` this CPU runs that is not wider than `cap`,
/// with its largest panel width.
fn widest<E: Elem>(cap: Isa) -> Kernel<E> {
    #[cfg(target_arch = "x86_64")]
    {
        if cap >= Isa::Avx512 && avx512::available() {
            return pick::<E>(avx512::f32_kernel(), avx512::f64_kernel());
        }
        if cap >= Isa::Avx2 && kernels::avx2::available() {
            return pick::<E>(kernels::avx2::f32_kernel(), kernels::avx2::f64_kernel());
        }
    }
    let _ = cap;
    kernels::generic_kernel::<E>()
}

/// Columns of a packed B panel: at most `max`, and as many as make the
/// `kc × nc` panel of `size`-byte values fill half of an `l2`-byte L2
/// cache, but never less than [`MIN_PANEL_BYTES`]; a multiple of `nr` (at
/// least one sliver). The blocked product keeps one A sliver in L1 and
/// streams the panel's slivers past it, so the panel must stay close to
/// the core:
///
/// * on the 2 MiB-L2 Xeon (Emerald Rapids) a 1 MiB `f32` panel (1024
///   columns) ran the 4096³ product in 0.87 of the time of a 4 MiB one
///   (4096 columns, the panel in L3) and 0.89 of a 2 MiB one;
/// * on a 1 MiB-L2 Zen 4 EPYC, half the L2 (512 columns) was the slowest
///   width: 1024, 1536, 2048 and 4096 columns took 0.90–0.97 of its time
///   (Zen's L3 feeds a panel that overflows the L2 well), so the panel
///   never shrinks below 1 MiB.
///
/// Interleaved bench rounds of builds with each width, logs #22 and #26 of
/// `docs/performance.md`.
pub(super) fn panel_cols(max: usize, kc: usize, nr: usize, size: usize, l2: usize) -> usize {
    let bytes = (l2 / 2).max(MIN_PANEL_BYTES);
    let fit = bytes / (kc * size).max(1) / nr * nr;
    fit.clamp(nr, max.max(nr))
}

/// The smallest B panel [`panel_cols`] chooses, in bytes (1 MiB).
const MIN_PANEL_BYTES: usize = 1 << 20;

/// This core's L2 cache in bytes, read once from Linux's
/// `/sys/devices/system/cpu/cpu0/cache/index*/` (the unified or data cache
/// of level 2); 1 MiB where it cannot be read (another OS, a container
/// hiding `sys`), the smallest L2 of the x86-64 cores kiln is tuned on
/// (AMD Zen 4 and 5; Intel's server cores have 2 MiB).
pub(crate) fn l2_bytes() -> usize {
    static L2: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *L2.get_or_init(|| read_l2().unwrap_or(1 << 20))
}

/// The L2 size from `sysfs`, or `None`.
fn read_l2() -> Option<usize> {
    for i in 0..8 {
        let dir = format!("/sys/devices/system/cpu/cpu0/cache/index{i}");
        let read = |f: &str| std::fs::read_to_string(format!("{dir}/{f}")).ok();
        let Some(level) = read("level") else { break };
        let kind = read("type").unwrap_or_default();
        if level.trim() != "2" || kind.trim() == "Instruction" {
            continue;
        }
        return parse_cache_size(read("size")?.trim());
    }
    None
}

/// `"2048K"`, `"1M"` or `"524288"` as bytes.
pub(super) fn parse_cache_size(s: &str) -> Option<usize> {
    let (num, mult) = match s.as_bytes().last()? {
        b'K' | b'k' => (&s[..s.len() - 1], 1 << 10),
        b'M' | b'm' => (&s[..s.len() - 1], 1 << 20),
        _ => (s, 1),
    };
    let v: usize = num.parse().ok()?;
    (v > 0).then_some(v * mult)
}

/// The name of the kernel used for `E` (for benchmarks and docs).
pub fn kernel_name<E: Elem>() -> &'static str {
    kernel::<E>().name
}

/// The instruction set of the kernel used for `E`.
pub fn kernel_isa<E: Elem>() -> Isa {
    kernel::<E>().isa
}
