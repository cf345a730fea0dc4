//! Trains and gradient-checks the networks of this crate through the renamed
//! dependency `deep`.

use deep::prelude::*;
use deep::testing::check_layer;
use kiln_downstream::{Classifier, Residual, Stacked};

/// A synthetic 3-class problem: 4 features uniform in [-1, 1], the class is
/// the arg-max of a fixed linear teacher (`W x`), so it is learnable.
fn problem(n: usize) -> (Vec<f32>, Vec<u32>) {
    const W: [[f32; 4]; 3] = [
        [1.0, -0.5, 0.3, 0.0],
        [-0.7, 1.0, 0.0, 0.4],
        [0.0, 0.2, -1.0, 0.8],
    ];
    let mut state = 0x2545_f491_u64;
    let mut next = move || {
        // xorshift64*: a fixed stream, no extra dependency.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let v = state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40;
        (v as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    };
    let mut xs = Vec::with_capacity(n * 4);
    let mut ys = Vec::with_capacity(n);
    for _ in 0..n {
        let x: [f32; 4] = [next(), next(), next(), next()];
        let scores = W.map(|w| w.iter().zip(&x).map(|(a, b)| a * b).sum::<f32>());
        let y = (0..3)
            .max_by(|&a, &b| scores[a].total_cmp(&scores[b]))
            .unwrap_or(0);
        xs.extend_from_slice(&x);
        ys.push(y as u32);
    }
    (xs, ys)
}

/// Full-batch Adam on the synthetic problem; returns the first and the last
/// training loss and the loss of the trained network in evaluation mode.
macro_rules! train {
    ($net:ty, $steps:expr) => {{
        let (xs, ys) = problem(256);
        let x = Tensor::<S1<4>>::from_slice(&Cpu, &xs)?;
        let y = Labels::<3>::new::<f32>(&Cpu, &ys)?;
        let mut net = <$net>::init(&Cpu, &mut rng(7))?;
        let (mut tape, mut grads) = (net.tape()?, net.grads()?);
        let mut dlogits = Tensor::empty(&Cpu)?;
        let mut opt = Adam::new(1e-2);
        let mut first = None;
        let mut last = 0.0;
        for _ in 0..$steps {
            let logits = net.forward_train(&x, &mut tape)?;
            last = cross_entropy(logits, &y, Some(&mut dlogits))?;
            first.get_or_insert(last);
            net.backward(&mut tape, &dlogits, &mut grads)?;
            opt.step(&mut net, &grads)?;
        }
        let eval = cross_entropy(&net.forward(&x)?, &y, None)?;
        let first = first.unwrap_or(f32::NAN);
        eprintln!(
            "{}: loss {first:.4} -> {last:.4} (eval {eval:.4})",
            stringify!($net)
        );
        (first, last, eval)
    }};
}

#[test]
fn chain_trains() -> deep::Result<()> {
    let (first, last, eval) = train!(Classifier<f32, Cpu>, 300);
    assert!(last < 0.1 * first, "loss went from {first} to {last}");
    assert!(eval < 0.1 * first, "eval loss {eval}, first {first}");
    Ok(())
}

#[test]
fn residual_graph_trains() -> deep::Result<()> {
    let (first, last, eval) = train!(Residual<f32, Cpu>, 300);
    assert!(last < 0.1 * first, "loss went from {first} to {last}");
    assert!(eval < 0.1 * first, "eval loss {eval}, first {first}");
    Ok(())
}

#[test]
fn nested_network_trains() -> deep::Result<()> {
    let (first, last, eval) = train!(Stacked<f32, Cpu>, 300);
    assert!(last < 0.1 * first, "loss went from {first} to {last}");
    assert!(eval < 0.1 * first, "eval loss {eval}, first {first}");
    Ok(())
}

#[test]
fn gradients_match_finite_differences() -> deep::Result<()> {
    let mut chain = Classifier::<f64, Cpu>::init(&Cpu, &mut rng(1))?;
    let err = check_layer(&mut chain, 3, 11)?;
    eprintln!("Classifier: max relative error {err:e}");
    assert!(err < 1e-6, "Classifier: relative error {err:e}");

    let mut graph = Residual::<f64, Cpu>::init(&Cpu, &mut rng(2))?;
    let err = check_layer(&mut graph, 3, 12)?;
    eprintln!("Residual: max relative error {err:e}");
    assert!(err < 1e-6, "Residual: relative error {err:e}");

    let mut nested = Stacked::<f64, Cpu>::init(&Cpu, &mut rng(3))?;
    let err = check_layer(&mut nested, 3, 13)?;
    eprintln!("Stacked: max relative error {err:e}");
    assert!(err < 1e-6, "Stacked: relative error {err:e}");
    Ok(())
}

#[test]
fn constants_come_from_the_macro() {
    assert_eq!(Classifier::PARAMS, 4 * 16 + 16 + 16 * 16 + 16 + 16 * 3 + 3);
    assert_eq!(Residual::PARAMS, 2 * (4 * 4 + 4) + 4 * 3 + 3);
    assert_eq!(Stacked::PARAMS, Residual::PARAMS + 3 * 3 + 3);
    assert_eq!(Residual::INPUTS, &[&[4usize][..]]);
    assert_eq!(Residual::OUTPUTS, &[&[3usize][..]]);
    // No element type or device to name: the table is the same for all.
    let table = Classifier::summary();
    assert!(table.starts_with("Classifier"), "{table}");
    assert!(table.contains("fc3"), "{table}");
}

/// kiln's generator draws numbers through the `rand` that kiln re-exports
/// (`deep::rand`, and the trait's methods from the prelude), so a user's
/// crate needs no `rand` dependency of its own: this crate has none.
#[test]
fn random_numbers_need_no_rand_dependency() {
    let mut r = deep::rng(7);
    let a: f32 = r.random();
    let b = deep::rand::Rng::random_range(&mut r, 10..20u32);
    assert!((0.0..1.0).contains(&a));
    assert!((10..20).contains(&b));
    let (mut s, mut t) = (deep::rng(7), deep::rng(7));
    assert_eq!(
        s.random::<u64>(),
        t.random::<u64>(),
        "same seed, same stream"
    );
}
