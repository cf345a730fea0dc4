//! nanoGPT's initialisation written with `network!`'s `init = …` options
//! (issue 11's `char_gpt`): every `Linear` weight and the `Embedding` table
//! N(0, 0.02), biases zero, and the residual output projections (`c_proj`)
//! N(0, 0.02/√(2·n_layer)) — `model.py`'s `_init_weights` and its
//! `c_proj.weight` loop. The drawn statistics are checked.

use kiln::prelude::*;

const N_LAYER: usize = 4;

kiln::network! {
    /// The initialised parts of one GPT block's MLP between an embedding and a head.
    pub struct GptInit {
        input ids: Tokens<[8], 65>,
        let h = ids |> wte: Embedding(65, 128, init = normal(0.02))
                    |> c_fc: Linear(512, init = normal(0.02))
                    |> gelu
                    |> c_proj: Linear(128, init = normal(0.02 / (2.0 * N_LAYER as f64).sqrt()));
        output logits = h |> lm_head: Linear(65, bias = false, init = normal(0.02));
    }
}

/// Mean and (population) standard deviation.
fn stats(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
    (mean, var.sqrt())
}

/// `v` looks drawn from N(0, std²): the sample mean within 5 standard errors
/// of 0 and the sample standard deviation within 5 standard errors
/// (`σ/√(2n)`) of `std`.
fn normal_like(name: &str, v: &[f64], std: f64) {
    let n = v.len() as f64;
    let (m, s) = stats(v);
    assert!(m.abs() < 5.0 * std / n.sqrt(), "{name}: mean {m}");
    assert!(
        (s - std).abs() < 5.0 * std / (2.0 * n).sqrt(),
        "{name}: std {s}, want {std}"
    );
}

#[test]
fn gpt_initialisation_has_nanogpts_statistics() {
    let net = GptInit::<f64, Cpu>::init(&Cpu, &mut rng(7)).unwrap();
    let proj_std = 0.02 / (2.0 * N_LAYER as f64).sqrt();
    assert!((proj_std - 0.007_071_067_811_865_475).abs() < 1e-15);
    normal_like("wte.weight", &net.wte.weight.to_vec().unwrap(), 0.02);
    normal_like("c_fc.weight", &net.c_fc.weight.to_vec().unwrap(), 0.02);
    normal_like(
        "c_proj.weight",
        &net.c_proj.weight.to_vec().unwrap(),
        proj_std,
    );
    normal_like(
        "lm_head.weight",
        &net.lm_head.weight.to_vec().unwrap(),
        0.02,
    );
    // Biases start at zero (a named initialiser other than PyTorch's default
    // zeroes the bias, as nanoGPT's `_init_weights` does).
    let biases = [
        net.c_fc.bias.as_ref().expect("bias").to_vec().unwrap(),
        net.c_proj.bias.as_ref().expect("bias").to_vec().unwrap(),
    ];
    for b in biases {
        assert!(b.iter().all(|&x| x == 0.0));
    }
    assert!(net.lm_head.bias.is_none());
    // The projection is visibly narrower than the others.
    let (_, s_fc) = stats(&net.c_fc.weight.to_vec().unwrap());
    let (_, s_proj) = stats(&net.c_proj.weight.to_vec().unwrap());
    assert!(s_proj < 0.4 * s_fc, "{s_proj} vs {s_fc}");
}
