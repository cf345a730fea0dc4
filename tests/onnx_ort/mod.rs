//! Runs exported models in ONNX Runtime through the project's Python
//! (`scripts/onnx/run_model.py`): `KILN_PYTHON` if set (scripts/test sets it
//! to `.venv-test/bin/python`, where it installs `onnx` and `onnxruntime`),
//! else `.venv-test/` if present, else `python3`. Without them the tests
//! say so and skip, except under CI=true, where they fail.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The Python to run: `KILN_PYTHON`, the project's `.venv-test/`, or `python3`.
pub fn python() -> String {
    if let Ok(p) = std::env::var("KILN_PYTHON") {
        return p;
    }
    let venv = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv-test/bin/python");
    if std::path::Path::new(venv).exists() {
        return venv.to_string();
    }
    "python3".to_string()
}

/// Whether ONNX and ONNX Runtime can be used; `false` (with a message) to
/// skip, a panic under CI=true.
pub fn available() -> bool {
    let ok = Command::new(python())
        .args(["-c", "import onnx, onnxruntime, numpy"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but {} cannot import onnx and onnxruntime",
            python()
        );
        eprintln!(
            "skipped: {} cannot import onnx and onnxruntime (scripts/test installs them into .venv-test/)",
            python()
        );
    }
    ok
}

/// An input fed to the model.
pub enum Data {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I64(Vec<i64>),
}

/// One input: its name, its whole shape (batch first) and values.
pub struct Feed {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Data,
}

/// One output as ONNX Runtime returned it, values widened to `f64`.
#[derive(Debug)]
pub struct Output {
    pub name: String,
    pub shape: Vec<usize>,
    pub values: Vec<f64>,
}

/// What `run_model.py` reported besides the outputs.
#[derive(Debug)]
pub struct Run {
    pub outputs: Vec<Output>,
    pub opset: i64,
    pub versions: String,
}

static N: AtomicUsize = AtomicUsize::new(0);

fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "kiln-onnx-{}-{}-{}",
        std::process::id(),
        tag,
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Checks the model file at `model` with `onnx.checker.check_model(full_check=True)`
/// and runs it in ONNX Runtime on `feeds`.
pub fn run_file(model: &std::path::Path, feeds: &[Feed]) -> Run {
    let dir = scratch("run");
    let mut spec = Vec::new();
    for (i, f) in feeds.iter().enumerate() {
        let file = format!("in{i}.bin");
        let (bytes, dtype): (Vec<u8>, &str) = match &f.data {
            Data::F32(v) => (v.iter().flat_map(|x| x.to_le_bytes()).collect(), "float32"),
            Data::F64(v) => (v.iter().flat_map(|x| x.to_le_bytes()).collect(), "float64"),
            Data::I64(v) => (v.iter().flat_map(|x| x.to_le_bytes()).collect(), "int64"),
        };
        std::fs::write(dir.join(&file), bytes).unwrap();
        spec.push(
            serde_json::json!({"name": f.name, "shape": f.shape, "dtype": dtype, "file": file}),
        );
    }
    std::fs::write(
        dir.join("inputs.json"),
        serde_json::to_vec(&serde_json::Value::Array(spec)).unwrap(),
    )
    .unwrap();
    let out = Command::new(python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/onnx/run_model.py"
        ))
        .arg(model)
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "run_model.py failed on {}:\n{}",
        model.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut outputs = Vec::new();
    for o in v["outputs"].as_array().unwrap() {
        let bytes = std::fs::read(dir.join(o["file"].as_str().unwrap())).unwrap();
        let values: Vec<f64> = match o["dtype"].as_str().unwrap() {
            "float32" => bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
                .collect(),
            "float64" => bytes
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                .collect(),
            d => panic!("unexpected output dtype {d}"),
        };
        outputs.push(Output {
            name: o["name"].as_str().unwrap().to_string(),
            shape: o["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as usize)
                .collect(),
            values,
        });
    }
    let _ = std::fs::remove_dir_all(&dir);
    Run {
        outputs,
        opset: v["opset"].as_i64().unwrap(),
        versions: format!("onnx {}, onnxruntime {}", v["onnx"], v["onnxruntime"]),
    }
}

/// [`run_file`] on model bytes.
pub fn run(model: &[u8], feeds: &[Feed]) -> Run {
    let dir = scratch("model");
    let p = dir.join("model.onnx");
    std::fs::write(&p, model).unwrap();
    let r = run_file(&p, feeds);
    let _ = std::fs::remove_dir_all(&dir);
    r
}

/// `max|a − b| / max|b|`: the error relative to the output's scale (an
/// element-wise ratio would divide by values near zero).
pub fn rel_err(ours: &[f64], theirs: &[f64]) -> f64 {
    assert_eq!(ours.len(), theirs.len());
    let scale = ours
        .iter()
        .fold(0f64, |m, x| m.max(x.abs()))
        .max(f64::MIN_POSITIVE);
    let diff = ours
        .iter()
        .zip(theirs)
        .fold(0f64, |m, (a, b)| m.max((a - b).abs()));
    diff / scale
}

/// Uniform values in [−1, 1) from a fixed seed.
pub fn uniform(n: usize, seed: u64) -> Vec<f32> {
    use kiln::rand::Rng as _;
    let mut r = kiln::rng(seed);
    (0..n).map(|_| r.random::<f32>() * 2.0 - 1.0).collect()
}
