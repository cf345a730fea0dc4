//! `MultiHeadAttention` against `nn.MultiheadAttention(8, 2,
//! batch_first=True)` in float64: outputs, per-head attention weights and
//! the gradients of `sum(y · dy)` with respect to the queries, the memory and
//! every parameter (matched by `state_dict` name), with a causal `attn_mask`
//! and a `key_padding_mask` from pad ids, recorded by
//! `scripts/pytorch/record_fixtures.py` ("attention") and compared to 1e-10.

use kiln::layers::{AttentionCache, KeyPadding, MultiHeadAttention, MultiHeadAttentionConfig};
use kiln::prelude::*;
use kiln::{Acc, Path};
use serde_json::Value;

fn fixture() -> Value {
    let s = include_str!("fixtures/torch_reference.json");
    serde_json::from_str(s).expect("fixture is valid JSON")
}

fn vec(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// Asserts agreement to 1e-10 and returns the largest difference.
fn close(what: &str, got: &[f64], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let mut worst = 0.0f64;
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!((a - b).abs() <= 1e-10, "{what}[{i}]: kiln {a} vs torch {b}");
        worst = worst.max((a - b).abs());
    }
    worst
}

type Mha<const T: usize, const S: usize> = MultiHeadAttention<f64, Cpu, T, S, 8, 2, 24>;

/// The layer with the case's parameters (names checked against PyTorch's).
fn layer<const T: usize, const S: usize>(c: &Value, bias: bool, causal: bool) -> Mha<T, S> {
    let cfg = MultiHeadAttentionConfig {
        bias,
        causal,
        ..Default::default()
    };
    let mut l = Mha::<T, S>::build(&Cpu, &mut rng(0), cfg).unwrap();
    let params = c["params"].as_object().unwrap();
    let mut seen = Vec::new();
    l.visit_mut(&Path::ROOT, &mut |p, v, _| {
        let want = vec(&params[&p.to_string()]);
        assert_eq!(v.numel, want.len(), "size of {p}");
        v.value[..want.len()].copy_from_slice(&want);
        seen.push(p.to_string());
    });
    let mut names: Vec<&String> = params.keys().collect();
    names.sort();
    seen.sort();
    assert_eq!(seen.iter().collect::<Vec<_>>(), names, "parameter names");
    l
}

fn check_grads<const T: usize, const S: usize>(
    name: &str,
    l: &mut Mha<T, S>,
    g: &<Mha<T, S> as Module<f64, Cpu>>::Grads,
    c: &Value,
) -> f64 {
    let want = c["grads"].as_object().unwrap();
    let (mut worst, mut count) = (0.0f64, 0);
    l.visit_grads(g, &Path::ROOT, &mut |p, v| {
        let key = p.to_string();
        let got = &v.grad.unwrap()[..v.numel];
        worst = worst.max(close(&format!("{name} grad {key}"), got, &vec(&want[&key])));
        count += 1;
    });
    assert_eq!(count, want.len(), "{name}: gradients compared");
    worst
}

fn self_case(name: &str, bias: bool, causal: bool, padded: bool) {
    let fx = fixture();
    let c = &fx["attention"][name];
    let mut l = layer::<5, 5>(c, bias, causal);
    let ids: Vec<u32> = c["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    let ids = Tokens::<S1<5>, 6>::new::<f64>(&Cpu, &ids).unwrap();
    let x = Tensor::<S2<5, 8>, f64>::from_slice(&Cpu, &vec(&c["x"])).unwrap();
    let dy = Tensor::<S2<5, 8>, f64>::from_slice(&Cpu, &vec(&c["dy"])).unwrap();
    let (mut y, mut cache) = (
        Tensor::empty(&Cpu).unwrap(),
        AttentionCache::new(&Cpu).unwrap(),
    );
    let pad = padded.then(|| KeyPadding::new(&ids, 0));
    l.self_attend(&x, pad, &mut y, &mut cache).unwrap();
    let mut worst = close(&format!("{name} y"), &y.to_vec().unwrap(), &vec(&c["y"]));
    let w = l.attention_weights(&cache).unwrap();
    worst = worst.max(close(&format!("{name} weights"), &w, &vec(&c["weights"])));
    let (mut dx, mut g) = (Tensor::empty(&Cpu).unwrap(), l.grads().unwrap());
    l.self_attend_backward(
        &x,
        &mut cache,
        &dy,
        Some((&mut dx, Acc::Set)),
        &mut g,
        Acc::Set,
    )
    .unwrap();
    worst = worst.max(close(
        &format!("{name} dx"),
        &dx.to_vec().unwrap(),
        &vec(&c["dx"]),
    ));
    worst = worst.max(check_grads(name, &mut l, &g, c));
    println!("{name}: largest difference from PyTorch {worst:.2e}");
}

fn cross_case(name: &str, causal: bool, padded: bool) {
    let fx = fixture();
    let c = &fx["attention"][name];
    let mut l = layer::<4, 6>(c, true, causal);
    let ids: Vec<u32> = c["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    let ids = Tokens::<S1<6>, 6>::new::<f64>(&Cpu, &ids).unwrap();
    let x = Tensor::<S2<4, 8>, f64>::from_slice(&Cpu, &vec(&c["x"])).unwrap();
    let m = Tensor::<S2<6, 8>, f64>::from_slice(&Cpu, &vec(&c["memory"])).unwrap();
    let dy = Tensor::<S2<4, 8>, f64>::from_slice(&Cpu, &vec(&c["dy"])).unwrap();
    let (mut y, mut cache) = (
        Tensor::empty(&Cpu).unwrap(),
        AttentionCache::new(&Cpu).unwrap(),
    );
    let pad = padded.then(|| KeyPadding::new(&ids, 0));
    l.cross_attend(&x, &m, pad, &mut y, &mut cache).unwrap();
    let mut worst = close(&format!("{name} y"), &y.to_vec().unwrap(), &vec(&c["y"]));
    let w = l.attention_weights(&cache).unwrap();
    worst = worst.max(close(&format!("{name} weights"), &w, &vec(&c["weights"])));
    let (mut dx, mut dm, mut g) = (
        Tensor::empty(&Cpu).unwrap(),
        Tensor::empty(&Cpu).unwrap(),
        l.grads().unwrap(),
    );
    let (dxs, dms) = (Some((&mut dx, Acc::Set)), Some((&mut dm, Acc::Set)));
    l.cross_attend_backward(&x, &m, &mut cache, &dy, dxs, dms, &mut g, Acc::Set)
        .unwrap();
    worst = worst.max(close(
        &format!("{name} dx"),
        &dx.to_vec().unwrap(),
        &vec(&c["dx"]),
    ));
    worst = worst.max(close(
        &format!("{name} dmemory"),
        &dm.to_vec().unwrap(),
        &vec(&c["dmemory"]),
    ));
    worst = worst.max(check_grads(name, &mut l, &g, c));
    println!("{name}: largest difference from PyTorch {worst:.2e}");
}

#[test]
fn self_attention_matches_torch() {
    self_case("self_plain", true, false, false);
    self_case("self_no_bias", false, false, false);
}

#[test]
fn causal_and_padded_self_attention_matches_torch() {
    self_case("self_causal_padded", true, true, true);
}

#[test]
fn cross_attention_matches_torch() {
    cross_case("cross_padded", false, true);
    cross_case("cross_causal", true, false);
}
