//! Parameter groups, `torch.optim` param groups: each group of parameters has
//! its own learning rate, weight decay and every other hyper-parameter of its
//! optimizer.
//!
//! A group *is* an optimizer (one [`super::Adam`], [`super::Sgd`], … per
//! group, configured as usual), so any hyper-parameter the optimizer has can
//! differ between groups. Which parameters a group holds is a [`Select`]
//! rule the user writes — explicit names, a predicate on the dotted path and
//! the PyTorch shape, the rank, or "every parameter no other group took" —
//! resolved once, against the network, when the groups are built:
//!
//! ```
//! use kiln_core::optim::{Adam, Groups, Optimizer, Select};
//! # use kiln_core::{Cpu, Tensor, S1, S2, Module, ParamRef, ParamMut, Path, Role};
//! # struct Net { w: Tensor<S2<2, 2>, f32>, b: Tensor<S1<2>, f32> }
//! # impl Module<f32, Cpu> for Net {
//! #     type Grads = ();
//! #     fn grads(&self) -> kiln_core::Result<()> { Ok(()) }
//! #     fn visit(&self, p: &Path<'_>, f: &mut dyn FnMut(&Path<'_>, ParamRef<'_, f32, Cpu>)) {
//! #         f(&p.child("w"), ParamRef::of(&self.w, Role::Param));
//! #         f(&p.child("b"), ParamRef::of(&self.b, Role::Param));
//! #     }
//! #     fn visit_grads(&mut self, _: &(), _: &Path<'_>, _: &mut dyn FnMut(&Path<'_>, ParamMut<'_, f32, Cpu>)) {}
//! #     fn visit_mut(&mut self, _: &Path<'_>, _: &mut dyn FnMut(&Path<'_>, ParamMut<'_, f32, Cpu>, Role)) {}
//! # }
//! # let net = Net { w: Tensor::zeros(&Cpu, 1)?, b: Tensor::zeros(&Cpu, 1)? };
//! // nanoGPT's configure_optimizers: weight decay on every parameter of rank ≥ 2
//! // (matrices, embeddings), none on biases and LayerNorm weights.
//! let adamw = |wd| Adam::adamw(1e-3).betas(0.9, 0.99).weight_decay(wd);
//! let opt = Groups::builder(&net)
//!     .group(Select::rank_at_least(2), adamw(0.1))
//!     .group(Select::rest(), adamw(0.0))
//!     .build()?;
//! assert_eq!(opt.group_of("w"), Some(0));
//! assert_eq!(opt.group_of("b"), Some(1));
//! # Ok::<(), kiln_core::Error>(())
//! ```
//!
//! [`GroupsBuilder::build`] checks the assignment and reports every problem
//! in one [`crate::Error::InvalidArgument`]: a name that matches no parameter,
//! a group that selects nothing, a parameter that two groups select, a
//! trainable parameter that no group selects (add a [`Select::rest`] group,
//! or freeze it with [`Optimizer::freeze`] around the groups).
//!
//! **On the hot path** a step looks up each parameter's group by its visiting
//! index in a `Vec` decided at build time and calls that group's `update`;
//! nothing is decided per element, and nothing is allocated after the first
//! step (the first step checks each visited path against the one the groups
//! were built for, formatting it once).
//!
//! **Learning rates and schedules.** Group `g` keeps the ratio `sᵍ` of its
//! initial learning rate to the first group's. [`Optimizer::set_lr`] sets
//! the first group's rate and every other group's to `sᵍ` times it (equal
//! rates stay equal: nanoGPT's `for g in param_groups: g['lr'] = lr`);
//! [`crate::schedule::Schedule::apply`] and [`crate::schedule::LrScheduler`]
//! give each group the schedule's rate for a base of `sᵍ·η`, which is what a
//! PyTorch scheduler computes from each group's `initial_lr` — the group's
//! rate times the factor for multiplicative schedules, and for cosine
//! annealing `η_min + (sᵍη − η_min)·(1 + cos)/2`.
//!
//! **State.** [`Optimizer::state`] merges the groups' per-parameter state
//! (each parameter belongs to one group, so the visiting indices do not
//! collide) under the groups' common kind; the first group's scalars keep
//! their names (`lr`, Adam's `steps`), group `g ≥ 1`'s are stored as
//! `group.g.lr`, … (`optim.group.1.lr` in a checkpoint). Loading splits the
//! state by the same assignment and is all or nothing.

use super::{GradRef, OptimState, Optimizer};
use crate::elem::Elem;
use crate::error::{Error, Result};
use crate::kernels::OptimKernels;
use crate::module::{Module, ParamMut, Path, Role};
use std::collections::BTreeMap;
use std::marker::PhantomData;

/// Which parameters a group holds (see the [module docs](self)).
pub struct Select {
    rule: Rule,
    what: String,
}

/// A predicate on a parameter's dotted path and PyTorch shape.
type Pred = Box<dyn Fn(&str, &[usize]) -> bool>;

enum Rule {
    Names(Vec<String>),
    Where(Pred),
    Rest,
}

impl Select {
    /// Exactly these dotted paths (`"fc1.weight"`); a name that is not a
    /// trainable parameter of the network is an error.
    pub fn names<I: IntoIterator<Item = S>, S: Into<String>>(names: I) -> Self {
        let names: Vec<String> = names.into_iter().map(Into::into).collect();
        let what = format!("names {names:?}");
        Select {
            rule: Rule::Names(names),
            what,
        }
    }
    /// The parameters for which `pred(path, dims)` holds (`dims` is the
    /// PyTorch shape: `[out, in]` for a `Linear` weight, `[out]` for a bias).
    /// `what` describes the rule in error messages.
    pub fn by(what: impl Into<String>, pred: impl Fn(&str, &[usize]) -> bool + 'static) -> Self {
        Select {
            rule: Rule::Where(Box::new(pred)),
            what: what.into(),
        }
    }
    /// Parameters whose dotted path satisfies `pred`.
    pub fn path(what: impl Into<String>, pred: impl Fn(&str) -> bool + 'static) -> Self {
        Self::by(what, move |p, _| pred(p))
    }
    /// Parameters of rank `≥ r` (`r = 2`: weight matrices, embeddings, convolution kernels).
    pub fn rank_at_least(r: usize) -> Self {
        Self::by(format!("rank ≥ {r}"), move |_, d| d.len() >= r)
    }
    /// Parameters of rank `< r` (`r = 2`: biases, LayerNorm and batch-norm weights).
    pub fn rank_below(r: usize) -> Self {
        Self::by(format!("rank < {r}"), move |_, d| d.len() < r)
    }
    /// Every trainable parameter that no other group selects (may be empty).
    pub fn rest() -> Self {
        Select {
            rule: Rule::Rest,
            what: "the rest".into(),
        }
    }
}

/// Collects the groups of a [`Groups`] optimizer; see [`Groups::builder`].
pub struct GroupsBuilder<E, D, O> {
    params: Vec<(String, Vec<usize>)>,
    groups: Vec<(Select, O)>,
    _elem: PhantomData<fn() -> (E, D)>,
}

impl<E: Elem, D: OptimKernels<E>, O: Optimizer<E, D>> GroupsBuilder<E, D, O> {
    /// Adds a group: the parameters `sel` selects, updated by `opt`.
    pub fn group(mut self, sel: Select, opt: O) -> Self {
        self.groups.push((sel, opt));
        self
    }

    /// Resolves every parameter's group, reporting all problems at once.
    pub fn build(self) -> Result<Groups<O>> {
        let mut bad = Vec::new();
        if self.groups.is_empty() {
            bad.push("no groups: add at least one with `.group(select, optimizer)`".into());
        }
        let n = self.params.len();
        // chosen[i]: the groups that select parameter i (before `rest`).
        let mut chosen: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (g, (sel, _)) in self.groups.iter().enumerate() {
            let mut hits = 0;
            match &sel.rule {
                Rule::Names(names) => {
                    for name in names {
                        match self.params.iter().position(|(p, _)| p == name) {
                            Some(i) => chosen[i].push(g),
                            None => bad.push(format!(
                                "group {g}: `{name}` is not a trainable parameter of the network{}",
                                suggest(name, &self.params)
                            )),
                        }
                    }
                    hits = names.len();
                }
                Rule::Where(pred) => {
                    for (i, (p, d)) in self.params.iter().enumerate() {
                        if pred(p, d) {
                            chosen[i].push(g);
                            hits += 1;
                        }
                    }
                }
                Rule::Rest => hits = 1,
            }
            if hits == 0 {
                bad.push(format!("group {g} ({}) selects no parameter", sel.what));
            }
        }
        let rest: Vec<usize> = (0..self.groups.len())
            .filter(|&g| matches!(self.groups[g].0.rule, Rule::Rest))
            .collect();
        if rest.len() > 1 {
            bad.push(format!(
                "groups {rest:?} are all `Select::rest()`; at most one may be"
            ));
        }
        let mut of = Vec::with_capacity(n);
        for (i, gs) in chosen.iter().enumerate() {
            let name = &self.params[i].0;
            match (gs.as_slice(), rest.first()) {
                ([g], _) => of.push(*g),
                ([], Some(&r)) => of.push(r),
                ([], None) => {
                    bad.push(format!(
                        "`{name}` is in no group (add a `Select::rest()` group, or freeze it with `.freeze(..)` around the groups)"
                    ));
                    of.push(0);
                }
                (gs, _) => {
                    let which: Vec<String> = gs
                        .iter()
                        .map(|&g| format!("{g} ({})", self.groups[g].0.what))
                        .collect();
                    bad.push(format!(
                        "`{name}` is in two groups: {}; a parameter belongs to one group",
                        which.join(" and ")
                    ));
                    of.push(gs[0]);
                }
            }
        }
        if !bad.is_empty() {
            return Err(Error::invalid("Groups", bad.join("; ")));
        }
        let first = self.groups[0].1.lr();
        let scale = self
            .groups
            .iter()
            .map(|(_, o)| if first == 0.0 { 1.0 } else { o.lr() / first })
            .collect();
        Ok(Groups {
            opts: self.groups.into_iter().map(|(_, o)| o).collect(),
            of,
            names: self.params.into_iter().map(|(p, _)| p).collect(),
            checked: vec![false; n],
            scale,
        })
    }
}

/// ", did you mean `x`?" for the parameter whose path shares the longest prefix.
fn suggest(name: &str, params: &[(String, Vec<usize>)]) -> String {
    let common = |p: &str| {
        p.chars()
            .zip(name.chars())
            .take_while(|(a, b)| a == b)
            .count()
    };
    match params.iter().max_by_key(|(p, _)| common(p)) {
        Some((p, _)) if common(p) > 0 => format!("; did you mean `{p}`?"),
        _ => String::new(),
    }
}

/// An optimizer made of parameter groups (see the [module docs](self)).
pub struct Groups<O> {
    opts: Vec<O>,
    /// The group of each trainable parameter, by visiting index.
    of: Vec<usize>,
    /// Each trainable parameter's dotted path, by visiting index.
    names: Vec<String>,
    /// Whether the visited path at each index was checked against `names`.
    checked: Vec<bool>,
    /// `sᵍ`: each group's initial rate over the first group's (1 for all
    /// when the first group's is 0).
    scale: Vec<f64>,
}

impl<O> Groups<O> {
    /// Starts the groups of `net`'s trainable parameters (in visiting order,
    /// the order the optimizer is driven in); add groups with
    /// [`GroupsBuilder::group`], finish with [`GroupsBuilder::build`].
    pub fn builder<E: Elem, D: OptimKernels<E>, M: Module<E, D>>(net: &M) -> GroupsBuilder<E, D, O>
    where
        O: Optimizer<E, D>,
    {
        let mut params = Vec::new();
        net.visit(&Path::ROOT, &mut |path, p| {
            if p.role == Role::Param {
                params.push((path.to_string(), p.dims.to_vec()));
            }
        });
        GroupsBuilder {
            params,
            groups: Vec::new(),
            _elem: PhantomData,
        }
    }
    /// The group holding the parameter at dotted path `name`.
    pub fn group_of(&self, name: &str) -> Option<usize> {
        let i = self.names.iter().position(|n| n == name)?;
        Some(self.of[i])
    }
    /// The dotted paths of group `g`'s parameters, in visiting order.
    pub fn members(&self, g: usize) -> impl Iterator<Item = &str> {
        self.names
            .iter()
            .zip(&self.of)
            .filter(move |(_, &h)| h == g)
            .map(|(n, _)| n.as_str())
    }
    /// Group `g`'s optimizer (its hyper-parameters are public fields).
    pub fn group(&self, g: usize) -> &O {
        &self.opts[g]
    }
    /// Group `g`'s optimizer, mutably (to change a hyper-parameter mid-run).
    pub fn group_mut(&mut self, g: usize) -> &mut O {
        &mut self.opts[g]
    }
    /// Number of groups.
    pub fn len(&self) -> usize {
        self.opts.len()
    }
    /// Always false: building needs at least one group.
    pub fn is_empty(&self) -> bool {
        self.opts.is_empty()
    }
    /// The group of parameter `index`, after checking (once) that `path` is
    /// the parameter the groups were built for.
    fn route(&mut self, index: usize, path: &Path<'_>) -> Result<usize> {
        let Some(&g) = self.of.get(index) else {
            return Err(Error::invalid(
                "Groups",
                format!(
                    "parameter {index} (`{path}`) is beyond the {} parameters the groups were built for; one optimizer serves one network",
                    self.of.len()
                ),
            ));
        };
        if !self.checked[index] {
            let p = path.to_string();
            if p != self.names[index] {
                return Err(Error::invalid(
                    "Groups",
                    format!(
                        "parameter {index} is `{p}`, but the groups were built for a network whose parameter {index} is `{}`",
                        self.names[index]
                    ),
                ));
            }
            self.checked[index] = true;
        }
        Ok(g)
    }
}

impl<E: Elem, D: OptimKernels<E>, O: Optimizer<E, D>> Optimizer<E, D> for Groups<O> {
    fn update(&mut self, index: usize, path: &Path<'_>, p: ParamMut<'_, E, D>) -> Result<()> {
        let g = self.route(index, path)?;
        self.opts[g].update(index, path, p)
    }
    fn begin_step(&mut self) -> Result<()> {
        self.opts.iter_mut().try_for_each(|o| o.begin_step())
    }
    fn observes(&self) -> bool {
        self.opts.iter().any(|o| o.observes())
    }
    fn observe(&mut self, index: usize, path: &Path<'_>, p: GradRef<'_, E, D>) -> Result<()> {
        let g = self.route(index, path)?;
        self.opts[g].observe(index, path, p)
    }
    /// The first group's rate.
    fn lr(&self) -> f64 {
        self.opts[0].lr()
    }
    /// Sets the first group's rate to `lr` and group `g`'s to `sᵍ·lr`.
    fn set_lr(&mut self, lr: f64) {
        for (o, s) in self.opts.iter_mut().zip(&self.scale) {
            o.set_lr(s * lr);
        }
    }
    fn group_count(&self) -> usize {
        self.opts.len()
    }
    fn group_lr(&self, g: usize) -> f64 {
        self.opts[g].lr()
    }
    fn set_group_lr(&mut self, g: usize, lr: f64) {
        self.opts[g].set_lr(lr)
    }
    fn group_scale(&self, g: usize) -> f64 {
        self.scale[g]
    }
    fn state(&self, dev: &D) -> Result<OptimState<E>> {
        let mut out: Option<OptimState<E>> = None;
        for (g, o) in self.opts.iter().enumerate() {
            let s = o.state(dev)?;
            let all = out.get_or_insert_with(|| OptimState::new(s.kind.clone()));
            if s.kind != all.kind {
                return Err(Error::invalid(
                    "Groups::state",
                    format!(
                        "group 0 is {} but group {g} is {}; a checkpoint holds one kind of optimizer",
                        all.kind, s.kind
                    ),
                ));
            }
            for (k, v) in s.scalars {
                let k = if g == 0 { k } else { format!("group.{g}.{k}") };
                all.scalars.insert(k, v);
            }
            all.params.extend(s.params);
        }
        out.ok_or_else(|| Error::invalid("Groups::state", "no groups"))
    }
    fn load_state(&mut self, dev: &D, state: &OptimState<E>) -> Result<()> {
        let mut parts: Vec<OptimState<E>> = (0..self.opts.len())
            .map(|_| OptimState::new(state.kind.clone()))
            .collect();
        let mut bad = Vec::new();
        for (k, &v) in &state.scalars {
            let (g, key) = match k.strip_prefix("group.").and_then(|r| r.split_once('.')) {
                Some((g, key)) => match g.parse::<usize>() {
                    Ok(g) if g > 0 && g < parts.len() => (g, key),
                    _ => {
                        bad.push(format!("scalar `{k}`: there is no group {g}"));
                        continue;
                    }
                },
                None => (0, k.as_str()),
            };
            parts[g].scalars.insert(key.to_string(), v);
        }
        for (&i, p) in &state.params {
            match self.of.get(i) {
                Some(&g) => {
                    parts[g].params.insert(i, p.clone());
                }
                None => bad.push(format!(
                    "state for parameter {i}, but the groups hold {}",
                    self.of.len()
                )),
            }
        }
        if !bad.is_empty() {
            return Err(super::state::problems(&state.kind, bad));
        }
        // All or nothing: keep each group's old state until every group has taken its part.
        let old: Vec<OptimState<E>> = self
            .opts
            .iter()
            .map(|o| o.state(dev))
            .collect::<Result<_>>()?;
        for g in 0..self.opts.len() {
            if let Err(e) = self.opts[g].load_state(dev, &parts[g]) {
                for (o, s) in self.opts.iter_mut().zip(&old).take(g) {
                    o.load_state(dev, s)?;
                }
                return Err(e);
            }
        }
        Ok(())
    }
}

/// Group `g`'s part of a state exported by [`Groups`] (for tests and tools).
pub fn group_scalars(state: &OptimState<impl Sized>, g: usize) -> BTreeMap<String, f64> {
    let prefix = format!("group.{g}.");
    state
        .scalars
        .iter()
        .filter_map(|(k, &v)| {
            if g == 0 {
                (!k.starts_with("group.")).then(|| (k.clone(), v))
            } else {
                k.strip_prefix(&prefix).map(|k| (k.to_string(), v))
            }
        })
        .collect()
}
