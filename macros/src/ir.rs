//! The graph IR: inputs, layer declarations, nodes in topological order and
//! outputs, every one keeping the span of the user's tokens. Lowering checks
//! the graph's names (undefined, defined later, unused, duplicated).

use crate::diag::{suggest, Diag};
use crate::kinds::{self, Rule};
use crate::parse::{Dims, Expr, Invocation, Item, Spec, Step};
use proc_macro2::{Span, TokenStream};
use quote::format_ident;
use std::collections::{HashMap, HashSet};
use syn::{Attribute, Ident, Visibility};

/// A value in the graph: a network input or a node's output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Val {
    In(usize),
    Node(usize),
}

pub struct Input {
    /// The user's name, or `x` for a chain's unnamed input.
    pub name: Ident,
    /// Named by the user (graph form), as opposed to a chain's `input: [..]`.
    pub named: bool,
    pub dims: Dims,
    /// The dimensions as numbers.
    pub shape: Vec<usize>,
    /// `Tokens<[..], V>`: token ids over a vocabulary of `V` (a dimension,
    /// see `dim.rs`), and the span of `V`; `None` for a float input.
    pub vocab: Option<(usize, Span)>,
}

pub struct LayerDecl {
    /// Field name (the user's, or generated like `linear1`).
    pub field: Ident,
    pub spec: Spec,
    /// What the layer's kind knows (see `kinds/mod.rs`).
    pub kind: Box<dyn Rule>,
    /// Declared with `layer NAME = …` (may be applied several times).
    pub shared: bool,
    /// Nodes applying this layer, in forward order.
    pub uses: Vec<usize>,
    /// Filled by shape inference.
    pub in_shape: Vec<usize>,
    pub out_shape: Vec<usize>,
    pub ty: TokenStream,
}

pub enum Op {
    Layer(usize),
    Add,
    /// Along the dimension as written (`dim = -1` counts from the last).
    Concat(i64),
}

pub struct Node {
    pub op: Op,
    pub args: Vec<Val>,
    pub span: Span,
    /// First and last token of what the user wrote for this node (`fc1` …
    /// `)`, `h` … `x`), where messages about it point.
    pub range: (Span, Span),
    /// How messages and the summary name this node (`fc1: Linear(256)`, `h + x`).
    pub label: String,
    /// The binding that names the node's value, if any, for summaries.
    pub binding: Option<String>,
    /// `let h: [dims] = …`: the shape the user declared.
    pub declared: Option<(String, Dims)>,
    /// Filled by shape inference.
    pub shape: Vec<usize>,
}

pub struct Output {
    pub name: Ident,
    pub val: Val,
}

pub struct Net {
    pub krate: TokenStream,
    pub attrs: Vec<Attribute>,
    pub vis: Visibility,
    pub name: Ident,
    /// Const generic parameters (`T`) and their defaults.
    pub generics: Vec<(Ident, Option<syn::Expr>)>,
    pub inputs: Vec<Input>,
    pub layers: Vec<LayerDecl>,
    pub nodes: Vec<Node>,
    pub outputs: Vec<Output>,
    /// Shapes that must be equal but hold dimensions the macro cannot see
    /// (`dim.rs`): the emitter makes the compiler compare them, at the span
    /// of the node that needs it (expected first, then found).
    pub checks: Vec<(Span, Vec<usize>, Vec<usize>)>,
}

impl Net {
    /// Nodes reading `v`, with the argument position, in forward order.
    pub fn consumers(&self, v: Val) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for (j, n) in self.nodes.iter().enumerate() {
            for (p, a) in n.args.iter().enumerate() {
                if *a == v {
                    out.push((j, p));
                }
            }
        }
        out
    }
    /// Shape of a value (after inference).
    pub fn shape(&self, v: Val) -> &[usize] {
        match v {
            Val::In(i) => &self.inputs[i].shape,
            Val::Node(j) => &self.nodes[j].shape,
        }
    }
    /// The vocabulary of a value holding token ids (a `Tokens<[..], V>`
    /// input); `None` for float values.
    pub fn vocab(&self, v: Val) -> Option<usize> {
        match v {
            Val::In(i) => self.inputs[i].vocab.map(|(v, _)| v),
            Val::Node(_) => None,
        }
    }
    /// A short name of the value for messages: the input's or binding's
    /// name, else how the node was written.
    pub fn val_label(&self, v: Val) -> String {
        match v {
            // A chain's input is unnamed; call it by the keyword the user wrote.
            Val::In(i) if !self.inputs[i].named => "input".to_string(),
            Val::In(i) => self.inputs[i].name.to_string(),
            Val::Node(j) => self.nodes[j]
                .binding
                .clone()
                .unwrap_or_else(|| self.nodes[j].label.clone()),
        }
    }
}

struct Lower<'d> {
    krate: TokenStream,
    diag: &'d mut Diag,
    inputs: Vec<Input>,
    layers: Vec<LayerDecl>,
    nodes: Vec<Node>,
    /// Binding name → (value, span, used). The value is `None` when the
    /// binding's expression had an error already reported: later uses of the
    /// name then stay silent instead of cascading.
    env: HashMap<String, (Option<Val>, Span, bool)>,
    /// Names bound by a later `let` (for "used before it is defined").
    later: HashMap<String, Span>,
    /// Names read before their `let` (already reported; not "never used").
    early: HashSet<String>,
    /// Shared layer name → layer index, with its declaration span and use flag.
    shared: HashMap<String, usize>,
    auto: HashMap<String, usize>,
}

/// Builds the IR from the parsed invocation, reporting name errors to `diag`.
/// The graph returned holds every part that could be built (a failed step
/// ends its chain; a failed binding is silently absent where it is read), so
/// that shape inference can still check those parts in the same build.
pub fn lower(inv: Invocation, diag: &mut Diag) -> Net {
    let mut l = Lower {
        krate: inv.krate.clone(),
        diag,
        inputs: Vec::new(),
        layers: Vec::new(),
        nodes: Vec::new(),
        env: HashMap::new(),
        later: HashMap::new(),
        early: HashSet::new(),
        shared: HashMap::new(),
        auto: HashMap::new(),
    };
    let graph = inv.items.iter().any(|i| {
        matches!(
            i,
            Item::Input { .. } | Item::Let { .. } | Item::Output { .. } | Item::Shared { .. }
        )
    });
    let mut outputs = Vec::new();
    if graph {
        l.graph(&inv, &mut outputs);
    } else {
        l.chain(&inv, &mut outputs);
    }
    let Lower {
        inputs,
        layers,
        nodes,
        ..
    } = l;
    Net {
        krate: inv.krate,
        attrs: inv.attrs,
        vis: inv.vis,
        name: inv.name,
        generics: inv.generics,
        inputs,
        layers,
        nodes,
        outputs,
        checks: Vec::new(),
    }
}

impl Lower<'_> {
    fn chain(&mut self, inv: &Invocation, outputs: &mut Vec<Output>) {
        let mut cur: Option<Val> = None;
        let mut broken = false;
        for item in &inv.items {
            match item {
                Item::ChainInput { span, dims, vocab } => {
                    if cur.is_some() {
                        self.diag
                            .error(*span, "a chain has one `input`, and it comes first");
                        continue;
                    }
                    self.inputs.push(Input {
                        name: Ident::new("x", *span),
                        named: false,
                        dims: dims.clone(),
                        shape: dims.values(),
                        vocab: *vocab,
                    });
                    cur = Some(Val::In(0));
                }
                Item::Step(step) => {
                    if broken {
                        // An earlier layer failed: the chain has no value to
                        // feed this one, but its name and arguments are still
                        // checked, so every unknown layer shows in one build.
                        self.check_step(step);
                        continue;
                    }
                    let Some(v) = cur else {
                        self.diag.error(
                            step.span(),
                            "declare the input shape first: `input: [784],`",
                        );
                        return;
                    };
                    cur = self.apply(v, step);
                    broken = cur.is_none();
                }
                _ => unreachable!("kiln-macros internal error: graph item in chain"),
            }
        }
        if broken {
            return;
        }
        match cur {
            Some(v @ Val::Node(_)) => outputs.push(Output {
                name: Ident::new("y", inv.name.span()),
                val: v,
            }),
            _ => self.diag.error(
                inv.name.span(),
                "a network needs an `input: [..]` and at least one layer",
            ),
        }
    }

    fn graph(&mut self, inv: &Invocation, outputs: &mut Vec<Output>) {
        for item in &inv.items {
            if let Item::Let { name, .. } = item {
                self.later.insert(name.to_string(), name.span());
            }
        }
        let mut out_names: HashSet<String> = HashSet::new();
        let mut any_output = false;
        for item in &inv.items {
            match item {
                Item::ChainInput { span, .. } => self
                    .diag
                    .error(*span, "in a graph (with `let`/`output`), inputs are named: `input x: [..]`"),
                Item::Step(step) => self.diag.error(
                    step.span(),
                    "in a graph (with `let`/`output`), layers are applied with `|>`: `let h = x |> Linear(64);`",
                ),
                Item::Input { name, dims, vocab } => {
                    if self.check_new_name(name) {
                        let i = self.inputs.len();
                        self.inputs.push(Input {
                            name: name.clone(),
                            named: true,
                            dims: dims.clone(),
                            shape: dims.values(),
                            vocab: *vocab,
                        });
                        self.env.insert(name.to_string(), (Some(Val::In(i)), name.span(), false));
                    }
                }
                Item::Shared { name, spec } => {
                    if self.shared.contains_key(&name.to_string()) || self.layers.iter().any(|l| l.field == *name) {
                        self.diag.error(name.span(), format!("layer `{name}` is declared twice"));
                        continue;
                    }
                    if let Some(kind) = kinds::resolve(spec, &self.krate, self.diag) {
                        self.shared.insert(name.to_string(), self.layers.len());
                        self.layers.push(LayerDecl {
                            field: name.clone(),
                            spec: spec.clone(),
                            kind,
                            shared: true,
                            uses: Vec::new(),
                            in_shape: Vec::new(),
                            out_shape: Vec::new(),
                            ty: TokenStream::new(),
                        });
                    }
                }
                Item::Let { name, declared, expr } => {
                    let key = name.to_string();
                    self.later.remove(&key);
                    let v = self.expr(expr);
                    if let (Some(v), Some(d)) = (v, declared) {
                        self.declare(v, name, d);
                    }
                    if let Some(Val::Node(j)) = v {
                        self.nodes[j].binding.get_or_insert_with(|| key.clone());
                    }
                    if self.check_new_name(name) {
                        // A failed expression or an early use was reported already.
                        let quiet = v.is_none() || self.early.contains(&key);
                        self.env.insert(key, (v, name.span(), quiet));
                    }
                }
                Item::Output { name, expr, span } => {
                    any_output = true;
                    let Some(v) = self.expr(expr) else { continue };
                    let oname = match (name, expr) {
                        (Some(n), _) => n.clone(),
                        (None, Expr::Var(i)) => i.clone(),
                        (None, _) => format_ident!("out{}", outputs.len(), span = *span),
                    };
                    if !out_names.insert(oname.to_string()) {
                        self.diag.error(oname.span(), format!("two outputs are named `{oname}`; name them: `output {oname}2 = …`"));
                    }
                    outputs.push(Output {
                        name: oname,
                        val: v,
                    });
                }
            }
        }
        if self.inputs.is_empty() {
            self.diag.error(
                inv.name.span(),
                "a graph needs at least one `input NAME: [..]`",
            );
        }
        if !any_output {
            self.diag
                .error(inv.name.span(), "a graph needs at least one `output …`");
        }
        let mut unused: Vec<(String, Span)> = self
            .env
            .iter()
            .filter(|(_, (_, _, used))| !*used)
            .map(|(n, (_, s, _))| (n.clone(), *s))
            .collect();
        unused.sort_by(|a, b| a.0.cmp(&b.0));
        for (n, s) in unused {
            let what = if self.inputs.iter().any(|i| i.name == n) {
                "input"
            } else {
                "binding"
            };
            self.diag.error(
                s,
                format!("{what} `{n}` is never used; every value must reach an output (remove it or use it)"),
            );
        }
        for l in &self.layers {
            if l.shared && l.uses.is_empty() {
                self.diag.error(
                    l.field.span(),
                    format!("layer `{}` is declared but never applied", l.field),
                );
            }
        }
    }

    fn check_new_name(&mut self, name: &Ident) -> bool {
        if self.env.contains_key(&name.to_string()) {
            self.diag.error(
                name.span(),
                format!("`{name}` is already bound; bindings cannot be rebound"),
            );
            return false;
        }
        true
    }

    fn declare(&mut self, v: Val, name: &Ident, d: &Dims) {
        match v {
            Val::Node(j) => self.nodes[j].declared = Some((name.to_string(), d.clone())),
            Val::In(_) => {
                // `let h: [..] = x;` names no node: the shape belongs on the input.
                self.diag.error(
                    name.span(),
                    format!("`{name}` only renames an input; declare the shape on the input"),
                );
            }
        }
    }

    fn lookup(&mut self, name: &Ident) -> Option<Val> {
        let key = name.to_string();
        if let Some((v, _, used)) = self.env.get_mut(&key) {
            *used = true;
            return *v;
        }
        if self.later.contains_key(&key) {
            self.early.insert(key);
            self.diag.error(
                name.span(),
                format!("`{name}` is used before it is defined; move its `let` above this line"),
            );
            return None;
        }
        let hint = suggest(&key, self.env.keys().map(|s| s.as_str()))
            .map(|s| format!("; did you mean `{s}`?"))
            .unwrap_or_default();
        self.diag.error(
            name.span(),
            format!("cannot find input or binding `{name}`{hint}"),
        );
        None
    }

    fn expr(&mut self, e: &Expr) -> Option<Val> {
        match e {
            Expr::Var(i) => self.lookup(i),
            Expr::Add(ea, eb, span) => {
                let (a, b) = (self.expr(ea), self.expr(eb));
                let (a, b) = (a?, b?);
                let label = format!("{} + {}", self.label(a), self.label(b));
                Some(self.node(Op::Add, vec![a, b], *span, e.range(), label))
            }
            Expr::Concat(parts, span, _, dim) => {
                let vals: Vec<Option<Val>> = parts.iter().map(|p| self.expr(p)).collect();
                let vals: Vec<Val> = vals.into_iter().collect::<Option<_>>()?;
                if vals.len() < 2 {
                    self.diag
                        .error(*span, "`concat` joins at least two tensors");
                    return None;
                }
                let names: Vec<String> = vals.iter().map(|v| self.label(*v)).collect();
                let label = match dim {
                    0 => format!("concat({})", names.join(", ")),
                    d => format!("concat({}, dim = {d})", names.join(", ")),
                };
                Some(self.node(Op::Concat(*dim), vals, *span, e.range(), label))
            }
            Expr::Apply(inner, step) => {
                let v = self.expr(inner)?;
                self.apply(v, step)
            }
        }
    }

    fn label(&self, v: Val) -> String {
        match v {
            Val::In(i) => self.inputs[i].name.to_string(),
            Val::Node(j) => self.nodes[j]
                .binding
                .clone()
                .unwrap_or_else(|| self.nodes[j].label.clone()),
        }
    }

    fn node(
        &mut self,
        op: Op,
        args: Vec<Val>,
        span: Span,
        range: (Span, Span),
        label: String,
    ) -> Val {
        self.nodes.push(Node {
            op,
            args,
            span,
            range,
            label,
            binding: None,
            declared: None,
            shape: Vec::new(),
        });
        Val::Node(self.nodes.len() - 1)
    }

    /// Reports what can be known of a step without its input: an unknown
    /// layer name or bad arguments (a shared layer's name is known).
    fn check_step(&mut self, step: &Step) {
        let spec = &step.spec;
        let bare = spec.args.is_none() && spec.out.is_none() && spec.path.get_ident().is_some();
        if !(bare && self.shared.contains_key(&spec.ident().to_string())) {
            let _ = kinds::resolve(spec, &self.krate, self.diag);
        }
    }

    /// Applies a step (a new layer, or a shared one by name) to `v`.
    fn apply(&mut self, v: Val, step: &Step) -> Option<Val> {
        let spec = &step.spec;
        let bare = spec.args.is_none() && spec.out.is_none() && spec.path.get_ident().is_some();
        let key = spec.ident().to_string();
        if bare && self.shared.contains_key(&key) {
            if let Some(n) = &step.name {
                self.diag.error(
                    n.span(),
                    format!("`{key}` is a declared layer; apply it without a new name"),
                );
            }
            let li = self.shared[&key];
            let label = format!("{key}: {}", self.layers[li].spec.text());
            let args = self.layer_args(v, &self.layers[li].kind.extra_inputs())?;
            let node = self.node(Op::Layer(li), args, spec.span, step.range(), label);
            if let Val::Node(j) = node {
                self.layers[li].uses.push(j);
            }
            return Some(node);
        }
        let kind = kinds::resolve(spec, &self.krate, self.diag)?;
        let args = self.layer_args(v, &kind.extra_inputs())?;
        let field = match &step.name {
            Some(n) => {
                if self.layers.iter().any(|l| l.field == *n) {
                    self.diag.error(n.span(), format!("two layers are named `{n}`; to share one layer's weights, declare it with `layer {n} = …` and apply it by name"));
                    return None;
                }
                n.clone()
            }
            None => {
                let base = to_snake(&key);
                let c = self.auto.entry(base.clone()).or_insert(0);
                *c += 1;
                format_ident!("{}{}", base, *c, span = spec.span)
            }
        };
        let label = match &step.name {
            Some(n) => format!("{n}: {}", spec.text()),
            None => spec.text(),
        };
        let li = self.layers.len();
        self.layers.push(LayerDecl {
            field,
            spec: spec.clone(),
            kind,
            shared: false,
            uses: Vec::new(),
            in_shape: Vec::new(),
            out_shape: Vec::new(),
            ty: TokenStream::new(),
        });
        let node = self.node(Op::Layer(li), args, step.span(), step.range(), label);
        if let Val::Node(j) = node {
            self.layers[li].uses.push(j);
        }
        Some(node)
    }

    /// A layer node's arguments: the piped input `v`, then the values its
    /// kind reads by name (`Rule::extra_inputs`), looked up like any other
    /// use of a name (so they count as used, and a missing one is reported).
    fn layer_args(&mut self, v: Val, extra: &[Ident]) -> Option<Vec<Val>> {
        let mut args = vec![v];
        let mut ok = true;
        for name in extra {
            match self.lookup(name) {
                Some(a) => args.push(a),
                None => ok = false,
            }
        }
        ok.then_some(args)
    }
}

fn to_snake(s: &str) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if c.is_uppercase() {
            if i > 0 && !out.ends_with('_') {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out.replace("_2d", "2d").replace("_1d", "1d")
}
