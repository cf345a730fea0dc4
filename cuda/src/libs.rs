//! Finding the CUDA libraries before cudarc touches them.
//!
//! cudarc opens `libcuda`, `libnvrtc` and `libcublas` lazily and panics when
//! one cannot be loaded. kiln checks each with cudarc's `is_culib_present`
//! first and turns a missing library into an [`Error::Device`] that names it
//! and says how to provide it.
//!
//! Besides `LD_LIBRARY_PATH` (read once, when the process starts), kiln looks
//! in the directories listed in `KILN_CUDA_LIB_PATH` (colon-separated): a
//! library found there is opened by its full path and kept open, and the
//! dynamic loader then resolves cudarc's later open by the same soname to it.

use kiln_core::Error;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A CUDA library kiln needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lib {
    /// The driver, `libcuda.so.1` (installed with the NVIDIA driver).
    Driver,
    /// The runtime compiler, `libnvrtc.so.13`.
    Nvrtc,
    /// cuBLAS, `libcublas.so.13`.
    Cublas,
}

impl Lib {
    /// The file name cudarc looks for (CUDA 13).
    pub fn soname(self) -> &'static str {
        match self {
            Lib::Driver => "libcuda.so.1",
            Lib::Nvrtc => "libnvrtc.so.13",
            Lib::Cublas => "libcublas.so.13",
        }
    }
    /// Other files to open first from the same directory (dependencies that
    /// the library itself opens by soname).
    fn companions(self) -> &'static [&'static str] {
        match self {
            Lib::Driver => &[],
            Lib::Nvrtc => &["libnvrtc-builtins.so.13.0"],
            Lib::Cublas => &["libcublasLt.so.13"],
        }
    }
    /// How to provide it.
    pub fn hint(self) -> &'static str {
        match self {
            Lib::Driver => {
                "it comes with the NVIDIA driver, which this machine lacks: \
                 use the Cpu device, or a machine with an NVIDIA GPU and driver ≥ 580"
            }
            Lib::Nvrtc => {
                "install it with `pip install nvidia-cuda-nvrtc==13.0.88` (or `scripts/install-nvrtc`) \
                 and add the directory holding libnvrtc.so.13 (…/site-packages/nvidia/cu13/lib) \
                 to LD_LIBRARY_PATH or KILN_CUDA_LIB_PATH"
            }
            Lib::Cublas => {
                "install it with `pip install nvidia-cublas` (CUDA 13) and add the directory holding \
                 libcublas.so.13 (…/site-packages/nvidia/cu13/lib) to LD_LIBRARY_PATH or KILN_CUDA_LIB_PATH"
            }
        }
    }
    fn present_via_cudarc(self) -> bool {
        // SAFETY: `is_culib_present` only tries to open the library by its
        // soname and closes it again; the only code it runs is the library's
        // initialisers, NVIDIA's, which cudarc would run anyway on first use.
        unsafe {
            match self {
                Lib::Driver => cudarc::driver::sys::is_culib_present(),
                Lib::Nvrtc => cudarc::nvrtc::sys::is_culib_present(),
                Lib::Cublas => cudarc::cublas::sys::is_culib_present(),
            }
        }
    }
}

/// Libraries opened by full path and kept open for the life of the process.
static PRELOADED: Mutex<Vec<libloading::Library>> = Mutex::new(Vec::new());

/// Opens `lib` (and its companions) from `dir` by full path and keeps it open,
/// so that cudarc's open by soname finds it. Returns whether it was there.
pub fn preload_from(lib: Lib, dir: &Path) -> bool {
    let path = dir.join(lib.soname());
    if !path.exists() {
        return false;
    }
    let mut kept = PRELOADED.lock().unwrap_or_else(|e| e.into_inner());
    for c in lib.companions() {
        let p = dir.join(c);
        if p.exists() {
            // SAFETY: opening a shared library runs its initialisers; these are
            // NVIDIA's own libraries, which cudarc would open anyway.
            if let Ok(l) = unsafe { libloading::Library::new(&p) } {
                kept.push(l);
            }
        }
    }
    // SAFETY: as above.
    match unsafe { libloading::Library::new(&path) } {
        Ok(l) => {
            kept.push(l);
            true
        }
        Err(_) => false,
    }
}

fn extra_dirs() -> Vec<PathBuf> {
    std::env::var_os("KILN_CUDA_LIB_PATH")
        .map(|v| {
            std::env::split_paths(&v)
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `lib` can be opened (from the loader's search path or from
/// `KILN_CUDA_LIB_PATH`, preloading it in the latter case).
pub fn present(lib: Lib) -> bool {
    if lib.present_via_cudarc() {
        return true;
    }
    for d in extra_dirs() {
        if preload_from(lib, &d) && lib.present_via_cudarc() {
            return true;
        }
    }
    false
}

/// `Ok` when `lib` is present, else the error that names it and says how to get it.
pub fn require(lib: Lib, device: &str) -> Result<(), Error> {
    if present(lib) {
        Ok(())
    } else {
        Err(Error::Device {
            device: device.into(),
            msg: format!("cannot load {} ({})", lib.soname(), lib.hint()),
        })
    }
}

/// Calls the driver's `cuInit(0)` and `cuDriverGetVersion` through raw
/// symbols before cudarc does: cudarc reads the result as a Rust enum that
/// lacks some codes a real driver returns (35, `CUDA_ERROR_INSUFFICIENT_DRIVER`,
/// for one), which would be undefined behaviour; here any code becomes an
/// error message. Also rejects drivers older than CUDA 13.0.
pub fn driver_init(device: &str) -> Result<(), Error> {
    type Init = unsafe extern "C" fn(u32) -> i32;
    type Version = unsafe extern "C" fn(*mut i32) -> i32;
    type Name = unsafe extern "C" fn(i32, *mut *const std::ffi::c_char) -> i32;
    let err = |msg: String| Error::Device {
        device: device.into(),
        msg,
    };
    let lib = ["libcuda.so.1", "libcuda.so"]
        .iter()
        // SAFETY: opening the driver runs only its initialisers, as cudarc's
        // own open of the same soname would.
        .find_map(|n| unsafe { libloading::Library::new(*n) }.ok())
        .ok_or_else(|| {
            err(format!(
                "cannot load {} ({})",
                Lib::Driver.soname(),
                Lib::Driver.hint()
            ))
        })?;
    let name_of = |code: i32| -> String {
        // SAFETY: `Name` is cuGetErrorName's C signature in the driver API
        // (`CUresult cuGetErrorName(CUresult, const char**)`), and the symbol
        // cannot outlive `lib`, which is alive for this whole function.
        let looked_up = unsafe { lib.get::<Name>(b"cuGetErrorName\0") }
            .ok()
            .and_then(|f| {
                let mut p: *const std::ffi::c_char = std::ptr::null();
                // SAFETY: the signature is right (above) and `&mut p` is a
                // valid `const char**` for the call; any `code` is accepted
                // (an unknown one returns an error and leaves `p` alone).
                let ok = unsafe { f(code, &mut p) } == 0 && !p.is_null();
                ok.then(|| {
                    // SAFETY: on success cuGetErrorName sets `p` (checked
                    // non-null) to a static NUL-terminated string inside the
                    // driver, copied out (`into_owned`) while `lib` is loaded.
                    unsafe { std::ffi::CStr::from_ptr(p) }
                        .to_string_lossy()
                        .into_owned()
                })
            });
        looked_up.unwrap_or_else(|| match code {
            3 => "CUDA_ERROR_NOT_INITIALIZED".into(),
            34 => "CUDA_ERROR_STUB_LIBRARY".into(),
            35 => "CUDA_ERROR_INSUFFICIENT_DRIVER".into(),
            46 => "CUDA_ERROR_DEVICES_UNAVAILABLE".into(),
            100 => "CUDA_ERROR_NO_DEVICE".into(),
            999 => "CUDA_ERROR_UNKNOWN".into(),
            c => format!("CUresult {c}"),
        })
    };
    // SAFETY: `Init` is cuInit's C signature (`CUresult cuInit(unsigned int)`);
    // the symbol is used only while `lib` is alive.
    let init = unsafe { lib.get::<Init>(b"cuInit\0") }
        .map_err(|e| err(format!("libcuda has no cuInit: {e}")))?;
    // SAFETY: cuInit takes flags by value (0 is the only valid value) and may
    // be called any number of times; the result is read as a plain `i32`, so
    // codes Rust's `CUresult` enum lacks are not undefined behaviour here.
    let code = unsafe { init(0) };
    if code != 0 {
        let hint = match code {
            35 => " (the NVIDIA driver is too old for CUDA 13: kiln needs driver ≥ 580)",
            100 => " (no CUDA-capable GPU is visible)",
            34 => {
                " (libcuda is the CUDA toolkit's stub, not a driver: no NVIDIA driver is installed)"
            }
            _ => "",
        };
        return Err(err(format!("cuInit failed: {}{hint}", name_of(code))));
    }
    // SAFETY: `Version` is cuDriverGetVersion's C signature
    // (`CUresult cuDriverGetVersion(int*)`); used only while `lib` is alive.
    if let Ok(version) = unsafe { lib.get::<Version>(b"cuDriverGetVersion\0") } {
        let mut v = 0i32;
        // SAFETY: `&mut v` is a valid `int*` for the one write the call makes.
        if unsafe { version(&mut v) } == 0 && v > 0 && v < 13000 {
            return Err(err(format!(
                "the NVIDIA driver supports CUDA {}.{}, kiln's CUDA device needs 13.0 (driver ≥ 580)",
                v / 1000,
                (v % 1000) / 10
            )));
        }
    }
    // Keep the driver loaded: cudarc opens it again by name.
    std::mem::forget(lib);
    Ok(())
}
