//! Checkpoints: round trip, all-or-nothing loading with every mismatch named,
//! atomic saves, and damaged files reported as errors.

use kiln::checkpoint::{load, save, Checkpoint};
use kiln::prelude::*;
use kiln::Path as PPath;

kiln::network! {
    pub struct Net {
        input: [6],
        fc1: Linear(5),
        relu,
        fc2: Linear(3),
    }
}

kiln::network! {
    /// Same names, other shapes, one layer more.
    pub struct Wider {
        input: [6],
        fc1: Linear(7),
        relu,
        fc2: Linear(3),
        relu,
        fc3: Linear(2),
    }
}

fn values<M: Module<f32, Cpu>>(m: &M) -> Vec<f32> {
    let mut v = Vec::new();
    m.visit(&PPath::ROOT, &mut |_, p| {
        v.extend_from_slice(&p.value[..p.numel])
    });
    v
}

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("kiln-ckpt-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join("model.safetensors")
}

#[test]
fn round_trip_keeps_every_value_and_pytorch_names() {
    let p = tmp("roundtrip");
    let a = Net::<f32, Cpu>::init(&Cpu, &mut rng(1)).unwrap();
    save(&a, &p).unwrap();
    let mut b = Net::<f32, Cpu>::init(&Cpu, &mut rng(2)).unwrap();
    assert_ne!(values(&a), values(&b));
    load(&mut b, &p).unwrap();
    assert_eq!(values(&a), values(&b));
    let c = Checkpoint::read(&p).unwrap();
    let names: Vec<&str> = c.tensors.keys().map(|s| s.as_str()).collect();
    assert_eq!(names, ["fc1.bias", "fc1.weight", "fc2.bias", "fc2.weight"]);
    assert_eq!(c.tensors["fc1.weight"].shape, vec![5, 6]);
}

#[test]
fn mismatched_load_names_every_problem_and_changes_nothing() {
    let p = tmp("mismatch");
    save(&Net::<f32, Cpu>::init(&Cpu, &mut rng(1)).unwrap(), &p).unwrap();
    let mut w = Wider::<f32, Cpu>::init(&Cpu, &mut rng(3)).unwrap();
    let before = values(&w);
    let e = load(&mut w, &p).unwrap_err().to_string();
    assert!(
        e.contains("checkpoint does not match the model (5 problems)"),
        "{e}"
    );
    assert!(
        e.contains("`fc1.weight`: shape [5, 6] in the checkpoint, [7, 6] in the model"),
        "{e}"
    );
    assert!(
        e.contains("`fc1.bias`: shape [5] in the checkpoint, [7] in the model"),
        "{e}"
    );
    assert!(
        e.contains("`fc2.weight`: shape [3, 5] in the checkpoint, [3, 7] in the model"),
        "{e}"
    );
    assert!(
        e.contains("`fc3.weight` [2, 3]: missing from the checkpoint"),
        "{e}"
    );
    assert!(
        e.contains("`fc3.bias` [2]: missing from the checkpoint"),
        "{e}"
    );
    assert_eq!(
        values(&w),
        before,
        "a failed load must not change the model"
    );

    // dtype: an f64 model cannot silently load f32 weights.
    let mut d = Net::<f64, Cpu>::init(&Cpu, &mut rng(1)).unwrap();
    let e = load(&mut d, &p).unwrap_err().to_string();
    assert!(
        e.contains("`fc1.weight`: dtype F32 in the checkpoint, the model uses F64"),
        "{e}"
    );
}

#[test]
fn an_interrupted_save_leaves_the_previous_file_intact() {
    let p = tmp("atomic");
    let a = Net::<f32, Cpu>::init(&Cpu, &mut rng(1)).unwrap();
    save(&a, &p).unwrap();
    let good = std::fs::read(&p).unwrap();
    let mut c = Checkpoint::new();
    c.add_module("", &Net::<f32, Cpu>::init(&Cpu, &mut rng(9)).unwrap())
        .unwrap();
    c.save_interrupted(&p).unwrap();
    assert_eq!(std::fs::read(&p).unwrap(), good);
    let mut b = Net::<f32, Cpu>::init(&Cpu, &mut rng(2)).unwrap();
    load(&mut b, &p).unwrap();
    assert_eq!(values(&a), values(&b));
}

#[test]
fn damaged_files_are_errors_not_panics() {
    let p = tmp("damaged");
    save(&Net::<f32, Cpu>::init(&Cpu, &mut rng(1)).unwrap(), &p).unwrap();
    let good = std::fs::read(&p).unwrap();
    let mut m = Net::<f32, Cpu>::init(&Cpu, &mut rng(2)).unwrap();
    let before = values(&m);
    // Every truncation, and a few corruptions of the header.
    for cut in (0..good.len()).step_by(7) {
        std::fs::write(&p, &good[..cut]).unwrap();
        let e = load(&mut m, &p).unwrap_err().to_string();
        assert!(e.contains("model.safetensors"), "{e}");
    }
    for (i, b) in [(0usize, 0xffu8), (3, 0x7f), (9, b'x'), (12, 0)] {
        let mut bad = good.clone();
        bad[i] = b;
        std::fs::write(&p, &bad).unwrap();
        assert!(load(&mut m, &p).is_err());
    }
    assert_eq!(values(&m), before);
    let e = load(&mut m, "/nonexistent/kiln.safetensors")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("/nonexistent/kiln.safetensors: "), "{e}");
}
