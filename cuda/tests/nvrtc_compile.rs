//! Every kernel source compiles with NVRTC, and the compiled PTX holds exactly
//! the registered kernels with the registered parameter lists.
//!
//! NVRTC comes from PyPI (`scripts/install-nvrtc`); the test finds it through
//! LD_LIBRARY_PATH, `KILN_CUDA_LIB_PATH`, or `<repo>/.nvrtc` (under `CI=true`
//! it runs `scripts/install-nvrtc` itself when none of these has it). Without
//! it the test is skipped, except under `CI=true`, where it fails.

use kiln_cuda::kernels::{self, Dtype, Param};
use kiln_cuda::libs::{self, Lib};
use std::path::Path;

fn nvrtc_available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        if libs::present(Lib::Nvrtc) {
            return true;
        }
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let dir = repo.join(".nvrtc/nvidia/cu13/lib");
        if libs::preload_from(Lib::Nvrtc, &dir) && libs::present(Lib::Nvrtc) {
            return true;
        }
        // Under CI=true, install it (pip, idempotent) rather than fail on a
        // missing setup step.
        if std::env::var("CI").as_deref() == Ok("true") {
            let script = repo.join("scripts/install-nvrtc");
            eprintln!("NVRTC not found: running {}", script.display());
            if let Ok(out) = std::process::Command::new(&script).output() {
                eprint!("{}", String::from_utf8_lossy(&out.stderr));
                let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
                return out.status.success()
                    && libs::preload_from(Lib::Nvrtc, Path::new(&dir))
                    && libs::present(Lib::Nvrtc);
            }
        }
        false
    })
}

/// The `.param` types of entry `sym` in `ptx`, in order.
fn entry_params(ptx: &str, sym: &str) -> Option<Vec<String>> {
    let start = ptx.find(&format!(".entry {sym}("))?;
    let rest = &ptx[start..];
    let end = rest.find(')')?;
    Some(
        rest[..end]
            .lines()
            .filter_map(|l| {
                let l = l.trim();
                l.strip_prefix(".param ")
                    .map(|p| p.split_whitespace().next().unwrap_or("").to_string())
            })
            .collect(),
    )
}

fn ptx_type(p: Param, dt: Dtype) -> &'static str {
    match p {
        Param::In | Param::Out | Param::Labels | Param::OutU32 | Param::OutF64 | Param::U64 => {
            ".u64"
        }
        Param::I32 => ".u32",
        Param::Real => match dt {
            Dtype::F32 => ".f32",
            Dtype::F64 => ".f64",
        },
    }
}

#[test]
fn every_kernel_compiles_with_nvrtc() {
    if !nvrtc_available() {
        let msg = format!(
            "libnvrtc.so.13 cannot be loaded: {}. Run scripts/install-nvrtc and export \
             LD_LIBRARY_PATH=$(scripts/install-nvrtc)",
            Lib::Nvrtc.hint()
        );
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("CI=true and {msg}");
        }
        eprintln!("SKIPPED: {msg}");
        return;
    }
    let mut failures = Vec::new();
    let (mut modules, mut entries) = (0, 0);
    for m in kernels::MODULES {
        let ptx = match kiln_cuda::compile_ptx(m, None) {
            Ok(p) => p.to_src(),
            Err(log) => {
                eprintln!("NVRTC failed on {}.cu:\n{log}", m.name);
                failures.push(format!("{}.cu does not compile", m.name));
                continue;
            }
        };
        modules += 1;
        let in_ptx = ptx.matches(".entry ").count();
        if in_ptx != 2 * m.kernels.len() {
            failures.push(format!(
                "{}.cu: the PTX has {in_ptx} entries but the registry lists {} kernels × 2 dtypes",
                m.name,
                m.kernels.len()
            ));
        }
        for k in m.kernels {
            for dt in Dtype::ALL {
                let sym = k.symbol(dt);
                let Some(got) = entry_params(&ptx, sym) else {
                    failures.push(format!("{}.cu: no entry {sym}", m.name));
                    continue;
                };
                let want: Vec<&str> = k.params.iter().map(|p| ptx_type(*p, dt)).collect();
                if got != want {
                    failures.push(format!(
                        "{sym}: PTX parameters {got:?}, registry says {want:?}"
                    ));
                }
                entries += 1;
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // 13 until dropout's kernels left `elementwise.cu` for a family file of
    // their own (`dropout.cu`), with the penalty gradient moving to `optim.cu`.
    // 15 with the LSTM cell's (`lstm.cu`), 16 with the GRU cell's (`gru.cu`),
    // 17 with the Elman RNN cell's (`rnn.cu`), 18 with attention's masked
    // softmax (`attention.cu`), 19 with L2Normalize's (`l2_normalize.cu`).
    assert_eq!(modules, 19, "modules compiled");
    assert_eq!(kernels::MODULES.len(), 19);
    assert_eq!(entries, 2 * kernels::KERNEL_COUNT, "kernels compiled");
    // 59 hand-written kernels per dtype before the element-wise table, which
    // now generates 2 per function (6 functions: 12, was 8 hand-written);
    // 2 more for the embedding's gather and scatter-add; PReLU's 3,
    // LayerNorm's 3, the LSTM cell's 2, the GRU cell's 2, the RNN cell's 2,
    // attention's masked softmax 2; the guided-backpropagation and deconvnet
    // ReLUs' 4 (two more entries of the element-wise table); L2Normalize's 2;
    // the table's fused bias kernels, 2 per function (8 functions: 16).
    assert_eq!(entries, 202);
    println!("NVRTC compiled {modules} modules, {entries} kernels");
}

#[test]
fn kernel_names_follow_the_scheme() {
    let mut seen = std::collections::HashSet::new();
    for k in kernels::all() {
        assert!(
            k.name.ends_with("_fwd") || k.name.ends_with("_bwd"),
            "{}",
            k.name
        );
        assert_eq!(k.f32, format!("{}_f32", k.name));
        assert_eq!(k.f64, format!("{}_f64", k.name));
        assert!(seen.insert(k.name), "{} registered twice", k.name);
        let m = kernels::module(k.module).unwrap();
        // Hand-written modules spell each kernel out; the generated `unary`
        // module instantiates `KILN_UNARY(<function>, …)` per dtype.
        let unary = ["_bias_fwd", "_bias_bwd", "_fwd", "_bwd"]
            .iter()
            .find_map(|s| k.name.strip_suffix(s));
        assert!(
            m.source.contains(&format!("void {}_##S(", k.name))
                || (k.module == "unary"
                    && m.source
                        .contains(&format!("KILN_UNARY({}, ", unary.unwrap_or("")))),
            "{} not in {}.cu",
            k.name,
            k.module
        );
    }
    assert_eq!(seen.len(), kernels::KERNEL_COUNT);
}

#[test]
fn a_broken_kernel_fails_with_the_nvrtc_log() {
    if !nvrtc_available() {
        eprintln!(
            "SKIPPED: NVRTC not available (every_kernel_compiles_with_nvrtc fails under CI=true)"
        );
        return;
    }
    let broken = kernels::Module {
        name: "broken",
        source:
            "extern \"C\" __global__ void broken_fwd_f32(float* y) { y[0] = undefined_name; }\n",
        kernels: &[],
    };
    let Err(log) = kiln_cuda::compile_ptx(&broken, None) else {
        panic!("NVRTC accepted a broken kernel");
    };
    assert!(log.contains("NVRTC_ERROR_COMPILATION"), "{log}");
    assert!(
        log.contains("undefined_name"),
        "the log should name the error: {log}"
    );
}
