//! `Cuda::new` without a usable GPU returns a clear error and never panics:
//! with no `libcuda` at all, with a fake `libcuda.so.1` whose `cuInit` fails
//! (including code 35, which cudarc's result enum lacks), with one too old for
//! CUDA 13, and with one whose `cuInit` succeeds but that lacks every other
//! symbol (cudarc panics on a missing symbol; kiln turns that into an error).
//!
//! The loader reads LD_LIBRARY_PATH when a process starts, so each case runs
//! this test binary again as a child process with LD_LIBRARY_PATH pointing at
//! the fake library; the child opens the device and prints the outcome.

use std::path::{Path, PathBuf};
use std::process::Command;

const CHILD_ENV: &str = "KILN_FAKE_DRIVER_CHILD";

/// The child's side: does nothing in a normal run.
#[test]
fn child_open_device() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    match kiln_cuda::Cuda::new(0) {
        Ok(d) => println!("RESULT: Ok({})", d.describe()),
        Err(e) => println!("RESULT: Err({e})"),
    }
}

/// Builds `libcuda.so.1` (and `libcuda.so`) from `c_source` into a fresh directory.
fn fake_driver(name: &str, c_source: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("fake-driver-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    if c_source.is_empty() {
        return dir; // no libcuda at all
    }
    let src = dir.join("fake_cuda.c");
    std::fs::write(&src, c_source).unwrap();
    let lib = dir.join("libcuda.so.1");
    let out = Command::new("cc")
        .args(["-shared", "-fPIC", "-Wl,-soname,libcuda.so.1", "-o"])
        .arg(&lib)
        .arg(&src)
        .output()
        .expect("running cc");
    assert!(
        out.status.success(),
        "cc failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::copy(&lib, dir.join("libcuda.so")).unwrap();
    dir
}

/// Runs the child with LD_LIBRARY_PATH = `dir`; returns its RESULT line.
fn run_child(dir: &Path) -> String {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_open_device",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .env("LD_LIBRARY_PATH", dir)
        .env_remove("KILN_CUDA_LIB_PATH")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the child failed (a panic escaped?):\n{stdout}\n{stderr}"
    );
    stdout
        .lines()
        .find_map(|l| l.find("RESULT: ").map(|i| &l[i + "RESULT: ".len()..]))
        .unwrap_or_else(|| panic!("no RESULT line:\n{stdout}\n{stderr}"))
        .to_string()
}

fn system_has_a_driver() -> bool {
    // SAFETY: only tries to open libcuda by its soname and closes it again;
    // the only foreign code that runs is the library's initialisers.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

#[test]
fn no_driver_library() {
    if system_has_a_driver() {
        eprintln!("SKIPPED: this machine has a real libcuda, which LD_LIBRARY_PATH cannot hide");
        return;
    }
    let r = run_child(&fake_driver("none", ""));
    println!("{r}");
    assert!(
        r.starts_with("Err(device cuda:0: cannot load libcuda.so.1"),
        "{r}"
    );
    assert!(r.contains("NVIDIA driver"), "{r}");
}

#[test]
fn cuinit_fails() {
    // 35 is missing from cudarc's CUresult enum: kiln must read it raw.
    for (code, name) in [
        (100, "CUDA_ERROR_NO_DEVICE"),
        (35, "CUDA_ERROR_INSUFFICIENT_DRIVER"),
        (3, "CUDA_ERROR_NOT_INITIALIZED"),
    ] {
        let dir = fake_driver(
            &format!("cuinit-{code}"),
            &format!("int cuInit(unsigned int flags) {{ (void)flags; return {code}; }}\n"),
        );
        let r = run_child(&dir);
        println!("{r}");
        assert!(r.starts_with("Err(device cuda:0: cuInit failed: "), "{r}");
        assert!(r.contains(name), "{r}");
    }
}

#[test]
fn driver_without_symbols() {
    let dir = fake_driver(
        "bare",
        "int cuInit(unsigned int flags) { (void)flags; return 0; }\n",
    );
    let r = run_child(&dir);
    println!("{r}");
    assert!(
        r.starts_with("Err(device cuda:0: creating the CUDA context: "),
        "{r}"
    );
    assert!(r.contains("cuDeviceGet"), "{r}");
}

#[test]
fn driver_too_old() {
    let dir = fake_driver(
        "old",
        "int cuInit(unsigned int f) { (void)f; return 0; }\n\
         int cuDriverGetVersion(int* v) { *v = 12040; return 0; }\n",
    );
    let r = run_child(&dir);
    println!("{r}");
    assert!(r.contains("supports CUDA 12.4"), "{r}");
}
