//! The training toolkit against values recorded from PyTorch by
//! `scripts/pytorch/record_fixtures.py` (in `tests/fixtures/torch_reference.json`):
//! Adagrad and RMSprop trajectories, gradient clipping, penalties, frozen
//! parameters, learning-rate schedules, and the distribution losses.

use kiln::loss::{cross_entropy_smoothed, focal_loss, kl_div, soft_cross_entropy};
use kiln::optim::{Adagrad, Adam, ClipGradNorm, Optimizer, RmsProp, Sgd};
use kiln::prelude::*;
use kiln::regularize::Penalty;
use kiln::schedule::{
    ConstantLr, CosineAnnealingLr, CosineAnnealingWarmRestarts, ExponentialLr, LinearLr,
    LrScheduler, Schedule, Sequential, StepLr,
};
use kiln::{ParamMut, ParamRef, Path, Role};
use serde_json::Value;

fn fixture() -> Value {
    serde_json::from_str(include_str!("fixtures/torch_reference.json"))
        .expect("fixture is valid JSON")
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

fn f(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("fixture field {key}"))
}

fn u(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("fixture field {key}"))
}

/// The fixture's 6-value parameter as two tensors, `p1` (4 values) and `p2`
/// (2), like the script's split for clipping and freezing. Every optimizer
/// works element by element, so the split does not change single-tensor
/// trajectories.
struct Split {
    p1: Tensor<S1<4>, f64>,
    p2: Tensor<S1<2>, f64>,
}
struct SplitGrads {
    p1: Tensor<S1<4>, f64>,
    p2: Tensor<S1<2>, f64>,
}
impl Module<f64, Cpu> for Split {
    type Grads = SplitGrads;
    fn grads(&self) -> kiln::Result<SplitGrads> {
        Ok(SplitGrads {
            p1: Tensor::zeros(&Cpu, 1)?,
            p2: Tensor::zeros(&Cpu, 1)?,
        })
    }
    fn visit(&self, path: &Path<'_>, f: &mut dyn FnMut(&Path<'_>, ParamRef<'_, f64, Cpu>)) {
        f(&path.child("p1"), ParamRef::of(&self.p1, Role::Param));
        f(&path.child("p2"), ParamRef::of(&self.p2, Role::Param));
    }
    fn visit_grads(
        &mut self,
        g: &SplitGrads,
        path: &Path<'_>,
        f: &mut dyn FnMut(&Path<'_>, ParamMut<'_, f64, Cpu>),
    ) {
        f(&path.child("p1"), ParamMut::of(&mut self.p1, Some(&g.p1)));
        f(&path.child("p2"), ParamMut::of(&mut self.p2, Some(&g.p2)));
    }
    fn visit_mut(
        &mut self,
        path: &Path<'_>,
        f: &mut dyn FnMut(&Path<'_>, ParamMut<'_, f64, Cpu>, Role),
    ) {
        f(
            &path.child("p1"),
            ParamMut::of(&mut self.p1, None),
            Role::Param,
        );
        f(
            &path.child("p2"),
            ParamMut::of(&mut self.p2, None),
            Role::Param,
        );
    }
}

impl Split {
    fn values(&self) -> Vec<f64> {
        let mut v = self.p1.to_vec().unwrap();
        v.extend(self.p2.to_vec().unwrap());
        v
    }
}

/// Runs `opt` on the fixture's loss `Σ a·p² + b·p³ + c·sin p` and checks the
/// trajectory; `after_step(t, opt)` checks anything else after step `t`.
fn follow<O: Optimizer<f64, Cpu>>(
    name: &str,
    fx: &Value,
    mut opt: O,
    want: &Value,
    mut after_step: impl FnMut(usize, &O),
) {
    let lf = &fx["loss_fn"];
    let (a, b, c, p0) = (vec(&lf["a"]), vec(&lf["b"]), vec(&lf["c"]), vec(&lf["p0"]));
    let grad = |p: &[f64]| -> Vec<f64> {
        (0..6)
            .map(|i| 2.0 * a[i] * p[i] + 3.0 * b[i] * p[i] * p[i] + c[i] * p[i].cos())
            .collect()
    };
    let mut m = Split {
        p1: Tensor::from_slice(&Cpu, &p0[..4]).unwrap(),
        p2: Tensor::from_slice(&Cpu, &p0[4..]).unwrap(),
    };
    let mut g = m.grads().unwrap();
    let traj = want.as_array().unwrap();
    assert_eq!(traj.len(), 12, "{name}");
    for (t, want) in traj.iter().enumerate() {
        let gv = grad(&m.values());
        g.p1.copy_from_slice(&gv[..4]).unwrap();
        g.p2.copy_from_slice(&gv[4..]).unwrap();
        opt.step(&mut m, &g).unwrap();
        for (x, y) in m.values().iter().zip(vec(want)) {
            assert!(
                (x - y).abs() < 1e-12 * (1.0 + y.abs()),
                "{name} step {}: {x} vs torch {y}",
                t + 1
            );
        }
        after_step(t, &opt);
    }
}

#[test]
fn adagrad_and_rmsprop_follow_torch() {
    let fx = fixture();
    let cases = fx["optim_toolkit"].as_object().unwrap();
    assert_eq!(cases.len(), 7);
    for (name, c) in cases {
        let (lr, wd, eps) = (f(c, "lr"), f(c, "weight_decay"), f(c, "eps"));
        if c["kind"] == "adagrad" {
            let o = Adagrad::new(lr)
                .lr_decay(f(c, "lr_decay"))
                .weight_decay(wd)
                .initial_accumulator_value(f(c, "initial_accumulator_value"))
                .eps(eps);
            follow(name, &fx, o, &c["trajectory"], |_, _| {});
        } else {
            let o = RmsProp::new(lr)
                .alpha(f(c, "alpha"))
                .eps(eps)
                .weight_decay(wd)
                .momentum(f(c, "momentum"))
                .centered(c["centered"].as_bool().unwrap());
            follow(name, &fx, o, &c["trajectory"], |_, _| {});
        }
    }
}

#[test]
fn gradient_clipping_follows_torch() {
    let fx = fixture();
    for (name, c) in fx["clip"].as_object().unwrap() {
        let max_norm = f(c, "max_norm");
        let norms = vec(&c["total_norms"]);
        // The limit is crossed in both directions in the SGD case.
        assert!(
            norms.iter().any(|&n| n > max_norm)
                && (name != "sgd_momentum" || norms.iter().any(|&n| n < max_norm))
        );
        match name.as_str() {
            "sgd_momentum" => {
                let o = Sgd::new(0.05).momentum(0.9).clip_grad_norm(max_norm);
                follow(name, &fx, o, &c["trajectory"], |t, o| {
                    check_norm(name, t, o, &norms)
                });
            }
            "adam" => {
                let o = Adam::new(0.05).clip_grad_norm(max_norm);
                follow(name, &fx, o, &c["trajectory"], |t, o| {
                    check_norm(name, t, o, &norms)
                });
            }
            other => panic!("unknown clip case {other}"),
        }
    }
}

/// The norm `ClipGradNorm` measured at step `t` against `clip_grad_norm_`'s.
fn check_norm<O>(name: &str, t: usize, o: &ClipGradNorm<f64, Cpu, O>, norms: &[f64]) {
    let n = o.last_norm().unwrap();
    assert!(
        (n - norms[t]).abs() < 1e-12 * norms[t],
        "{name} norm at step {}: {n} vs torch {}",
        t + 1,
        norms[t]
    );
}

#[test]
fn penalties_follow_torch() {
    let fx = fixture();
    let p0 = vec(&fx["loss_fn"]["p0"]);
    let m = Split {
        p1: Tensor::from_slice(&Cpu, &p0[..4]).unwrap(),
        p2: Tensor::from_slice(&Cpu, &p0[4..]).unwrap(),
    };
    for (name, c) in fx["penalty"].as_object().unwrap() {
        let pen = Penalty {
            l1: f(c, "l1"),
            l2: f(c, "l2"),
            filter: None,
        };
        let v = pen.value(&m).unwrap();
        let want = f(c, "value_at_p0");
        assert!((v - want).abs() < 1e-14, "{name} value {v} vs torch {want}");
        if name.starts_with("sgd") {
            follow(
                name,
                &fx,
                Sgd::new(0.05).momentum(0.9).penalty(pen),
                &c["trajectory"],
                |_, _| {},
            );
        } else {
            follow(
                name,
                &fx,
                Adam::new(0.05).penalty(pen),
                &c["trajectory"],
                |_, _| {},
            );
        }
    }
}

#[test]
fn frozen_parameters_follow_torch() {
    let fx = fixture();
    let p0 = vec(&fx["loss_fn"]["p0"]);
    let c = &fx["freeze"]["adam"];
    // torch's p2 (requires_grad=False) never moves; kiln's frozen p2 neither.
    for step in c["trajectory"].as_array().unwrap() {
        assert_eq!(vec(step)[4..], p0[4..]);
    }
    follow(
        "freeze",
        &fx,
        Adam::new(0.05).only(|p| p == "p1"),
        &c["trajectory"],
        |_, _| {},
    );
    follow(
        "freeze",
        &fx,
        Adam::new(0.05).freeze(|p| p == "p2"),
        &c["trajectory"],
        |_, _| {},
    );
    // Clipping inside `only` measures the trainable gradient alone, like
    // clip_grad_norm_ over the parameters that require gradients.
    let c = &fx["freeze"]["adam_clip"];
    follow(
        "freeze+clip",
        &fx,
        Adam::new(0.05)
            .clip_grad_norm(f(c, "max_norm"))
            .only(|p| p == "p1"),
        &c["trajectory"],
        |_, _| {},
    );
}

/// Builds the schedule a fixture case describes.
fn schedule(name: &str, c: &Value) -> Box<dyn Schedule + Send + Sync> {
    let lr = f(c, "base_lr");
    match name {
        "step" => Box::new(StepLr::new(lr, u(c, "step_size"), f(c, "gamma")).unwrap()),
        "exponential" => Box::new(ExponentialLr::new(lr, f(c, "gamma"))),
        "cosine" => Box::new(CosineAnnealingLr::new(lr, u(c, "t_max"), f(c, "eta_min")).unwrap()),
        "warm_restarts" | "warm_restarts_equal" => Box::new(
            CosineAnnealingWarmRestarts::new(lr, u(c, "t_0"), u(c, "t_mult"), f(c, "eta_min"))
                .unwrap(),
        ),
        "constant" => Box::new(ConstantLr::new(lr, f(c, "factor"), u(c, "total_iters")).unwrap()),
        "linear" => Box::new(
            LinearLr::new(
                lr,
                f(c, "start_factor"),
                f(c, "end_factor"),
                u(c, "total_iters"),
            )
            .unwrap(),
        ),
        "constant_warmup_then_cosine" => Box::new(Sequential::warmup(
            ConstantLr::new(lr, f(c, "factor"), u(c, "warmup")).unwrap(),
            u(c, "warmup"),
            CosineAnnealingLr::new(lr, u(c, "t_max"), f(c, "eta_min")).unwrap(),
        )),
        "linear_warmup_then_step" => Box::new(Sequential::warmup(
            LinearLr::new(lr, f(c, "start_factor"), 1.0, u(c, "warmup")).unwrap(),
            u(c, "warmup"),
            StepLr::new(lr, u(c, "step_size"), f(c, "gamma")).unwrap(),
        )),
        other => panic!("unknown schedule case {other}"),
    }
}

#[test]
fn schedules_follow_torch() {
    let fx = fixture();
    let cases = fx["schedules"].as_object().unwrap();
    assert_eq!(cases.len(), 9);
    for (name, c) in cases {
        let want = vec(&c["lrs"]);
        assert_eq!(want.len(), 31);
        let s = schedule(name, c);
        // The closed form at every epoch, and the same through a scheduler driving an optimizer.
        let mut opt = Sgd::<f64, Cpu>::new(1.0);
        let mut sched = LrScheduler::new(s, &mut opt);
        for (t, w) in want.iter().enumerate() {
            if t > 0 {
                sched.step(&mut opt);
            }
            let got = sched.schedule().lr_at(t as u64);
            assert!(
                (got - w).abs() <= 1e-12 * w.abs().max(1e-3),
                "{name} epoch {t}: {got} vs torch {w}"
            );
            assert_eq!((opt.lr, sched.last_lr()), (got, got));
        }
    }
}

#[test]
fn distribution_losses_match_torch() {
    let fx = fixture();
    let l = &fx["losses_toolkit"];
    type X = Tensor<S1<4>, f64>;
    let t = |key: &str| X::from_slice(&Cpu, &mat(&l[key])).unwrap();
    let (x, soft, kl_in, kl_log_t) = (t("x"), t("soft_target"), t("kl_input"), t("kl_log_target"));
    let alpha = X::from_slice(&Cpu, &vec(&l["alpha"])).unwrap();
    let labels: Vec<u32> = l["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    let y = Labels::<4>::new::<f64>(&Cpu, &labels).unwrap();
    let mut g = Tensor::empty(&Cpu).unwrap();
    let check = |name: &str, v: f64, g: &X| {
        let want = l[name]["value"].as_f64().unwrap();
        assert!(
            (v - want).abs() < 1e-12 * (1.0 + want.abs()),
            "{name}: {v} vs torch {want}"
        );
        for (a, b) in g.to_vec().unwrap().iter().zip(mat(&l[name]["grad"])) {
            assert!((a - b).abs() < 1e-12, "{name} gradient: {a} vs torch {b}");
        }
    };
    check(
        "soft_cross_entropy",
        soft_cross_entropy(&x, &soft, 0.0, Some(&mut g)).unwrap(),
        &g,
    );
    check(
        "soft_cross_entropy_smoothed",
        soft_cross_entropy(&x, &soft, 0.15, Some(&mut g)).unwrap(),
        &g,
    );
    check(
        "cross_entropy_smoothed",
        cross_entropy_smoothed(&x, &y, 0.1, Some(&mut g)).unwrap(),
        &g,
    );
    check(
        "focal_gamma2",
        focal_loss(&x, &y, 2.0, None, Some(&mut g)).unwrap(),
        &g,
    );
    check(
        "focal_gamma0.5_alpha",
        focal_loss(&x, &y, 0.5, Some(&alpha), Some(&mut g)).unwrap(),
        &g,
    );
    check(
        "kl_div",
        kl_div(&kl_in, &soft, false, Some(&mut g)).unwrap(),
        &g,
    );
    check(
        "kl_div_log_target",
        kl_div(&kl_in, &kl_log_t, true, Some(&mut g)).unwrap(),
        &g,
    );
}
