//! kiln against values recorded from PyTorch by
//! `scripts/pytorch/record_fixtures.py` (committed beside its output,
//! `tests/fixtures/torch_reference.json`): optimizer trajectories, losses and
//! their gradients, softmax, and initialiser statistics.

use kiln::optim::{Adam, Optimizer, Sgd};
use kiln::prelude::*;
use kiln::{ParamMut, ParamRef, Path, Role};
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

fn mat(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().flat_map(vec).collect()
}

/// One optimizer step on [`One`], whichever optimizer a case names.
type OptStep = Box<dyn FnMut(&mut One, &OneGrad)>;

/// One trainable vector, to drive the optimizers directly.
struct One {
    p: Tensor<S1<6>, f64>,
}
struct OneGrad {
    g: Tensor<S1<6>, f64>,
}
impl Module<f64, Cpu> for One {
    type Grads = OneGrad;
    fn grads(&self) -> kiln::Result<OneGrad> {
        Ok(OneGrad {
            g: Tensor::zeros(&Cpu, 1)?,
        })
    }
    fn visit(&self, path: &Path<'_>, f: &mut dyn FnMut(&Path<'_>, ParamRef<'_, f64, Cpu>)) {
        f(&path.child("p"), ParamRef::of(&self.p, Role::Param));
    }
    fn visit_grads(
        &mut self,
        g: &OneGrad,
        path: &Path<'_>,
        f: &mut dyn FnMut(&Path<'_>, ParamMut<'_, f64, Cpu>),
    ) {
        f(&path.child("p"), ParamMut::of(&mut self.p, Some(&g.g)));
    }
    fn visit_mut(
        &mut self,
        path: &Path<'_>,
        f: &mut dyn FnMut(&Path<'_>, ParamMut<'_, f64, Cpu>, Role),
    ) {
        f(
            &path.child("p"),
            ParamMut::of(&mut self.p, None),
            Role::Param,
        );
    }
}

#[test]
fn optimizers_follow_torch_trajectories() {
    let fx = fixture();
    let lf = &fx["loss_fn"];
    let (a, b, c, p0) = (vec(&lf["a"]), vec(&lf["b"]), vec(&lf["c"]), vec(&lf["p0"]));
    // ∂/∂p of a·p² + b·p³ + c·sin p
    let grad = |p: &[f64]| -> Vec<f64> {
        (0..6)
            .map(|i| 2.0 * a[i] * p[i] + 3.0 * b[i] * p[i] * p[i] + c[i] * p[i].cos())
            .collect()
    };
    let cases = fx["optim"].as_object().unwrap();
    assert_eq!(cases.len(), 8);
    for (name, case) in cases {
        let lr = case["lr"].as_f64().unwrap();
        let wd = case["weight_decay"].as_f64().unwrap();
        let mut opt: OptStep = if case["kind"] == "sgd" {
            let mut o = Sgd::<f64, Cpu>::new(lr).weight_decay(wd);
            o.momentum = case["momentum"].as_f64().unwrap();
            o.dampening = case["dampening"].as_f64().unwrap();
            o.nesterov = case["nesterov"].as_bool().unwrap();
            Box::new(move |m, g| o.step(m, g).unwrap())
        } else {
            let betas = vec(&case["betas"]);
            let mut o = Adam::<f64, Cpu>::new(lr)
                .betas(betas[0], betas[1])
                .eps(case["eps"].as_f64().unwrap())
                .weight_decay(wd);
            o.decoupled = case["decoupled"].as_bool().unwrap();
            Box::new(move |m, g| o.step(m, g).unwrap())
        };
        let mut m = One {
            p: Tensor::from_slice(&Cpu, &p0).unwrap(),
        };
        let mut g = m.grads().unwrap();
        for (t, want) in case["trajectory"].as_array().unwrap().iter().enumerate() {
            let p = m.p.to_vec().unwrap();
            g.g.copy_from_slice(&grad(&p)).unwrap();
            opt(&mut m, &g);
            let got = m.p.to_vec().unwrap();
            for (x, y) in got.iter().zip(vec(want)) {
                assert!(
                    (x - y).abs() < 1e-12 * (1.0 + y.abs()),
                    "{name} step {}: {x} vs torch {y}",
                    t + 1
                );
            }
        }
    }
}

#[test]
fn losses_and_gradients_match_torch() {
    let fx = fixture();
    let l = &fx["losses"];
    let x = Tensor::<S1<4>, f64>::from_slice(&Cpu, &mat(&l["x"])).unwrap();
    let t = Tensor::<S1<4>, f64>::from_slice(&Cpu, &mat(&l["target"])).unwrap();
    let labels: Vec<u32> = l["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    let y = Labels::<4>::new::<f64>(&Cpu, &labels).unwrap();
    let mut g = Tensor::empty(&Cpu).unwrap();
    let check = |name: &str, v: f64, g: &Tensor<S1<4>, f64>| {
        let want = l[name]["value"].as_f64().unwrap();
        assert!((v - want).abs() < 1e-12, "{name}: {v} vs torch {want}");
        for (a, b) in g.to_vec().unwrap().iter().zip(mat(&l[name]["grad"])) {
            assert!((a - b).abs() < 1e-12, "{name} gradient: {a} vs torch {b}");
        }
    };
    check(
        "cross_entropy",
        cross_entropy(&x, &y, Some(&mut g)).unwrap(),
        &g,
    );
    check(
        "hinge_times_classes",
        hinge(&x, &y, 1.0, Some(&mut g)).unwrap(),
        &g,
    );
    check("mse", mse(&x, &t, Some(&mut g)).unwrap(), &g);
    check("l1", l1(&x, &t, Some(&mut g)).unwrap(), &g);
    check(
        "bce_with_logits",
        bce_with_logits(&x, &t, Some(&mut g)).unwrap(),
        &g,
    );

    let mut s = Tensor::empty(&Cpu).unwrap();
    kiln::Layer::<f64, Cpu>::forward(
        &kiln::layers::Softmax::<S1<4>>::default(),
        &x,
        &mut s,
        &mut (),
    )
    .unwrap();
    for (a, b) in s.to_vec().unwrap().iter().zip(mat(&l["softmax"])) {
        assert!((a - b).abs() < 1e-15, "softmax {a} vs torch {b}");
    }
}

#[test]
fn initialiser_statistics_match_torch() {
    let fx = fixture();
    let cases = [
        ("xavier_uniform", Init::XavierUniform),
        ("xavier_normal", Init::XavierNormal),
        ("lecun_normal", Init::LecunNormal),
        ("he_normal", Init::HeNormal),
        ("he_uniform", Init::HeUniform),
        ("normal_0.01", Init::Normal(0.01)),
        ("torch_default", Init::TorchDefault),
    ];
    let mut r = rng(11);
    for (name, init) in cases {
        let w = init.sample(&[400, 300], 120_000, &mut r);
        let n = w.len() as f64;
        let mean = w.iter().sum::<f64>() / n;
        let std = (w.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1.0)).sqrt();
        let max = w.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let t = &fx["init"][name];
        let (tstd, tmax) = (t["std"].as_f64().unwrap(), t["max_abs"].as_f64().unwrap());
        // Two independent samples of 120 000: standard deviations agree to ~0.4 %.
        assert!(
            (std / tstd - 1.0).abs() < 0.012,
            "{name}: std {std} vs torch {tstd}"
        );
        assert!(mean.abs() < 4.0 * tstd / n.sqrt(), "{name}: mean {mean}");
        if name.contains("uniform") || name == "torch_default" {
            // Uniform: both maxima sit just under the same bound.
            assert!(
                max <= tmax * 1.001 && max >= tmax * 0.999,
                "{name}: max {max} vs torch {tmax}"
            );
        }
    }
    // nn.Linear's bias bound is 1/sqrt(fan_in).
    let lin = kiln::layers::Linear::<f64, Cpu, 300, 400>::build(&Cpu, &mut r, Default::default())
        .unwrap();
    let bmax = lin
        .bias
        .unwrap()
        .to_vec()
        .unwrap()
        .iter()
        .fold(0.0f64, |m, v| m.max(v.abs()));
    let bound = fx["init"]["linear_bias"]["bound"].as_f64().unwrap();
    assert!(
        bmax <= bound && bmax > 0.95 * bound,
        "{bmax} vs bound {bound}"
    );
}
