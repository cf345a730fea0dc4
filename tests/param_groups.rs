//! Optimizer parameter groups (`kiln::optim::Groups`) against `torch.optim`
//! param groups recorded by `scripts/pytorch/record_fixtures.py`
//! (`param_groups` in `tests/fixtures/torch_reference.json`): AdamW with
//! weight decay on the 2-D weight only, SGD with a learning rate per group,
//! and the same SGD under a cosine schedule; the assignment errors; state
//! saved and restored through a checkpoint.

use kiln::checkpoint::Checkpoint;
use kiln::optim::{Adam, Groups, Optimizer, Select, Sgd};
use kiln::prelude::*;
use kiln::schedule::{CosineAnnealingLr, LrScheduler, Schedule, StepLr};
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

/// The fixture's parameter as a 2×2 weight `w` and a bias `b`, as the script splits it.
struct Wb {
    w: Tensor<S2<2, 2>, f64>,
    b: Tensor<S1<2>, f64>,
}
struct WbGrads {
    w: Tensor<S2<2, 2>, f64>,
    b: Tensor<S1<2>, f64>,
}
impl Module<f64, Cpu> for Wb {
    type Grads = WbGrads;
    fn grads(&self) -> kiln::Result<WbGrads> {
        Ok(WbGrads {
            w: Tensor::zeros(&Cpu, 1)?,
            b: Tensor::zeros(&Cpu, 1)?,
        })
    }
    fn visit(&self, path: &Path<'_>, f: &mut dyn FnMut(&Path<'_>, ParamRef<'_, f64, Cpu>)) {
        f(&path.child("w"), ParamRef::of(&self.w, Role::Param));
        f(&path.child("b"), ParamRef::of(&self.b, Role::Param));
    }
    fn visit_grads(
        &mut self,
        g: &WbGrads,
        path: &Path<'_>,
        f: &mut dyn FnMut(&Path<'_>, ParamMut<'_, f64, Cpu>),
    ) {
        f(&path.child("w"), ParamMut::of(&mut self.w, Some(&g.w)));
        f(&path.child("b"), ParamMut::of(&mut self.b, Some(&g.b)));
    }
    fn visit_mut(
        &mut self,
        path: &Path<'_>,
        f: &mut dyn FnMut(&Path<'_>, ParamMut<'_, f64, Cpu>, Role),
    ) {
        f(
            &path.child("w"),
            ParamMut::of(&mut self.w, None),
            Role::Param,
        );
        f(
            &path.child("b"),
            ParamMut::of(&mut self.b, None),
            Role::Param,
        );
    }
}

impl Wb {
    fn new(fx: &Value) -> Wb {
        let p0 = vec(&fx["loss_fn"]["p0"]);
        Wb {
            w: Tensor::from_slice(&Cpu, &p0[..4]).unwrap(),
            b: Tensor::from_slice(&Cpu, &p0[4..]).unwrap(),
        }
    }
    fn values(&self) -> Vec<f64> {
        let mut v = self.w.to_vec().unwrap();
        v.extend(self.b.to_vec().unwrap());
        v
    }
}

/// The gradient of the fixture's loss `Σ a·p² + b·p³ + c·sin p` at `m`, into `g`.
fn grad(fx: &Value, m: &Wb, g: &mut WbGrads) {
    let lf = &fx["loss_fn"];
    let (a, b, c) = (vec(&lf["a"]), vec(&lf["b"]), vec(&lf["c"]));
    let p = m.values();
    let gv: Vec<f64> = (0..6)
        .map(|i| 2.0 * a[i] * p[i] + 3.0 * b[i] * p[i] * p[i] + c[i] * p[i].cos())
        .collect();
    g.w.copy_from_slice(&gv[..4]).unwrap();
    g.b.copy_from_slice(&gv[4..]).unwrap();
}

fn close(name: &str, t: usize, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len());
    for (x, y) in got.iter().zip(want) {
        assert!(
            (x - y).abs() < 1e-12 * (1.0 + y.abs()),
            "{name} step {}: {got:?} vs torch {want:?}",
            t + 1
        );
    }
}

/// nanoGPT's two AdamW groups: decay 0.1 on parameters of rank ≥ 2, 0 on the rest.
fn adamw_groups(m: &Wb) -> Groups<Adam<f64, Cpu>> {
    let adamw = |wd| Adam::adamw(0.05).betas(0.9, 0.99).weight_decay(wd);
    Groups::builder(m)
        .group(Select::rank_at_least(2), adamw(0.1))
        .group(Select::rest(), adamw(0.0))
        .build()
        .unwrap()
}

/// SGD with momentum, lr 0.1 for `w` and 0.02 for `b`, named explicitly.
fn sgd_groups(m: &Wb) -> Groups<Sgd<f64, Cpu>> {
    Groups::builder(m)
        .group(Select::names(["w"]), Sgd::new(0.1).momentum(0.9))
        .group(Select::names(["b"]), Sgd::new(0.02).momentum(0.9))
        .build()
        .unwrap()
}

#[test]
fn adamw_with_two_groups_follows_torch() {
    let fx = fixture();
    let want = &fx["param_groups"]["adamw"];
    let groups = want["groups"].as_array().unwrap();
    assert_eq!(groups[0]["weight_decay"].as_f64(), Some(0.1));
    assert_eq!(groups[1]["weight_decay"].as_f64(), Some(0.0));
    let mut m = Wb::new(&fx);
    let mut opt = adamw_groups(&m);
    assert_eq!(opt.members(0).collect::<Vec<_>>(), ["w"]);
    assert_eq!(opt.members(1).collect::<Vec<_>>(), ["b"]);
    let mut g = m.grads().unwrap();
    for (t, step) in want["trajectory"].as_array().unwrap().iter().enumerate() {
        grad(&fx, &m, &mut g);
        opt.step(&mut m, &g).unwrap();
        close("adamw groups", t, &m.values(), &vec(step));
    }
}

#[test]
fn sgd_with_a_learning_rate_per_group_follows_torch() {
    let fx = fixture();
    let want = &fx["param_groups"]["sgd"];
    let mut m = Wb::new(&fx);
    let mut opt = sgd_groups(&m);
    let mut g = m.grads().unwrap();
    for (t, step) in want["trajectory"].as_array().unwrap().iter().enumerate() {
        grad(&fx, &m, &mut g);
        opt.step(&mut m, &g).unwrap();
        close("sgd groups", t, &m.values(), &vec(step));
    }
}

/// `CosineAnnealingLR(T_max = 6, eta_min = 0.001)` over groups with rates 0.1
/// and 0.02: each group's rate is the cosine from its own initial rate down
/// to the common floor (not the first group's rate times a factor).
#[test]
fn a_schedule_drives_every_group_as_torch_does() {
    let fx = fixture();
    let want = &fx["param_groups"]["sgd_cosine"];
    let mut m = Wb::new(&fx);
    let mut opt = sgd_groups(&m);
    let mut sched = LrScheduler::new(CosineAnnealingLr::new(0.1, 6, 0.001).unwrap(), &mut opt);
    let mut g = m.grads().unwrap();
    let lrs = want["lrs"].as_array().unwrap();
    for (t, step) in want["trajectory"].as_array().unwrap().iter().enumerate() {
        grad(&fx, &m, &mut g);
        opt.step(&mut m, &g).unwrap();
        sched.step(&mut opt);
        close("sgd cosine groups", t, &m.values(), &vec(step));
        let got = [opt.group_lr(0), opt.group_lr(1)];
        close("sgd cosine group lrs", t, &got, &vec(&lrs[t]));
    }
    // A multiplicative schedule scales every group's rate by the same factor;
    // set_lr keeps the groups' ratio.
    StepLr::new(0.1, 1, 0.5).unwrap().apply(&mut opt, 2);
    close(
        "step",
        0,
        &[opt.group_lr(0), opt.group_lr(1)],
        &[0.025, 0.005],
    );
    opt.set_lr(1.0);
    close(
        "set_lr",
        0,
        &[opt.group_lr(0), opt.group_lr(1)],
        &[1.0, 0.2],
    );
}

#[test]
fn assignment_mistakes_are_errors_that_name_them() {
    let m = Wb::new(&fixture());
    let msg = |r: kiln::Result<Groups<Sgd<f64, Cpu>>>| match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    };
    // A name that is not a parameter, with a suggestion.
    let e = msg(Groups::builder(&m)
        .group(Select::names(["w", "bias"]), Sgd::new(0.1))
        .group(Select::rest(), Sgd::new(0.1))
        .build());
    assert!(
        e.contains("`bias` is not a trainable parameter of the network; did you mean `b`?"),
        "{e}"
    );
    // A parameter in two groups.
    let e = msg(Groups::builder(&m)
        .group(Select::rank_at_least(1), Sgd::new(0.1))
        .group(Select::names(["b"]), Sgd::new(0.1))
        .build());
    assert!(
        e.contains("`b` is in two groups: 0 (rank ≥ 1) and 1 (names [\"b\"])"),
        "{e}"
    );
    // A parameter in none, and a rule that selects nothing, reported together.
    let e = msg(Groups::builder(&m)
        .group(Select::names(["w"]), Sgd::new(0.1))
        .group(Select::rank_at_least(3), Sgd::new(0.1))
        .build());
    assert!(e.contains("group 1 (rank ≥ 3) selects no parameter"), "{e}");
    assert!(e.contains("`b` is in no group"), "{e}");
    // The groups check, on the first step, that they serve the network they were built for.
    struct Other(Wb);
    let mut other = Other(Wb::new(&fixture()));
    let mut opt = sgd_groups(&m);
    let g = other.0.grads().unwrap();
    let mut renamed = |m: &mut Other| {
        let mut res = Ok(());
        m.0.visit_grads(&g, &Path::ROOT.child("net"), &mut |path, p| {
            if res.is_ok() {
                res = opt.update(0, path, p);
            }
        });
        res
    };
    let e = renamed(&mut other).unwrap_err().to_string();
    assert!(
        e.contains("the groups were built for a network whose parameter 0 is `w`"),
        "{e}"
    );
}

/// Five steps, a checkpoint, a fresh model and optimizer loaded from it, seven
/// more steps: the same bits as twelve steps uninterrupted, and the torch trajectory.
#[test]
fn grouped_state_round_trips_through_a_checkpoint() {
    let fx = fixture();
    let want = fx["param_groups"]["adamw"]["trajectory"]
        .as_array()
        .unwrap()
        .clone();
    let mut m = Wb::new(&fx);
    let mut opt = adamw_groups(&m);
    let mut g = m.grads().unwrap();
    for _ in 0..5 {
        grad(&fx, &m, &mut g);
        opt.step(&mut m, &g).unwrap();
    }
    opt.group_mut(1).lr = 0.04; // a group's own rate, changed mid-run, is saved too
    let mut c = Checkpoint::new();
    c.add_module("", &m).unwrap();
    c.add_optimizer(&m, &opt).unwrap();
    let path = std::env::temp_dir().join(format!("kiln-groups-{}.safetensors", std::process::id()));
    c.save(&path).unwrap();
    let c = Checkpoint::read(&path).unwrap();
    std::fs::remove_file(&path).ok();
    assert_eq!(c.meta::<String>("optim.type").unwrap(), "AdamW");
    assert_eq!(c.meta::<f64>("optim.group.1.lr").unwrap(), 0.04);
    assert!(c.values::<f64>("optim.state.b.exp_avg").is_some());

    let mut m2 = Wb {
        w: Tensor::zeros(&Cpu, 1).unwrap(),
        b: Tensor::zeros(&Cpu, 1).unwrap(),
    };
    let mut opt2 = adamw_groups(&m2);
    c.load_training(&mut m2, &mut opt2, &path).unwrap();
    assert_eq!(opt2.group_lr(1), 0.04);
    opt.group_mut(1).lr = 0.05;
    opt2.group_mut(1).lr = 0.05;
    assert_eq!(m2.values(), m.values());
    for step in &want[5..] {
        grad(&fx, &m, &mut g);
        opt.step(&mut m, &g).unwrap();
        grad(&fx, &m2, &mut g);
        opt2.step(&mut m2, &g).unwrap();
        assert_eq!(m2.values(), m.values());
        close("resumed adamw groups", 0, &m2.values(), &vec(step));
    }
    // State for a parameter that belongs to no group of this optimizer is refused, and nothing changes.
    let mut s = opt.state(&Cpu).unwrap();
    let before = opt2.state(&Cpu).unwrap();
    let extra = s.params[&0].clone();
    s.params.insert(7, extra);
    assert!(opt2.load_state(&Cpu, &s).is_err());
    assert_eq!(opt2.state(&Cpu).unwrap(), before);
}
