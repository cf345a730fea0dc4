//! Token-id layers and losses against values recorded from PyTorch by
//! `scripts/pytorch/record_fixtures.py` (`tokens` in
//! `tests/fixtures/torch_reference.json`), compared in f64 to 1e-10.

use kiln::layers::{Embedding, EmbeddingConfig, TokenLayer};
use kiln::prelude::*;
use serde_json::Value;

fn fixture() -> Value {
    let s = include_str!("fixtures/torch_reference.json");
    let v: Value = serde_json::from_str(s).expect("fixture is valid JSON");
    v["tokens"].clone()
}

/// Every number of a nested JSON array, row-major.
fn flat(v: &Value) -> Vec<f64> {
    match v {
        Value::Array(a) => a.iter().flat_map(flat).collect(),
        x => vec![x.as_f64().unwrap()],
    }
}

fn close(what: &str, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-10 * (1.0 + w.abs()),
            "{what}[{i}]: kiln {g} vs torch {w}"
        );
    }
}

#[test]
fn embedding_forward_and_weight_gradient_match_torch() {
    let f = &fixture()["embedding"];
    assert_eq!((f["vocab"].as_u64(), f["dim"].as_u64()), (Some(5), Some(3)));
    let mut e = Embedding::<f64, Cpu, 5, 3>::build(
        &Cpu,
        &mut rng(0),
        EmbeddingConfig {
            padding_idx: Some(f["padding_idx"].as_u64().unwrap() as usize),
            ..Default::default()
        },
    )
    .unwrap();
    e.weight.copy_from_slice(&flat(&f["weight"])).unwrap();
    let ids: Vec<u32> = flat(&f["ids"]).iter().map(|&v| v as u32).collect();
    assert_eq!(ids, [4, 1, 0, 4, 2, 4], "a repeated id and the padding id");
    let x = Tokens::<S1<3>, 5>::new::<f64>(&Cpu, &ids).unwrap();
    let mut y = Tensor::<S2<3, 3>, f64>::empty(&Cpu).unwrap();
    e.forward(&x, &mut y, &mut ()).unwrap();
    let yv = y.to_vec().unwrap();
    close("y", &yv, &flat(&f["y"]));
    // L = Σ y·r + ½ Σ y²: ∂L/∂y = r + y
    let dy: Vec<f64> = flat(&f["r"]).iter().zip(&yv).map(|(r, y)| r + y).collect();
    let dy = Tensor::<S2<3, 3>, f64>::from_slice(&Cpu, &dy).unwrap();
    let mut g = e.grads().unwrap();
    e.backward(&x, &y, &mut (), &dy, &mut g, Acc::Set).unwrap();
    let want = flat(&f["weight_grad"]);
    close("weight_grad", &g.weight.to_vec().unwrap(), &want);
    assert!(
        want[3..6].iter().all(|&v| v == 0.0),
        "torch: no gradient at padding_idx"
    );
}

#[test]
fn per_position_cross_entropy_matches_torch_with_and_without_ignore_index() {
    let f = &fixture()["token_cross_entropy"];
    let logits = Tensor::<S2<3, 4>, f64>::from_slice(&Cpu, &flat(&f["logits"])).unwrap();
    let ids: Vec<u32> = flat(&f["targets"]).iter().map(|&v| v as u32).collect();
    assert_eq!(ids, [0, 3, 1, 2, 1, 1]);
    let targets = Tokens::<S1<3>, 4>::new::<f64>(&Cpu, &ids).unwrap();
    for (case, ignore) in [("ignore_1", Some(1)), ("no_ignore", None)] {
        let mut g = Tensor::empty(&Cpu).unwrap();
        let v = cross_entropy_tokens(&logits, &targets, ignore, Some(&mut g)).unwrap();
        close(case, &[v], &[f[case]["value"].as_f64().unwrap()]);
        close(case, &g.to_vec().unwrap(), &flat(&f[case]["grad"]));
        let v2 = cross_entropy_tokens(&logits, &targets, ignore, None).unwrap();
        assert_eq!(
            v, v2,
            "{case}: the value does not depend on asking for the gradient"
        );
    }
    // every position ignored: torch gives NaN, kiln an error that says why
    let all_one = Tokens::<S1<3>, 4>::new::<f64>(&Cpu, &[1; 6]).unwrap();
    let e = cross_entropy_tokens(&logits, &all_one, Some(1), None).unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid argument to cross_entropy_tokens: all 6 positions of the batch have the target ignore_index = 1: the mean over no positions is undefined (PyTorch returns NaN)"
    );
}
