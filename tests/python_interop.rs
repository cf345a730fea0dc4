//! A kiln checkpoint read by Python's `safetensors` and numpy: same names,
//! shapes, dtypes and values. Needs a Python with safetensors and numpy:
//! `KILN_PYTHON` if set (scripts/test sets it to the project's own
//! `.venv-test/bin/python`, where it installs them), else `.venv-test/` if
//! present, else `python3`; without them the test says so and skips, except
//! under CI=true where it fails.

use kiln::checkpoint::{save, Checkpoint};
use kiln::prelude::*;
use std::process::Command;

kiln::network! {
    pub struct Net {
        input: [4],
        fc1: Linear(3),
        relu,
        fc2: Linear(2, bias = false),
    }
}

/// The Python to run: `KILN_PYTHON`, the project's `.venv-test/`, or `python3`.
fn python() -> String {
    if let Ok(p) = std::env::var("KILN_PYTHON") {
        return p;
    }
    let venv = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv-test/bin/python");
    if std::path::Path::new(venv).exists() {
        return venv.to_string();
    }
    "python3".to_string()
}

fn python_ok() -> bool {
    Command::new(python())
        .args(["-c", "import safetensors, numpy"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

#[test]
fn python_safetensors_reads_what_kiln_writes() {
    if !python_ok() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but {} cannot import safetensors and numpy",
            python()
        );
        eprintln!(
            "skipped: {} cannot import safetensors and numpy (scripts/test installs them into .venv-test/)",
            python()
        );
        return;
    }
    let dir = std::env::temp_dir().join(format!("kiln-py-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("net.safetensors");
    let net = Net::<f32, Cpu>::init(&Cpu, &mut rng(5)).unwrap();
    save(&net, &p).unwrap();
    let out = Command::new(python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/read_checkpoint.py"
        ))
        .arg(&p)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ours = Checkpoint::read(&p).unwrap();
    let theirs = v["tensors"].as_object().unwrap();
    assert_eq!(theirs.len(), 3);
    for (name, t) in theirs {
        assert_eq!(t["dtype"], "float32", "{name}");
        let shape: Vec<usize> = t["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(shape, ours.tensors[name].shape, "{name}");
        let vals: Vec<f32> = t["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(vals, ours.values::<f32>(name).unwrap(), "{name}");
    }
    assert_eq!(theirs["fc1.weight"]["shape"], serde_json::json!([3, 4]));
}
