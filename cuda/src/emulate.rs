//! Host emulation of kiln's CUDA kernels, for testing without a GPU.
//!
//! The kernel sources are compiled by the system C++ compiler against a small
//! shim header (`cuda/tests/shim/cuda_shim.h`) that runs each block with one
//! host thread per CUDA thread: `__syncthreads()` is a barrier, warp shuffles
//! go through a per-warp exchange and barrier, `__shared__` variables are
//! shared by the block's threads. [`dispatch_source`] generates the library's
//! entry point, which assigns every kernel to a function pointer of the type
//! declared in [`crate::kernels`] (a compile error on any mismatch) and calls
//! it with the arguments of a launch plan; [`Cuda::emulated`](crate::Cuda::emulated)
//! loads the library and runs plans through it.

use crate::kernels::{self, Dtype, Param};
use kiln_core::{Error, Result};
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};

/// One argument across the C ABI: `kind` 0 = `u64` (sizes and pointers),
/// 1 = `int`, 2 = a real (`f`, converted to the kernel's `T`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct KArg {
    /// 0, 1 or 2 (see the type's doc).
    pub kind: i32,
    /// Padding (keeps the layout explicit).
    pub pad: i32,
    /// A `u64` or an `int` (sign-extended).
    pub u: u64,
    /// A real.
    pub f: f64,
}

/// `int kiln_shim_launch(const char* name, size_t name_len, unsigned grid,
/// unsigned block, const KArg* args, int nargs)`: 0 on success, 1 for an
/// unknown kernel, 2 for a wrong argument count, 3 for a wrong argument kind.
type LaunchFn = unsafe extern "C" fn(*const u8, usize, u32, u32, *const KArg, i32) -> i32;

/// The loaded shim library.
pub(crate) struct HostShim {
    _lib: libloading::Library,
    launch: LaunchFn,
    executed: Mutex<BTreeSet<&'static str>>,
    scratch: Mutex<Vec<u64>>,
}

impl HostShim {
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let err = |m: String| Error::Device {
            device: "cuda-emulated".into(),
            msg: format!("{}: {m}", path.display()),
        };
        // SAFETY: loading runs the library's initialisers, and this library is
        // kiln's shim, compiled by `build` from kiln's own generated C++ (the
        // kernels and a dispatcher): nothing foreign runs, only kiln's code and
        // the C++ runtime's.
        let lib = unsafe { libloading::Library::new(path) }.map_err(|e| err(e.to_string()))?;
        // SAFETY: the symbol has the type `LaunchFn` (`dispatch_source` generates
        // its definition with that C signature). The function pointer copied out
        // below is stored next to `_lib` in `HostShim`, so the library stays
        // loaded for as long as `launch` can be called.
        let launch = unsafe { lib.get::<LaunchFn>(b"kiln_shim_launch\0") }
            .map_err(|e| err(e.to_string()))?;
        let launch = *launch;
        Ok(HostShim {
            _lib: lib,
            launch,
            executed: Mutex::new(BTreeSet::new()),
            scratch: Mutex::new(Vec::new()),
        })
    }

    pub(crate) fn scratch(&self) -> MutexGuard<'_, Vec<u64>> {
        self.scratch.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn executed(&self) -> Vec<&'static str> {
        self.executed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .copied()
            .collect()
    }

    pub(crate) fn launch(
        &self,
        sym: &'static str,
        grid: u32,
        block: u32,
        args: &[KArg],
    ) -> std::result::Result<(), String> {
        // SAFETY: `sym` and `args` are valid for the lengths passed and `KArg` is
        // `repr(C)`, the layout the shim declares; the shim itself rejects an
        // unknown kernel or a wrong argument count or kind (codes 1–3). Pointer
        // arguments are host buffers long enough for the launch: the Backend
        // method that built the plan checked the lengths (`need`), and the
        // caller matched the arguments to the kernel's declared parameters
        // (`Launch::check`) before filling `args`.
        let r = unsafe {
            (self.launch)(
                sym.as_ptr(),
                sym.len(),
                grid,
                block,
                args.as_ptr(),
                args.len() as i32,
            )
        };
        if r != 0 {
            return Err(format!(
                "kiln internal error: shim launch of {sym} failed with code {r}"
            ));
        }
        self.executed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(sym);
        Ok(())
    }
}

fn c_param(p: Param, t: &str) -> String {
    match p {
        Param::In => format!("const {t}*"),
        Param::Out => format!("{t}*"),
        Param::Labels => "const u32*".into(),
        Param::OutU32 => "u32*".into(),
        Param::OutF64 => "double*".into(),
        Param::U64 => "u64".into(),
        Param::I32 => "int".into(),
        Param::Real => t.into(),
    }
}

fn c_arg(i: usize, p: Param, t: &str) -> String {
    match p {
        Param::In | Param::Out | Param::Labels | Param::OutU32 | Param::OutF64 => {
            format!("({})a[{i}].u", c_param(p, t))
        }
        Param::U64 => format!("(u64)a[{i}].u"),
        Param::I32 => format!("(int)(long long)a[{i}].u"),
        Param::Real => format!("({t})a[{i}].f"),
    }
}

fn kind_of(p: Param) -> i32 {
    match p {
        Param::In | Param::Out | Param::Labels | Param::OutU32 | Param::OutF64 | Param::U64 => 0,
        Param::I32 => 1,
        Param::Real => 2,
    }
}

/// The C++ translation unit of the shim library: the shim header, every
/// module's source, and the dispatching entry point.
pub fn dispatch_source() -> String {
    let mut s = String::new();
    s.push_str("// Generated by kiln_cuda::emulate::dispatch_source. Do not edit.\n");
    s.push_str("#include \"cuda_shim.h\"\n#include <cstring>\n#include <mutex>\n#include <string_view>\n\n");
    s.push_str(kernels::COMMON);
    for m in kernels::MODULES {
        let _ = write!(s, "\n// ---- {}.cu\n{}\n", m.name, m.source);
    }
    s.push_str(
        "\nstruct KArg { int kind; int pad; unsigned long long u; double f; };\n\
         typedef int (*KilnCall)(unsigned, unsigned, const KArg*);\n\n",
    );
    let mut table = String::new();
    for k in kernels::all() {
        for dt in Dtype::ALL {
            let (sym, t) = (k.symbol(dt), dt.c_type());
            let params: Vec<String> = k.params.iter().map(|p| c_param(*p, t)).collect();
            let args: Vec<String> = k
                .params
                .iter()
                .enumerate()
                .map(|(i, p)| c_arg(i, *p, t))
                .collect();
            let kinds: Vec<String> = k.params.iter().map(|p| kind_of(*p).to_string()).collect();
            let _ = writeln!(
                s,
                "static int call_{sym}(unsigned grid, unsigned block, const KArg* a) {{\n\
                 \x20   static const int kinds[] = {{{kinds}}};\n\
                 \x20   for (int i = 0; i < {n}; ++i) if (a[i].kind != kinds[i]) return 3;\n\
                 \x20   void (*fp)({params}) = {sym};\n\
                 \x20   kiln_shim::launch(grid, block, [&] {{ fp({args}); }});\n\
                 \x20   return 0;\n}}",
                kinds = kinds.join(", "),
                n = k.params.len(),
                params = params.join(", "),
                args = args.join(", "),
            );
            let _ = writeln!(
                table,
                "    {{\"{sym}\", {n}, call_{sym}}},",
                n = k.params.len()
            );
        }
    }
    let _ = write!(
        s,
        "\nstruct KilnEntry {{ const char* name; int nargs; KilnCall call; }};\n\
         static const KilnEntry kiln_table[] = {{\n{table}}};\n\n\
         extern \"C\" int kiln_shim_launch(const char* name, size_t len, unsigned grid, unsigned block,\n\
         \x20                                 const KArg* args, int nargs) {{\n\
         \x20   static std::mutex one_launch_at_a_time;  // __shared__ is static storage in the shim\n\
         \x20   std::lock_guard<std::mutex> guard(one_launch_at_a_time);\n\
         \x20   std::string_view want(name, len);\n\
         \x20   for (const KilnEntry& e : kiln_table) {{\n\
         \x20       if (want != e.name) continue;\n\
         \x20       if (nargs != e.nargs) return 2;\n\
         \x20       return e.call(grid, block, args);\n\
         \x20   }}\n\
         \x20   return 1;\n}}\n"
    );
    s
}

/// Writes [`dispatch_source`] into `out_dir` and compiles it with `cxx`
/// (`g++` when `None`) into `out_dir/libkiln_cuda_shim.so`, with `shim_dir`
/// (holding `cuda_shim.h`) on the include path. The error carries the
/// compiler's output. A library built from the same source and header is
/// reused (the build takes about 10 s).
pub fn build(out_dir: &Path, shim_dir: &Path, cxx: Option<&str>) -> Result<PathBuf> {
    let io = |path: &Path, e: std::io::Error| Error::Io {
        path: path.to_path_buf(),
        source: e,
    };
    std::fs::create_dir_all(out_dir).map_err(|e| io(out_dir, e))?;
    let src = out_dir.join("kiln_cuda_shim.cpp");
    let lib = out_dir.join("libkiln_cuda_shim.so");
    let header = shim_dir.join("cuda_shim.h");
    let text = format!(
        "{}\n// cuda_shim.h as compiled:\n/*\n{}\n*/\n",
        dispatch_source(),
        std::fs::read_to_string(&header)
            .map_err(|e| io(&header, e))?
            .replace("*/", "* /")
    );
    if lib.exists() && std::fs::read_to_string(&src).ok().as_deref() == Some(text.as_str()) {
        return Ok(lib);
    }
    // Build under temporary names and rename, so that concurrent test binaries
    // sharing `out_dir` never load a half-written library.
    let pid = std::process::id();
    let (tmp_src, tmp_lib) = (
        out_dir.join(format!("kiln_cuda_shim.{pid}.cpp")),
        out_dir.join(format!("libkiln_cuda_shim.{pid}.so")),
    );
    std::fs::write(&tmp_src, &text).map_err(|e| io(&tmp_src, e))?;
    let cxx = cxx.unwrap_or("g++");
    let out = Command::new(cxx)
        .args([
            "-std=c++20",
            "-pthread",
            "-O2",
            "-shared",
            "-fPIC",
            "-Wall",
            "-Wno-unused-function",
            "-o",
        ])
        .arg(&tmp_lib)
        .arg("-I")
        .arg(shim_dir)
        .arg(&tmp_src)
        .output()
        .map_err(|e| io(Path::new(cxx), e))?;
    if !out.status.success() {
        return Err(Error::Device {
            device: "cuda-emulated".into(),
            msg: format!(
                "{cxx} failed on {}:\n{}{}",
                tmp_src.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        });
    }
    std::fs::rename(&tmp_lib, &lib).map_err(|e| io(&lib, e))?;
    std::fs::rename(&tmp_src, &src).map_err(|e| io(&src, e))?;
    Ok(lib)
}
