//! Code generation: rendering only. Every decision was made by the earlier
//! stages, and everything kind-specific is asked of the layer's kind through
//! [`crate::kinds::Rule`]; this file turns the typed graph into Rust, one
//! function per thing it renders. `docs/expansion/lenet.rs` is the whole
//! expansion of a LeNet-5, to read alongside.
//!
//! For `pub struct Mlp { input: [784], fc1: Linear(256), relu, fc2: Linear(10) }`
//! the output is, in outline:
//!
//! ```text
//! pub struct Mlp<E = f32, D = Cpu> { pub fc1: Linear<E, D, 784, 256>, pub fc2: …, device: D }  // param_struct
//! pub struct MlpGrads<E, D> where … { pub fc1: <Linear<…> as Module>::Grads, … }             // grads_struct
//! pub struct MlpCache<E, D> where … { fc1_out, fc1_cache, fc1_grad, relu1_out, … }           // cache_struct
//! pub struct MlpTape<E, D> where … { pub ctx, pub in_x, pub out_y, pub grad_x, … }           // tape_struct
//! impl<E, D> Mlp<E, D> where … {                                                               // inherent_impl
//!     __PARAMS, __FLOPS, __INPUTS, __OUTPUTS, __VOCABS, __ROWS                                  // consts
//!     init, device, grads, tape, forward, forward_with, forward_train, backward      // api
//!     __cache, __forward_train, __forward_eval, __backward                                   // new_cache, forward, backward
//! }
//! impl Mlp<f32, Cpu> where … { PARAMS, FLOPS, INPUTS, OUTPUTS, VOCABS, summary }          // facts_impl
//! impl Module for Mlp; impl Build for Mlp; impl Layer for Mlp (one input, one output)      // module_impl, build_impl, layer_impl
//! impl Onnx for Mlp; impl Mlp { to_onnx, to_onnx_bytes }                                   // onnx_impl
//! ```
//!
//! Every `where` clause is [`layer_bounds`]: each layer's type states the
//! traits the generated code uses on it, so a layer may ask more of the
//! device than `Backend<E>`.
//!
//! `forward_train` calls each node's layer in order; `backward` walks the nodes
//! in reverse, and a value read by several nodes receives `Acc::Set` from the
//! first contribution the backward pass makes and `Acc::Add` from the others.

use crate::diag::dims;
use crate::ir::{Net, Op, Val};
use crate::kinds::{shape_ty, Call};
use proc_macro2::{Ident, Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use std::collections::HashSet;
use syn::ext::IdentExt;

mod input_grad;
mod onnx;

/// `quote!` whose every token carries the user's location (see [`respan`]).
macro_rules! respan_q {
    ($span:expr=> $($t:tt)*) => {
        respan(quote!($($t)*), $span)
    };
}

mod api;
mod impls;
mod passes;
mod types;
use api::*;
use impls::*;
use passes::*;
use types::*;

/// The whole expansion of one invocation.
pub fn emit(net: &Net) -> TokenStream {
    let cx = Cx::new(net);
    let param_struct = param_struct(&cx);
    let grads_struct = grads_struct(&cx);
    let cache_struct = cache_struct(&cx);
    let tape_struct = tape_struct(&cx);
    let inherent_impl = inherent_impl(&cx);
    let facts_impl = facts_impl(&cx);
    let module_impl = module_impl(&cx);
    let build_impl = build_impl(&cx);
    let layer_impl = layer_impl(&cx);
    let onnx_impl = onnx::onnx_impl(&cx);
    let kind_items = kind_items(&cx);
    let dim_checks = dim_checks(&cx);
    let tape_access = input_grad::tape_access(&cx);
    let backward_from = input_grad::backward_from(&cx);
    let input_grad_impl = input_grad::input_grad_impl(&cx);
    unsuffixed(quote! {
        #param_struct
        #grads_struct
        #cache_struct
        #tape_struct
        #inherent_impl
        #tape_access
        #backward_from
        #facts_impl
        #module_impl
        #build_impl
        #layer_impl
        #input_grad_impl
        #onnx_impl
        #kind_items
        #dim_checks
    })
}

/// The shape equalities the macro could not decide (`dim.rs`), one function
/// each for the compiler to type-check, spanned at the node that needs it:
///
/// ```text
/// const _: () = {
///     fn __kiln_dims_agree() {
///         let _: PhantomData<S1<{ HIDDEN }>> = PhantomData::<S1<{ WIDTH }>>;
///     }
/// };
/// ```
///
/// If `HIDDEN` and `WIDTH` differ, that is E0308 at the layer naming both
/// values (`expected S1<64>, found S1<32>`).
fn dim_checks(cx: &Cx) -> TokenStream {
    let k = cx.k;
    let g = cx.net.generics.iter().map(|(i, _)| i);
    let gp = quote!(#(const #g: usize),*);
    cx.net
        .checks
        .iter()
        .map(|(span, a, b)| {
            let (ta, tb) = (shape_ty(k, a), shape_ty(k, b));
            let found = respan_q!(*span=> ::core::marker::PhantomData::<#tb>);
            quote_spanned! {*span=>
                const _: () = {
                    #[allow(dead_code)]
                    fn __kiln_dims_agree<#gp>() {
                        let _: ::core::marker::PhantomData<#ta> = #found;
                    }
                };
            }
        })
        .collect()
}

/// Writes the sizes the macro computed as `28`, not `28usize` (how `quote!`
/// renders a `usize`), so that the expansion reads like hand-written Rust:
/// every place they go (const generic arguments, `usize` constants and
/// fields) gives them their type.
fn unsuffixed(ts: TokenStream) -> TokenStream {
    use proc_macro2::{Group, Literal, TokenTree};
    ts.into_iter()
        .map(|tt| match tt {
            TokenTree::Group(g) => {
                let mut ng = Group::new(g.delimiter(), unsuffixed(g.stream()));
                ng.set_span(g.span());
                TokenTree::Group(ng)
            }
            TokenTree::Literal(l) => {
                let s = l.to_string();
                match s.strip_suffix("usize").map(str::parse::<usize>) {
                    Some(Ok(n)) => {
                        let mut nl = Literal::usize_unsuffixed(n);
                        nl.set_span(l.span());
                        TokenTree::Literal(nl)
                    }
                    _ => TokenTree::Literal(l),
                }
            }
            other => other,
        })
        .collect()
}

/// The parts of the concatenation at node `j` along `dim = d`: each operand
/// with the number of blocks per sample (`outer`, the product of the
/// dimensions before the axis) and where its block starts in each output
/// block (the offset in values).
fn concat_parts(net: &Net, j: usize, d: i64) -> Vec<(Val, usize, usize)> {
    let out = &net.nodes[j].shape;
    let axis = crate::shape::concat_axis(d, out.len()).unwrap_or(0);
    let outer: usize = out[..axis].iter().product();
    let inner: usize = out[axis + 1..].iter().product();
    let mut at = 0usize;
    net.nodes[j]
        .args
        .iter()
        .map(|&a| {
            let part = (a, outer, at * inner);
            at += net.shape(a)[axis];
            part
        })
        .collect()
}

/// What every rendering function needs, computed once.
struct Cx<'a> {
    net: &'a Net,
    /// The path of the `kiln` facade.
    k: &'a TokenStream,
    grads_name: Ident,
    cache_name: Ident,
    tape_name: Ident,
    /// Per node: the cache fields it owns (see [`Names`]).
    names: Names,
    /// Per node: the output whose gradient (`d_y`) arrives at it directly,
    /// when the node feeds that output only; it then needs no gradient buffer.
    direct: Vec<Option<usize>>,
    /// Per node: whether it is a layer that applies the next node, an
    /// element-wise activation of its output alone, as its product's
    /// epilogue (one fused call each way; see [`fused_pairs`]).
    fused: Vec<bool>,
    /// Shape types of the inputs, outputs and nodes.
    in_ty: Vec<TokenStream>,
    /// The inputs' whole types: `Tensor<S, E, D>`, or `Tokens<S, V, D>` for
    /// token ids (which have no gradient: see [`Cx::float_in`]).
    in_full: Vec<TokenStream>,
    out_ty: Vec<TokenStream>,
    node_ty: Vec<TokenStream>,
    /// Parameter names of the private passes: `in_x`, `out_y`, `d_y`, `din_x`.
    in_args: Vec<Ident>,
    out_args: Vec<Ident>,
    d_args: Vec<Ident>,
    din_args: Vec<Ident>,
    /// The network's const generic parameters: as arguments (`, T`), as
    /// parameters of an impl or helper struct (`, const T: usize`), and the
    /// network struct's whole parameter list (with the defaults).
    ga: TokenStream,
    gp: TokenStream,
    struct_params: TokenStream,
    /// The `where` clauses ([`layer_bounds`]).
    bounds: TokenStream,
    param_bounds: TokenStream,
    cache_bounds: TokenStream,
}

impl<'a> Cx<'a> {
    fn new(net: &'a Net) -> Self {
        let k = &net.krate;
        let direct: Vec<Option<usize>> = (0..net.nodes.len())
            .map(|j| {
                let v = Val::Node(j);
                let outs: Vec<usize> = net
                    .outputs
                    .iter()
                    .enumerate()
                    .filter(|(_, o)| o.val == v)
                    .map(|(k, _)| k)
                    .collect();
                if net.consumers(v).is_empty() && outs.len() == 1 {
                    Some(outs[0])
                } else {
                    None
                }
            })
            .collect();
        let ident = |prefix: &str, name: &Ident| {
            format_ident!("{}{}", prefix, name, span = Span::call_site())
        };
        let names_g: Vec<&Ident> = net.generics.iter().map(|(i, _)| i).collect();
        let ga = quote!(#(, #names_g)*);
        let gp = quote!(#(, const #names_g: usize)*);
        // Defaults must trail: `E = f32, D = Cpu` stay only when every
        // generic dimension has a default too.
        let struct_params = if net.generics.iter().all(|(_, d)| d.is_some()) {
            let defs = net
                .generics
                .iter()
                .map(|(i, d)| quote!(, const #i: usize = #d));
            quote!(E: #k::Elem = f32, D: #k::Backend<E> = #k::Cpu #(#defs)*)
        } else {
            quote!(E: #k::Elem, D: #k::Backend<E> #gp)
        };
        let names = Names::new(net);
        let fused = fused_pairs(net, &names, &direct);
        Cx {
            net,
            k,
            fused,
            ga,
            gp,
            struct_params,
            grads_name: format_ident!("{}Grads", net.name),
            cache_name: format_ident!("{}Cache", net.name),
            tape_name: format_ident!("{}Tape", net.name),
            names,
            in_ty: net.inputs.iter().map(|i| shape_ty(k, &i.shape)).collect(),
            in_full: net
                .inputs
                .iter()
                .map(|i| {
                    let s = shape_ty(k, &i.shape);
                    match i.vocab {
                        Some((v, _)) => {
                            let v = crate::dim::tokens(v);
                            quote!(#k::Tokens<#s, #v, D>)
                        }
                        None => quote!(#k::Tensor<#s, E, D>),
                    }
                })
                .collect(),
            out_ty: net
                .outputs
                .iter()
                .map(|o| shape_ty(k, net.shape(o.val)))
                .collect(),
            node_ty: net.nodes.iter().map(|n| shape_ty(k, &n.shape)).collect(),
            in_args: net.inputs.iter().map(|i| ident("in_", &i.name)).collect(),
            out_args: net.outputs.iter().map(|o| ident("out_", &o.name)).collect(),
            d_args: net.outputs.iter().map(|o| ident("d_", &o.name)).collect(),
            din_args: net.inputs.iter().map(|i| ident("din_", &i.name)).collect(),
            bounds: layer_bounds(net, Need::All),
            param_bounds: layer_bounds(net, Need::Params),
            cache_bounds: layer_bounds(net, Need::Caches),
            direct,
        }
    }

    /// The indices of the float inputs: only they have gradients
    /// (`grad_*` in the tape, `din_*` in the backward pass).
    fn float_in(&self) -> Vec<usize> {
        (0..self.net.inputs.len())
            .filter(|&i| self.net.inputs[i].vocab.is_none())
            .collect()
    }

    /// The path of an input's type, for its inherent methods (`Tensor`,
    /// `Tokens`: both have `batch`, `assign`).
    fn in_path(&self, i: usize) -> TokenStream {
        let k = self.k;
        if self.net.inputs[i].vocab.is_some() {
            quote!(#k::Tokens)
        } else {
            quote!(#k::Tensor)
        }
    }

    fn tensor(&self, s: &TokenStream) -> TokenStream {
        let k = self.k;
        quote!(#k::Tensor<#s, E, D>)
    }

    /// Fields with a layer, in declaration order.
    fn fields(&self) -> impl Iterator<Item = &'a crate::ir::LayerDecl> {
        self.net.layers.iter().filter(|l| l.kind.is_field())
    }

    /// A value as a `&Tensor` expression: an input argument or a node's
    /// output in the cache (`&c.fc1_out`).
    fn val_ref(&self, v: Val) -> TokenStream {
        match v {
            Val::In(i) => {
                let a = &self.in_args[i];
                quote!(#a)
            }
            Val::Node(j) => {
                let f = &self.names.out[j];
                quote!(&c.#f)
            }
        }
    }

    /// What the kind of node `j`'s layer is told about this application;
    /// `mutable` for the training forward (`&mut self.fc1`).
    /// The activation of the fused pair that node `j` starts: its instance
    /// (a `&` expression) and its output place (`c.relu1_out`).
    fn fused_act(&self, j: usize) -> (TokenStream, TokenStream) {
        let a = j + 1;
        let Op::Layer(la) = self.net.nodes[a].op else {
            unreachable!("a fused pair ends with a layer")
        };
        let inst = layer_ref(self.net, la, false);
        let y = &self.names.out[a];
        (inst, quote!(c.#y))
    }

    fn call(&'a self, j: usize, li: usize, mutable: bool) -> Call<'a> {
        let (net, k) = (self.net, self.k);
        let (n, l) = (&net.nodes[j], &net.layers[li]);
        let y = &self.names.out[j];
        let cache = match &self.names.cache[j] {
            Some(c) => quote!(c.#c),
            None => TokenStream::new(),
        };
        Call {
            k,
            ty: &l.ty,
            si: shape_ty(k, net.shape(n.args[0])),
            so: self.node_ty[j].clone(),
            input: net.shape(n.args[0]),
            out: &n.shape,
            field: &l.field,
            inst: layer_ref(net, li, mutable),
            x: self.val_ref(n.args[0]),
            extra: n.args[1..].iter().map(|a| self.val_ref(*a)).collect(),
            y: quote!(c.#y),
            cache,
            dy: TokenStream::new(),
            dx: TokenStream::new(),
            extra_dx: Vec::new(),
            grads: TokenStream::new(),
            gacc: TokenStream::new(),
            tie_acc: TokenStream::new(),
            net,
            cache_fields: &self.names.cache,
        }
    }
}

/// Which nodes fuse the next one into their product (see [`Cx::fused`]):
/// node `j` is a layer whose kind fuses ([`crate::kinds::Rule::fuses_act`],
/// an untied `Linear`), node `j + 1` an element-wise activation whose only
/// argument is node `j`'s value, and that value has no other reader (no
/// other node, no network output), so the pair can run as one call each way
/// with the pre-activation still written to node `j`'s buffer (the tape's
/// accessors and the activation's derivative read it there).
fn fused_pairs(net: &Net, names: &Names, direct: &[Option<usize>]) -> Vec<bool> {
    (0..net.nodes.len())
        .map(|j| {
            let (Some(a), Some(b)) = (net.nodes.get(j), net.nodes.get(j + 1)) else {
                return false;
            };
            let (Op::Layer(li), Op::Layer(la)) = (&a.op, &b.op) else {
                return false;
            };
            let v = Val::Node(j);
            net.layers[*li].kind.fuses_act()
                && net.layers[*la].kind.elementwise()
                && b.args.as_slice() == [v]
                && net.consumers(v).len() == 1
                && !net.outputs.iter().any(|o| o.val == v)
                && direct[j].is_none()
                && names.grad[j].is_some()
        })
        .collect()
}

/// The cache fields of each node, named after the user's layers: a layer
/// node is named by its field (`fc1`, or `relu2` for the second in-place
/// `relu`; a shared layer's uses `enc_1`, `enc_2`), an addition or a
/// concatenation by its binding (`h`), else `add1`, `concat1`; a name
/// already taken gets the node's index appended. Each node has `{name}_out`
/// (its activation), `{name}_cache` (what its layer keeps for the backward
/// pass, if its kind has one) and `{name}_grad` (the gradient arriving at
/// it; `backward` does not use an output's, whose gradient `d_y` it reads
/// directly, but `backward_from` seeds it). `base` is the stem, the node's
/// name for the tape's accessors (`tape.activation("conv1")`).
struct Names {
    base: Vec<String>,
    out: Vec<Ident>,
    cache: Vec<Option<Ident>>,
    grad: Vec<Option<Ident>>,
}

impl Names {
    fn new(net: &Net) -> Self {
        let mut taken = HashSet::new();
        let (mut adds, mut concats) = (0, 0);
        let mut names = Names {
            base: Vec::new(),
            out: Vec::new(),
            cache: Vec::new(),
            grad: Vec::new(),
        };
        for (j, n) in net.nodes.iter().enumerate() {
            let binding = || {
                n.binding
                    .as_ref()
                    .map(|b| b.trim_start_matches("r#").to_string())
            };
            let (base, cached) = match n.op {
                Op::Layer(li) => {
                    let l = &net.layers[li];
                    let f = l.field.unraw().to_string();
                    let base = match l.uses.iter().position(|u| *u == j) {
                        Some(p) if l.uses.len() > 1 => format!("{f}_{}", p + 1),
                        _ => f,
                    };
                    (base, l.kind.has_cache())
                }
                Op::Add => {
                    adds += 1;
                    (binding().unwrap_or_else(|| format!("add{adds}")), false)
                }
                Op::Concat(_) => {
                    concats += 1;
                    (
                        binding().unwrap_or_else(|| format!("concat{concats}")),
                        false,
                    )
                }
            };
            let base = if taken.insert(base.clone()) {
                base
            } else {
                format!("{base}_{j}")
            };
            names.out.push(format_ident!("{}_out", base));
            names
                .cache
                .push(cached.then(|| format_ident!("{}_cache", base)));
            names.grad.push(Some(format_ident!("{}_grad", base)));
            names.base.push(base);
        }
        names
    }
}

/// Which generated item a `where` clause is for (see [`layer_bounds`]).
#[derive(Clone, Copy, PartialEq)]
enum Need {
    /// The passes, `init` and the `Layer` impl: every trait they use on
    /// every layer.
    All,
    /// The gradients struct and the `Module` impl: `Module` on the fields.
    Params,
    /// The cache and tape structs: `Layer` on the layers with a cache (the
    /// struct names `<T as Layer<E, D>>::Cache`).
    Caches,
}

/// The `where` clause of a generated item: for each layer, the traits the
/// generated code uses on its type, spanned at the layer (an unsatisfied
/// bound points at it). For the passes ([`Need::All`]):
///
/// ```text
/// where
///     Conv2d<E, D, 1, 6, 1, 5, 5, 28, 28, 28, 28>: Layer<E, D, In = S3<1, 28, 28>, Out = S3<6, 28, 28>>
///         + Build<E, D, Config = Conv2dConfig>,      // a field
///     Relu<S3<6, 28, 28>>: Layer<E, D, In = S3<6, 28, 28>, Out = S3<6, 28, 28>>
///         + Module<E, D, Grads = ()>,                // built in place
/// ```
///
/// With these bounds each layer states the kernels it needs (a convolution
/// `D: ConvKernels<E>`) rather than every layer needing only
/// `D: Backend<E>`, which stays the base bound. Associated types the
/// generated code relies on are named in the bound (`In`, `Out`, a pool's
/// `Cache`; see `Rule::bounds`), because under a `where` clause rustc no
/// longer looks them up in the layer's impl. A layer called through
/// inherent methods adds what they ask of the device (`MaxUnpool2d`:
/// `D: PoolKernels<E>`; `Rule::device_bounds`). Identical predicates (two
/// `relu`s of one shape) are written once.
fn layer_bounds(net: &Net, need: Need) -> TokenStream {
    let k = &net.krate;
    let mut seen = HashSet::new();
    let mut preds = Vec::new();
    for l in &net.layers {
        let Some(&j) = l.uses.first() else { continue };
        let ty = &l.ty;
        let bound = match need {
            Need::All => {
                let call = Call {
                    k,
                    ty,
                    si: shape_ty(k, &l.in_shape),
                    so: shape_ty(k, &l.out_shape),
                    input: &l.in_shape,
                    out: &l.out_shape,
                    field: &l.field,
                    inst: TokenStream::new(),
                    x: TokenStream::new(),
                    extra: Vec::new(),
                    y: TokenStream::new(),
                    cache: TokenStream::new(),
                    dy: TokenStream::new(),
                    dx: TokenStream::new(),
                    extra_dx: Vec::new(),
                    grads: TokenStream::new(),
                    gacc: TokenStream::new(),
                    tie_acc: TokenStream::new(),
                    net,
                    cache_fields: &[],
                };
                let used = l.kind.bounds(&call);
                if l.kind.is_field() {
                    let cfg = l.kind.config_ty(k);
                    quote!(#used + #k::Build<E, D, Config = #cfg>)
                } else {
                    quote!(#used + #k::Module<E, D, Grads = ()>)
                }
            }
            Need::Params if l.kind.is_field() => quote!(#k::Module<E, D>),
            Need::Caches if l.kind.has_cache() => match l.kind.cache_bound(k) {
                Some(b) => b,
                None => continue,
            },
            _ => continue,
        };
        let mut mine = vec![quote!(#ty: #bound)];
        if need == Need::All {
            mine.extend(l.kind.device_bounds(k));
        }
        for pred in mine {
            if seen.insert(pred.to_string()) {
                preds.push(respan(pred, net.nodes[j].span));
            }
        }
    }
    quote!(where #(#preds,)*)
}

/// `&self.field` / `&mut self.field` for fields, or a fresh stateless layer
/// built in place.
fn layer_ref(net: &Net, li: usize, mutable: bool) -> TokenStream {
    let l = &net.layers[li];
    if l.kind.is_field() {
        let f = &l.field;
        if mutable {
            quote!(&mut self.#f)
        } else {
            quote!(&self.#f)
        }
    } else {
        let e = l.kind.inline(&l.ty);
        if mutable {
            quote!(&mut #e)
        } else {
            quote!(&#e)
        }
    }
}

/// The user's location with the macro's name resolution: errors point at the
/// layer the user wrote, while the generated locals still resolve (the user's
/// tokens come through `kiln::network!`'s `macro_rules!` hygiene).
fn at(span: Span) -> Span {
    Span::call_site().located_at(span)
}

/// Gives every token of `ts` (arguments included) the user's location, so
/// rustc's type errors on a generated call underline the layer that is wrong.
fn respan(ts: TokenStream, span: Span) -> TokenStream {
    use proc_macro2::{Group, TokenTree};
    let span = at(span);
    ts.into_iter()
        .map(|tt| match tt {
            TokenTree::Group(g) => {
                let mut ng = Group::new(g.delimiter(), respan(g.stream(), span));
                ng.set_span(span);
                TokenTree::Group(ng)
            }
            mut other => {
                other.set_span(span);
                other
            }
        })
        .collect()
}
