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
        Cx {
            net,
            k,
            ga,
            gp,
            struct_params,
            grads_name: format_ident!("{}Grads", net.name),
            cache_name: format_ident!("{}Cache", net.name),
            tape_name: format_ident!("{}Tape", net.name),
            names: Names::new(net),
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

/// The network itself: one field per layer with state, documented with its
/// shapes, and the device.
///
/// ```text
/// /// … Generated by `network!`: inputs `x` [1, 28, 28], outputs `y` [10]. …
/// pub struct LeNet5<E: Elem = f32, D: Backend<E> = Cpu> {
///     /// `conv1: Conv2d(6, kernel = 5, padding = 2)`: [1, 28, 28] → [6, 28, 28]
///     pub conv1: Conv2d<E, D, 1, 6, 1, 5, 5, 28, 28, 28, 28>,
///     …
///     device: D,
///     _elem: PhantomData<E>,
/// }
/// ```
fn param_struct(cx: &Cx) -> TokenStream {
    let struct_params = &cx.struct_params;
    let net = cx.net;
    let (attrs, vis, name) = (&net.attrs, &net.vis, &net.name);
    let field_defs = cx.fields().map(|l| {
        let f = &l.field;
        let ty = &l.ty;
        let doc = format!(
            "`{}`: {} → {}{}",
            l.spec.text(),
            dims(&l.in_shape),
            dims(&l.out_shape),
            if l.uses.len() > 1 {
                format!(" (applied {} times, weights shared)", l.uses.len())
            } else {
                String::new()
            }
        );
        quote_spanned!(at(l.spec.span)=> #[doc = #doc] pub #f: #ty,)
    });
    let struct_doc = format!(
        "\n\nGenerated by `network!`: inputs {}, outputs {}. See [`{}::summary`] for the layer table.",
        net.inputs.iter().map(|i| format!("`{}` {}", i.name, dims(&i.shape))).collect::<Vec<_>>().join(", "),
        net.outputs.iter().map(|o| format!("`{}` {}", o.name, dims(net.shape(o.val)))).collect::<Vec<_>>().join(", "),
        name
    );
    quote! {
        #(#attrs)*
        #[doc = #struct_doc]
        #vis struct #name<#struct_params> {
            #(#field_defs)*
            device: D,
            _elem: ::core::marker::PhantomData<E>,
        }
    }
}

/// The gradients, mirroring the parameter fields.
///
/// ```text
/// pub struct LeNet5Grads<E: Elem, D: Backend<E>> where … {
///     pub conv1: <Conv2d<…> as Module<E, D>>::Grads,
///     …
///     _p: PhantomData<(E, D)>,
/// }
/// ```
fn grads_struct(cx: &Cx) -> TokenStream {
    let gp = &cx.gp;
    let (k, vis, name) = (cx.k, &cx.net.vis, &cx.net.name);
    let (grads_name, bounds) = (&cx.grads_name, &cx.param_bounds);
    let field_names = cx.fields().map(|l| &l.field);
    let field_tys = cx.fields().map(|l| &l.ty);
    let grads_doc = format!("Gradients of every parameter of [`{name}`], reused every step.");
    quote! {
        #[doc = #grads_doc]
        #vis struct #grads_name<E: #k::Elem, D: #k::Backend<E> #gp> #bounds {
            #( #[allow(missing_docs)] pub #field_names: <#field_tys as #k::Module<E, D>>::Grads, )*
            _p: ::core::marker::PhantomData<(E, D)>,
        }
    }
}

/// The activations of a pass: per node, its output, its layer's cache and
/// the gradient arriving at it (see [`Names`]).
///
/// ```text
/// struct LeNet5Cache<E: Elem, D: Backend<E>> where … {
///     conv1_out: Tensor<S3<6, 28, 28>, E, D>,
///     conv1_cache: <Conv2d<…> as Layer<E, D>>::Cache,
///     conv1_grad: Tensor<S3<6, 28, 28>, E, D>,
///     …
///     fc3_out: Tensor<S1<10>, E, D>,   // no fc3_grad: d_y arrives directly
///     fc3_cache: …,
///     detect: bool,
///     _p: PhantomData<(E, D)>,
/// }
/// ```
fn cache_struct(cx: &Cx) -> TokenStream {
    let gp = &cx.gp;
    let (net, k, vis, name) = (cx.net, cx.k, &cx.net.vis, &cx.net.name);
    let (cache_name, bounds) = (&cx.cache_name, &cx.cache_bounds);
    let mut defs = Vec::new();
    for (j, n) in net.nodes.iter().enumerate() {
        let v = &cx.names.out[j];
        let t = cx.tensor(&cx.node_ty[j]);
        defs.push(quote!(#v: #t,));
        if let (Some(c), Op::Layer(li)) = (&cx.names.cache[j], &n.op) {
            let l = &net.layers[*li];
            let cty = l.kind.cache_ty(k, &l.ty);
            defs.push(quote!(#c: #cty,));
        }
        if let Some(g) = &cx.names.grad[j] {
            defs.push(quote!(#g: #t,));
        }
    }
    let cache_doc = format!("Activations and per-layer caches of [`{name}`].");
    quote! {
        #[doc = #cache_doc]
        #[allow(non_snake_case)]
        #vis struct #cache_name<E: #k::Elem, D: #k::Backend<E> #gp> #bounds {
            #(#defs)*
            /// Anomaly detection was on in the forward pass; check the backward too.
            detect: bool,
            _p: ::core::marker::PhantomData<(E, D)>,
        }
    }
}

/// What a training step keeps between `forward_train` and `backward`.
///
/// ```text
/// pub struct LeNet5Tape<E: Elem, D: Backend<E>> where … {
///     pub ctx: TrainCtx,
///     pub in_x: Tensor<S3<1, 28, 28>, E, D>,     // a copy of the input
///     pub out_y: Tensor<S1<10>, E, D>,
///     pub grad_x: Tensor<S3<1, 28, 28>, E, D>,   // when input_grads is set
///     pub input_grads: bool,
///     cache: LeNet5Cache<E, D>,
/// }
/// ```
fn tape_struct(cx: &Cx) -> TokenStream {
    let ga = &cx.ga;
    let gp = &cx.gp;
    let (net, k, vis, name) = (cx.net, cx.k, &cx.net.vis, &cx.net.name);
    let (tape_name, cache_name, bounds) = (&cx.tape_name, &cx.cache_name, &cx.cache_bounds);
    let (in_full, out_ty) = (&cx.in_full, &cx.out_ty);
    let (in_names, out_names, grad_names) = api_names(cx);
    let grad_ty: Vec<_> = cx.float_in().iter().map(|&i| &cx.in_full[i]).collect();
    let in_docs = net.inputs.iter().map(|i| {
        format!(
            "A copy of input `{}` ({}), kept for the backward pass.",
            i.name,
            dims(&i.shape)
        )
    });
    let out_docs = net
        .outputs
        .iter()
        .map(|o| format!("Output `{}` ({}).", o.name, dims(net.shape(o.val))));
    let grad_docs = net.inputs.iter().filter(|i| i.vocab.is_none()).map(|i| {
        format!(
            "∂L/∂`{}`, filled by `backward` when `input_grads` is set.",
            i.name
        )
    });
    let tape_doc = format!("Everything a training step of [`{name}`] keeps between `forward_train` and `backward`, allocated on the first step and reused.");
    quote! {
        #[doc = #tape_doc]
        #vis struct #tape_name<E: #k::Elem, D: #k::Backend<E> #gp> #bounds {
            /// The random source of stochastic layers (dropout), seeded.
            pub ctx: #k::TrainCtx,
            #( #[doc = #in_docs] pub #in_names: #in_full, )*
            #( #[doc = #out_docs] pub #out_names: #k::Tensor<#out_ty, E, D>, )*
            #( #[doc = #grad_docs] pub #grad_names: #grad_ty, )*
            /// Whether `backward` computes the gradients with respect to the inputs (saliency maps, GANs).
            pub input_grads: bool,
            cache: #cache_name<E, D #ga>,
        }
    }
}

/// The tape's public fields: `in_x`, `out_y`, `grad_x`.
fn api_names(cx: &Cx) -> (Vec<Ident>, Vec<Ident>, Vec<Ident>) {
    let net = cx.net;
    let id = |p: &str, n: &Ident| format_ident!("{}{}", p, n, span = Span::call_site());
    (
        net.inputs.iter().map(|i| id("in_", &i.name)).collect(),
        net.outputs.iter().map(|o| id("out_", &o.name)).collect(),
        net.inputs
            .iter()
            .filter(|i| i.vocab.is_none())
            .map(|i| id("grad_", &i.name))
            .collect(),
    )
}

/// The inherent impl: [`consts`], [`api`], [`new_cache`], [`forward`] (both
/// modes) and [`backward`].
///
/// ```text
/// impl<E: Elem, D: Backend<E>> LeNet5<E, D> where … { … }
/// ```
fn inherent_impl(cx: &Cx) -> TokenStream {
    let ga = &cx.ga;
    let gp = &cx.gp;
    let (k, name, bounds) = (cx.k, &cx.net.name, &cx.bounds);
    let consts = consts(cx);
    let api = api(cx);
    let new_cache = new_cache(cx);
    let forward_train = forward(cx, true);
    let forward_eval = forward(cx, false);
    let backward = backward(cx);
    quote! {
        #[allow(clippy::too_many_arguments, clippy::needless_question_mark, unused_mut, unused_variables)]
        impl<E: #k::Elem, D: #k::Backend<E> #gp> #name<E, D #ga> #bounds {
            #consts
            #api
            #new_cache
            #forward_train
            #forward_eval
            #backward
        }
    }
}

/// Multiply–adds per sample of each node: its layer's (from its kind), the
/// additions' one per element, nothing for a concatenation.
fn node_flops(cx: &Cx) -> Vec<TokenStream> {
    let (net, k) = (cx.net, cx.k);
    net.nodes
        .iter()
        .map(|n| match n.op {
            Op::Layer(li) => {
                let l = &net.layers[li];
                l.kind.flops(k, &l.ty)
            }
            Op::Add => match crate::dim::product(&n.shape) {
                Ok(s) => crate::dim::tokens(s),
                Err(_) => quote!(0usize),
            },
            Op::Concat(_) => quote!(0usize),
        })
        .collect()
}

/// The compile-time facts, and the summary's rows.
///
/// ```text
/// pub const PARAMS: usize = 0 + 156usize + 2416usize + …;
/// pub const FLOPS: usize = 0 + <Conv2d<…> as Layer<E, D>>::FLOPS + …;
/// pub const INPUTS: &[&[usize]] = &[&[1usize, 28usize, 28usize]];
/// pub const OUTPUTS: &[&[usize]] = &[&[10usize]];
/// pub const VOCABS: &[Option<usize>] = &[None];            // Some(V) for token ids
/// pub const __ROWS: &[Row] = &[Row { name: "conv1", layer: "Conv2d(…)", out: &[…], params: …, flops: … }, …];
/// ```
fn consts(cx: &Cx) -> TokenStream {
    let (net, k) = (cx.net, cx.k);
    let params = cx
        .fields()
        .map(|l| l.kind.params(&l.in_shape, &l.out_shape, &l.ty));
    let flops = node_flops(cx);
    let rows = net.nodes.iter().enumerate().map(|(j, n)| {
        let (nm, layer, params) = match n.op {
            Op::Layer(li) => {
                let l = &net.layers[li];
                let nm = if l.kind.is_field() {
                    l.field.to_string()
                } else {
                    n.binding.clone().unwrap_or_else(|| l.field.to_string())
                };
                let p = if l.kind.is_field() && l.uses.first() == Some(&j) {
                    l.kind.params(&l.in_shape, &l.out_shape, &l.ty)
                } else {
                    quote!(0usize)
                };
                (nm, l.spec.text(), p)
            }
            _ => (
                n.binding.clone().unwrap_or_default(),
                n.label.clone(),
                quote!(0usize),
            ),
        };
        let out = n.shape.iter().map(|d| crate::dim::tokens(*d));
        let fl = &flops[j];
        quote!(#k::summary::Row { name: #nm, layer: #layer, out: &[#(#out),*], params: #params, flops: #fl },)
    });
    let in_dims = net.inputs.iter().map(|i| {
        let d = i.shape.iter().map(|d| crate::dim::tokens(*d));
        quote!(&[#(#d),*])
    });
    let out_dims = net.outputs.iter().map(|o| {
        let d = net.shape(o.val).iter().map(|d| crate::dim::tokens(*d));
        quote!(&[#(#d),*])
    });
    let vocabs = net.inputs.iter().map(|i| match i.vocab {
        Some((v, _)) => {
            let v = crate::dim::tokens(v);
            quote!(::core::option::Option::Some(#v))
        }
        None => quote!(::core::option::Option::None),
    });
    quote! {
        #[doc(hidden)]
        pub const __PARAMS: usize = 0 #(+ #params)*;
        #[doc(hidden)]
        pub const __FLOPS: usize = 0 #(+ #flops)*;
        #[doc(hidden)]
        pub const __INPUTS: &'static [&'static [usize]] = &[#(#in_dims),*];
        #[doc(hidden)]
        pub const __OUTPUTS: &'static [&'static [usize]] = &[#(#out_dims),*];
        #[doc(hidden)]
        pub const __VOCABS: &'static [::core::option::Option<usize>] = &[#(#vocabs),*];
        #[doc(hidden)]
        pub const __ROWS: &'static [#k::summary::Row] = &[#(#rows)*];
    }
}

/// The facts that hold for every element type and device, on the
/// defaults' instantiation `Name<f32, Cpu, …>` alone, so `Name::PARAMS` and
/// `Name::summary()` need no type annotation (with one generic impl, `E` and
/// `D` could not be inferred: E0283). They read the generic impl's hidden
/// constants; its `where` clauses are repeated with `E = f32, D = Cpu`.
///
/// ```text
/// impl Mlp<f32, Cpu> where … {
///     pub const PARAMS: usize = Self::__PARAMS;   // FLOPS, INPUTS, OUTPUTS, VOCABS
///     pub fn summary() -> String
/// }
/// ```
fn facts_impl(cx: &Cx) -> TokenStream {
    let (k, name, ga) = (cx.k, &cx.net.name, &cx.ga);
    let names_g = cx.net.generics.iter().map(|(i, _)| i);
    let title = name.to_string();
    let bounds = concrete(cx.bounds.clone(), k);
    quote! {
        impl<#(const #names_g: usize),*> #name<f32, #k::Cpu #ga> #bounds {
            /// Trainable parameters (the same for every element type and device).
            pub const PARAMS: usize = Self::__PARAMS;
            /// Multiply–adds per sample of the forward pass.
            pub const FLOPS: usize = Self::__FLOPS;
            /// Per-sample shapes of the inputs, in declaration order.
            pub const INPUTS: &'static [&'static [usize]] = Self::__INPUTS;
            /// Per-sample shapes of the outputs, in declaration order.
            pub const OUTPUTS: &'static [&'static [usize]] = Self::__OUTPUTS;
            /// Per input, in declaration order: its vocabulary when it holds
            /// token ids (`Tokens<[T], V>`), `None` for floats.
            pub const VOCABS: &'static [::core::option::Option<usize>] = Self::__VOCABS;
            /// A printable table of the layers, their output shapes, parameters and multiply–adds.
            pub fn summary() -> ::std::string::String {
                #k::summary::table_with_vocab(#title, Self::INPUTS, Self::VOCABS, Self::__ROWS)
            }
        }
    }
}

/// `tokens` with the type parameters `E` and `D` replaced by `f32` and
/// kiln's `Cpu` (the generic impl's bounds, for [`facts_impl`]).
fn concrete(tokens: TokenStream, k: &TokenStream) -> TokenStream {
    use proc_macro2::{Group, TokenTree};
    tokens
        .into_iter()
        .flat_map(|t| -> Vec<TokenTree> {
            match t {
                TokenTree::Ident(i) if i == "E" => {
                    vec![TokenTree::Ident(Ident::new("f32", i.span()))]
                }
                TokenTree::Ident(i) if i == "D" => quote!(#k::Cpu).into_iter().collect(),
                TokenTree::Group(g) => {
                    let mut n = Group::new(g.delimiter(), concrete(g.stream(), k));
                    n.set_span(g.span());
                    vec![TokenTree::Group(n)]
                }
                t => vec![t],
            }
        })
        .collect()
}

/// The user-facing methods; each checks batch sizes and calls the private
/// passes with the tape's buffers.
///
/// ```text
/// pub fn init(dev: &D, rng: &mut Rng) -> Result<Self> { Ok(LeNet5 { conv1: <Conv2d<…> as Build<E, D>>::build(dev, rng, Conv2dConfig { … })?, … }) }
/// pub fn device(&self) -> &D
/// pub fn grads(&self) -> Result<LeNet5Grads<E, D>>
/// pub fn tape(&self) / tape_seeded(&self, seed) -> Result<LeNet5Tape<E, D>>
/// pub fn forward(&self, x) -> Result<Tensor<S1<10>, E, D>>            // allocates
/// pub fn forward_with<'t>(&self, x, tape: &'t mut Tape) -> Result<&'t Tensor<…>>
/// pub fn forward_train<'t>(&mut self, x, tape: &'t mut Tape) -> Result<&'t Tensor<…>>
/// pub fn backward(&self, tape: &mut Tape, d_y, grads: &mut Grads) -> Result<()>
/// pub fn backward_acc(&self, tape, d_y, grads, acc: Acc) -> Result<()>   // Acc::Add accumulates
/// ```
fn api(cx: &Cx) -> TokenStream {
    let ga = &cx.ga;
    let (net, k, name) = (cx.net, cx.k, &cx.net.name);
    let (grads_name, tape_name) = (&cx.grads_name, &cx.tape_name);
    let (in_full, out_ty) = (&cx.in_full, &cx.out_ty);
    let (in_names, out_names, grad_names) = api_names(cx);
    let in_paths: Vec<_> = (0..net.inputs.len()).map(|i| cx.in_path(i)).collect();
    let empty_ins = net.inputs.iter().map(|i| match i.vocab {
        Some(_) => quote!(#k::Tokens::zeros::<E>(&self.device, 0)?),
        None => quote!(#k::Tensor::empty(&self.device)?),
    });
    let field_names: Vec<_> = cx.fields().map(|l| &l.field).collect();
    let field_tys = cx.fields().map(|l| &l.ty);
    let field_cfgs = cx.fields().map(|l| l.kind.config(k));
    let user_in: Vec<_> = net
        .inputs
        .iter()
        .map(|i| format_ident!("{}", i.name, span = Span::call_site()))
        .collect();
    let user_d: Vec<_> = net
        .outputs
        .iter()
        .map(|o| format_ident!("d_{}", o.name, span = Span::call_site()))
        .collect();
    let (ret_ty, ret_refs, ret_owned, ret_owned_ty) = if net.outputs.len() == 1 {
        let t = cx.tensor(&out_ty[0]);
        let o = &out_names[0];
        (quote!(&'t #t), quote!(&tape.#o), quote!(outs.0), t)
    } else {
        let ts: Vec<_> = out_ty.iter().map(|s| cx.tensor(s)).collect();
        let idx = (0..net.outputs.len()).map(syn::Index::from);
        (
            quote!((#(&'t #ts),*)),
            quote!((#(&tape.#out_names),*)),
            quote!((#(outs.#idx),*)),
            quote!((#(#ts),*)),
        )
    };
    let first_in = &user_in[0];
    let batch_checks: Vec<TokenStream> = user_in
        .iter()
        .enumerate()
        .skip(1)
        .map(|(i, u)| {
            let s = u.to_string();
            let f = first_in.to_string();
            let (p0, pi) = (&in_paths[0], &in_paths[i]);
            quote!(#k::error::check_batch("forward", #f, #p0::batch(#first_in), #s, #pi::batch(#u))?;)
        })
        .collect();
    let batch_checks2 = &batch_checks;
    let d_checks = user_d.iter().zip(&out_names).map(|(d, o)| {
        let ds = d.to_string();
        quote!(#k::error::check_batch("backward", #ds, #k::Tensor::batch(#d), "forward_train's output", #k::Tensor::batch(&tape.#o))?;)
    });
    let empty_outs = out_ty
        .iter()
        .map(|_| quote!(#k::Tensor::empty(&self.device)?));
    let outs_tuple_idx: Vec<_> = (0..net.outputs.len()).map(syn::Index::from).collect();
    quote! {
        /// A network with freshly initialised parameters on `dev`, drawn from `rng`.
        pub fn init(dev: &D, rng: &mut #k::Rng) -> #k::Result<Self> {
            Ok(#name {
                #( #field_names: <#field_tys as #k::Build<E, D>>::build(dev, rng, #field_cfgs)?, )*
                device: ::core::clone::Clone::clone(dev),
                _elem: ::core::marker::PhantomData,
            })
        }
        /// The device holding the parameters.
        pub fn device(&self) -> &D {
            &self.device
        }
        /// Zeroed gradients, to be created once and reused.
        pub fn grads(&self) -> #k::Result<#grads_name<E, D #ga>> {
            #k::Module::<E, D>::grads(self)
        }
        /// A tape (activation buffers, reused every step) whose random source is seeded with 0.
        pub fn tape(&self) -> #k::Result<#tape_name<E, D #ga>> {
            self.tape_seeded(0)
        }
        /// A tape whose random source is seeded with `seed`.
        pub fn tape_seeded(&self, seed: u64) -> #k::Result<#tape_name<E, D #ga>> {
            Ok(#tape_name {
                ctx: #k::TrainCtx::new(seed),
                #( #in_names: #empty_ins, )*
                #( #out_names: #k::Tensor::empty(&self.device)?, )*
                #( #grad_names: #k::Tensor::empty(&self.device)?, )*
                input_grads: false,
                cache: self.__cache()?,
            })
        }
        /// Inference (evaluation mode) into new tensors. Allocates; for a
        /// loop use [`Self::forward_with`].
        pub fn forward(&self, #(#user_in: &#in_full),*) -> #k::Result<#ret_owned_ty> {
            #(#batch_checks2)*
            let mut c = self.__cache()?;
            let mut outs = (#(#empty_outs,)*);
            self.__forward_eval(#(#user_in,)* #(&mut outs.#outs_tuple_idx,)* &mut c)?;
            Ok(#ret_owned)
        }
        /// Inference (evaluation mode) reusing `tape`'s buffers.
        pub fn forward_with<'t>(&self, #(#user_in: &#in_full,)* tape: &'t mut #tape_name<E, D #ga>) -> #k::Result<#ret_ty> {
            #(#batch_checks2)*
            self.__forward_eval(#(#user_in,)* #(&mut tape.#out_names,)* &mut tape.cache)?;
            Ok(#ret_refs)
        }
        /// Training-mode forward pass: copies the inputs into `tape`, keeps
        /// every activation the backward pass needs, returns the outputs.
        pub fn forward_train<'t>(&mut self, #(#user_in: &#in_full,)* tape: &'t mut #tape_name<E, D #ga>) -> #k::Result<#ret_ty> {
            #(#batch_checks2)*
            #( #in_paths::assign(&mut tape.#in_names, #user_in)?; )*
            self.__forward_train(#(&tape.#in_names,)* #(&mut tape.#out_names,)* &mut tape.cache, &mut tape.ctx)?;
            Ok(#ret_refs)
        }
        /// The backward pass of the last `forward_train`: from the gradients
        /// of the loss with respect to the outputs, writes every parameter
        /// gradient into `grads` (overwriting) and, when `tape.input_grads`
        /// is set, the input gradients into `tape.grad_*`.
        pub fn backward(&self, tape: &mut #tape_name<E, D #ga>, #(#user_d: &#k::Tensor<#out_ty, E, D>,)* grads: &mut #grads_name<E, D #ga>) -> #k::Result<()> {
            self.backward_acc(tape, #(#user_d,)* grads, #k::Acc::Set)
        }
        /// [`backward`](Self::backward) that, with `Acc::Add`, adds the
        /// parameters' gradients into `grads` instead of overwriting them:
        /// gradient accumulation over micro-batches (scale each one's loss
        /// gradient by 1/k for the mean over k), or two losses into one set
        /// of gradients. Input gradients (`input_grads`) are always this
        /// batch's own.
        pub fn backward_acc(&self, tape: &mut #tape_name<E, D #ga>, #(#user_d: &#k::Tensor<#out_ty, E, D>,)* grads: &mut #grads_name<E, D #ga>, acc: #k::Acc) -> #k::Result<()> {
            #(#d_checks)*
            let want = tape.input_grads;
            self.__backward(
                #(&tape.#in_names,)*
                #(#user_d,)*
                #( if want { ::core::option::Option::Some((&mut tape.#grad_names, #k::Acc::Set)) } else { ::core::option::Option::None }, )*
                &mut tape.cache,
                grads,
                acc,
            )
        }
    }
}

/// The empty cache: every buffer empty (sized on first use), every layer's
/// cache from `Layer::cache`.
///
/// ```text
/// fn __cache(&self) -> Result<LeNet5Cache<E, D>> {
///     Ok(LeNet5Cache { conv1_out: Tensor::empty(&self.device)?, conv1_cache: Layer::<E, D>::cache(&self.conv1)?, …, detect: false, _p: PhantomData })
/// }
/// ```
fn new_cache(cx: &Cx) -> TokenStream {
    let ga = &cx.ga;
    let (net, k, cache_name) = (cx.net, cx.k, &cx.cache_name);
    let mut inits = Vec::new();
    for (j, n) in net.nodes.iter().enumerate() {
        let v = &cx.names.out[j];
        inits.push(quote!(#v: #k::Tensor::empty(&self.device)?,));
        if let (Some(c), Op::Layer(li)) = (&cx.names.cache[j], &n.op) {
            let inst = layer_ref(net, *li, false);
            let init = net.layers[*li].kind.cache_init(k, &inst);
            inits.push(quote!(#c: #init,));
        }
        if let Some(g) = &cx.names.grad[j] {
            inits.push(quote!(#g: #k::Tensor::empty(&self.device)?,));
        }
    }
    quote! {
        fn __cache(&self) -> #k::Result<#cache_name<E, D #ga>> {
            Ok(#cache_name { #(#inits)* detect: false, _p: ::core::marker::PhantomData })
        }
    }
}

/// The forward pass, training mode (`__forward_train`, with anomaly checks)
/// or evaluation mode (`__forward_eval`): each node in order, through its
/// kind ([`crate::kinds::Rule::forward`]), then the outputs copied out.
///
/// ```text
/// fn __forward_train(&mut self, in_x: &Tensor<…>, out_y: &mut Tensor<…>, c: &mut LeNet5Cache<E, D>, ctx: &mut TrainCtx) -> Result<()> {
///     c.detect = ctx.detect_anomaly;
///     Layer::<E, D>::forward_train(&mut self.conv1, in_x, &mut c.conv1_out, &mut c.conv1_cache, ctx)?;
///     if ctx.detect_anomaly { ops::check_finite(&c.conv1_out, "conv1: Conv2d(…)", "forward output")?; }
///     Layer::<E, D>::forward_train(&mut <Relu<S3<6, 28, 28>> as Default>::default(), &c.conv1_out, &mut c.relu1_out, &mut c.relu1_cache, ctx)?;
///     …
///     Tensor::assign(out_y, &c.fc3_out)?;
///     Ok(())
/// }
/// ```
fn forward(cx: &Cx, train: bool) -> TokenStream {
    let ga = &cx.ga;
    let (net, k, cache_name) = (cx.net, cx.k, &cx.cache_name);
    let (in_full, out_ty, in_args, out_args) = (&cx.in_full, &cx.out_ty, &cx.in_args, &cx.out_args);
    let mut body = Vec::new();
    if train {
        body.push(quote!(c.detect = ctx.detect_anomaly;));
    }
    for (j, n) in net.nodes.iter().enumerate() {
        let v = &cx.names.out[j];
        let span = n.span;
        match n.op {
            Op::Layer(li) => {
                let call = cx.call(j, li, train);
                body.push(respan(net.layers[li].kind.forward(&call, train), span));
            }
            Op::Add => {
                let (a, b) = (cx.val_ref(n.args[0]), cx.val_ref(n.args[1]));
                body.push(respan_q!(span=> #k::ops::add_fwd(#a, #b, &mut c.#v)?;));
            }
            Op::Concat(d) => {
                let first = cx.val_ref(n.args[0]);
                body.push(
                    respan_q!(span=> #k::ops::concat_begin(&mut c.#v, #k::Tensor::batch(#first))?;),
                );
                for (a, outer, off) in concat_parts(net, j, d) {
                    let r = cx.val_ref(a);
                    if outer == 1 {
                        body.push(respan_q!(span=> #k::ops::concat_fwd(#r, &mut c.#v, #off)?;));
                    } else {
                        body.push(respan_q!(span=> #k::ops::concat_fwd_along(#r, &mut c.#v, #outer, #off)?;));
                    }
                }
            }
        }
        // Anomaly detection after each node, in order: the first failure
        // names the layer where a non-finite value first appeared.
        if train {
            let label = &n.label;
            body.push(quote!(if ctx.detect_anomaly { #k::ops::check_finite(&c.#v, #label, "forward output")?; }));
        }
    }
    for (o, out) in net.outputs.iter().enumerate() {
        let dst = &out_args[o];
        let src = cx.val_ref(out.val);
        body.push(quote!(#k::Tensor::assign(#dst, #src)?;));
    }
    if train {
        quote! {
            fn __forward_train(
                &mut self,
                #(#in_args: &#in_full,)*
                #(#out_args: &mut #k::Tensor<#out_ty, E, D>,)*
                c: &mut #cache_name<E, D #ga>,
                ctx: &mut #k::TrainCtx,
            ) -> #k::Result<()> {
                #(#body)*
                Ok(())
            }
        }
    } else {
        quote! {
            fn __forward_eval(
                &self,
                #(#in_args: &#in_full,)*
                #(#out_args: &mut #k::Tensor<#out_ty, E, D>,)*
                c: &mut #cache_name<E, D #ga>,
            ) -> #k::Result<()> {
                #(#body)*
                Ok(())
            }
        }
    }
}

/// The backward pass: the outputs' gradients passed to the values they come
/// from, then each node in reverse, through its kind
/// ([`crate::kinds::Rule::backward`]). The first contribution to a
/// gradient buffer overwrites it (`Acc::Set`), later ones add; a layer's
/// parameter gradients take the caller's `gacc` on its first application.
///
/// ```text
/// fn __backward(&self, in_x: &Tensor<…>, d_y: &Tensor<…>, mut din_x: Option<(&mut Tensor<…>, Acc)>,
///               c: &mut LeNet5Cache<E, D>, g: &mut LeNet5Grads<E, D>, gacc: Acc) -> Result<()> {
///     if c.detect { ops::check_finite(d_y, "fc3: Linear(10)", "backward: gradient arriving at the output")?; }
///     Layer::<E, D>::backward(&self.fc3, &c.relu4_out, &c.fc3_out, &mut c.fc3_cache, d_y, Some((&mut c.relu4_grad, Acc::Set)), &mut g.fc3, gacc)?;
///     …
///     Layer::<E, D>::backward(&self.conv1, in_x, &c.conv1_out, &mut c.conv1_cache, &c.conv1_grad, ops::reborrow(&mut din_x, true), &mut g.conv1, gacc)?;
///     Ok(())
/// }
/// ```
fn backward(cx: &Cx) -> TokenStream {
    let ga = &cx.ga;
    let (net, k) = (cx.net, cx.k);
    let (grads_name, cache_name) = (&cx.grads_name, &cx.cache_name);
    let (in_full, out_ty, in_args, d_args) = (&cx.in_full, &cx.out_ty, &cx.in_args, &cx.d_args);
    let din_args = &cx.din_args;
    // Token inputs have no gradient, hence no `din_*` parameter.
    let floats = cx.float_in();
    let din_params: Vec<_> = floats.iter().map(|&i| &din_args[i]).collect();
    let din_tys: Vec<_> = floats.iter().map(|&i| &in_full[i]).collect();
    let mut bwd = Vec::new();
    let mut seen: HashSet<Val> = HashSet::new();
    let mut layer_seen: HashSet<usize> = HashSet::new();
    // A gradient destination for value `v`, first contribution or not.
    let dest = |v: Val, seen: &mut HashSet<Val>| -> TokenStream {
        let first = seen.insert(v);
        match v {
            // Token ids take no gradient (shape inference lets only
            // `Embedding`, which passes none, read them).
            Val::In(i) if net.inputs[i].vocab.is_some() => quote!(::core::option::Option::None),
            Val::In(i) => {
                let d = &din_args[i];
                quote!(#k::ops::reborrow(&mut #d, #first))
            }
            Val::Node(j) => {
                let g = &cx.names.grad[j];
                let acc = if first {
                    quote!(#k::Acc::Set)
                } else {
                    quote!(#k::Acc::Add)
                };
                quote!(::core::option::Option::Some((&mut c.#g, #acc)))
            }
        }
    };
    for (o, out) in net.outputs.iter().enumerate() {
        if let Val::Node(j) = out.val {
            if cx.direct[j].is_some() {
                continue;
            }
        }
        let d = &d_args[o];
        let dst = dest(out.val, &mut seen);
        bwd.push(quote!(#k::ops::pass_grad_to(#d, #dst)?;));
    }
    for j in (0..net.nodes.len()).rev() {
        let n = &net.nodes[j];
        let span = n.span;
        let dy = match (cx.direct[j], &cx.names.grad[j]) {
            (Some(o), _) => {
                let d = &d_args[o];
                quote!(#d)
            }
            (None, g) => quote!(&c.#g),
        };
        let label = &n.label;
        bwd.push(quote!(if c.detect { #k::ops::check_finite(#dy, #label, "backward: gradient arriving at the output")?; }));
        match n.op {
            Op::Layer(li) => {
                let l = &net.layers[li];
                let mut call = cx.call(j, li, false);
                call.dx = dest(n.args[0], &mut seen);
                call.extra_dx = n.args[1..].iter().map(|a| dest(*a, &mut seen)).collect();
                call.dy = dy;
                (call.grads, call.gacc) = if l.kind.is_field() {
                    let f = &l.field;
                    let acc = if layer_seen.insert(li) {
                        quote!(gacc)
                    } else {
                        quote!(#k::Acc::Add)
                    };
                    (quote!(&mut g.#f), acc)
                } else {
                    (quote!(&mut ()), quote!(#k::Acc::Set))
                };
                // A tied layer writes the gradient of its owner's weight:
                // set by whichever of the two runs first here, added by the other.
                if let Some(t) = l.kind.tied_to() {
                    if let Some(ti) = net.layers.iter().position(|o| o.field == *t) {
                        call.tie_acc = if layer_seen.insert(ti) {
                            quote!(gacc)
                        } else {
                            quote!(#k::Acc::Add)
                        };
                    }
                }
                bwd.push(respan(l.kind.backward(&call), span));
            }
            Op::Add => {
                for &a in &n.args {
                    let dst = dest(a, &mut seen);
                    bwd.push(respan_q!(span=> #k::ops::pass_grad_to(#dy, #dst)?;));
                }
            }
            Op::Concat(d) => {
                for (a, outer, off) in concat_parts(net, j, d) {
                    let dst = dest(a, &mut seen);
                    if outer == 1 {
                        bwd.push(respan_q!(span=> #k::ops::concat_bwd_to(#dy, #off, #dst)?;));
                    } else {
                        bwd.push(respan_q!(span=> #k::ops::concat_bwd_along_to(#dy, #outer, #off, #dst)?;));
                    }
                }
            }
        }
    }
    quote! {
        fn __backward(
            &self,
            #(#in_args: &#in_full,)*
            #(#d_args: &#k::Tensor<#out_ty, E, D>,)*
            #(mut #din_params: ::core::option::Option<(&mut #din_tys, #k::Acc)>,)*
            c: &mut #cache_name<E, D #ga>,
            g: &mut #grads_name<E, D #ga>,
            gacc: #k::Acc,
        ) -> #k::Result<()> {
            #(#bwd)*
            Ok(())
        }
    }
}

/// `Module`: gradients and parameter visiting, field by field under the
/// field's name (the checkpoint and `state_dict` names).
///
/// ```text
/// impl<E: Elem, D: Backend<E>> Module<E, D> for LeNet5<E, D> where … {
///     type Grads = LeNet5Grads<E, D>;
///     fn grads(&self) -> Result<Self::Grads> { Ok(LeNet5Grads { conv1: Module::<E, D>::grads(&self.conv1)?, … }) }
///     fn visit(&self, path, f) { Module::<E, D>::visit(&self.conv1, &path.child("conv1"), f); … }
///     fn visit_grads(&mut self, g, path, f) { … }
///     fn visit_mut(&mut self, path, f) { … }
/// }
/// ```
fn module_impl(cx: &Cx) -> TokenStream {
    let ga = &cx.ga;
    let gp = &cx.gp;
    let (k, name, grads_name, bounds) = (cx.k, &cx.net.name, &cx.grads_name, &cx.param_bounds);
    let field_names: Vec<_> = cx.fields().map(|l| &l.field).collect();
    let field_strs: Vec<String> = cx.fields().map(|l| l.field.to_string()).collect();
    quote! {
        impl<E: #k::Elem, D: #k::Backend<E> #gp> #k::Module<E, D> for #name<E, D #ga> #bounds {
            type Grads = #grads_name<E, D #ga>;
            fn grads(&self) -> #k::Result<Self::Grads> {
                Ok(#grads_name {
                    #( #field_names: #k::Module::<E, D>::grads(&self.#field_names)?, )*
                    _p: ::core::marker::PhantomData,
                })
            }
            fn visit(&self, path: &#k::Path<'_>, f: &mut dyn FnMut(&#k::Path<'_>, #k::ParamRef<'_, E, D>)) {
                #( #k::Module::<E, D>::visit(&self.#field_names, &path.child(#field_strs), f); )*
            }
            fn visit_grads(&mut self, g: &Self::Grads, path: &#k::Path<'_>, f: &mut dyn FnMut(&#k::Path<'_>, #k::ParamMut<'_, E, D>)) {
                #( #k::Module::<E, D>::visit_grads(&mut self.#field_names, &g.#field_names, &path.child(#field_strs), f); )*
            }
            fn visit_mut(&mut self, path: &#k::Path<'_>, f: &mut dyn FnMut(&#k::Path<'_>, #k::ParamMut<'_, E, D>, #k::Role)) {
                #( #k::Module::<E, D>::visit_mut(&mut self.#field_names, &path.child(#field_strs), f); )*
            }
        }
    }
}

/// `Build`, so that a network can be a field of another.
///
/// ```text
/// impl<E: Elem, D: Backend<E>> Build<E, D> for LeNet5<E, D> where … {
///     type Config = ();
///     fn build(dev: &D, rng: &mut Rng, _: ()) -> Result<Self> { Self::init(dev, rng) }
/// }
/// ```
fn build_impl(cx: &Cx) -> TokenStream {
    let ga = &cx.ga;
    let gp = &cx.gp;
    let (k, name, bounds) = (cx.k, &cx.net.name, &cx.bounds);
    quote! {
        impl<E: #k::Elem, D: #k::Backend<E> #gp> #k::Build<E, D> for #name<E, D #ga> #bounds {
            type Config = ();
            fn build(dev: &D, rng: &mut #k::Rng, _: ()) -> #k::Result<Self> {
                Self::init(dev, rng)
            }
        }
    }
}

/// `Layer`, for a network with one input and one output, so that it nests
/// in another (nothing otherwise).
///
/// ```text
/// impl<E: Elem, D: Backend<E>> Layer<E, D> for LeNet5<E, D> where … {
///     type In = S3<1, 28, 28>;
///     type Out = S1<10>;
///     type Cache = LeNet5Cache<E, D>;
///     const FLOPS: usize = …;
///     fn cache(&self) -> … { self.__cache() }
///     fn forward(&self, x, y, cache) -> … { self.__forward_eval(x, y, cache) }
///     fn forward_train(&mut self, x, y, cache, ctx) -> … { self.__forward_train(x, y, cache, ctx) }
///     fn backward(&self, x, _y, cache, dy, dx, grads, gacc) -> … { self.__backward(x, dy, dx, cache, grads, gacc) }
/// }
/// ```
fn layer_impl(cx: &Cx) -> TokenStream {
    let ga = &cx.ga;
    let gp = &cx.gp;
    let (net, k, name, cache_name, bounds) =
        (cx.net, cx.k, &cx.net.name, &cx.cache_name, &cx.bounds);
    // A network reading token ids is not a `Layer` (whose input is a float
    // tensor); it is called through its inherent methods.
    if net.outputs.len() != 1 || net.inputs.iter().any(|i| i.vocab.is_some()) {
        return TokenStream::new();
    }
    if net.inputs.len() == 2 {
        return layer2_impl(cx);
    }
    if net.inputs.len() != 1 {
        return TokenStream::new();
    }
    let (it, ot) = (&cx.in_ty[0], &cx.out_ty[0]);
    let flops = node_flops(cx);
    quote! {
        impl<E: #k::Elem, D: #k::Backend<E> #gp> #k::Layer<E, D> for #name<E, D #ga> #bounds {
            type In = #it;
            type Out = #ot;
            type Cache = #cache_name<E, D #ga>;
            const FLOPS: usize = 0 #(+ #flops)*;
            fn cache(&self) -> #k::Result<Self::Cache> {
                self.__cache()
            }
            fn forward(&self, x: &#k::Tensor<#it, E, D>, y: &mut #k::Tensor<#ot, E, D>, cache: &mut Self::Cache) -> #k::Result<()> {
                self.__forward_eval(x, y, cache)
            }
            fn forward_train(
                &mut self,
                x: &#k::Tensor<#it, E, D>,
                y: &mut #k::Tensor<#ot, E, D>,
                cache: &mut Self::Cache,
                ctx: &mut #k::TrainCtx,
            ) -> #k::Result<()> {
                self.__forward_train(x, y, cache, ctx)
            }
            fn backward(
                &self,
                x: &#k::Tensor<#it, E, D>,
                _y: &#k::Tensor<#ot, E, D>,
                cache: &mut Self::Cache,
                dy: &#k::Tensor<#ot, E, D>,
                dx: ::core::option::Option<(&mut #k::Tensor<#it, E, D>, #k::Acc)>,
                grads: &mut Self::Grads,
                gacc: #k::Acc,
            ) -> #k::Result<()> {
                self.__backward(x, dy, dx, cache, grads, gacc)
            }
        }
    }
}

/// A network of two float inputs and one output is a [`Layer2`]
/// (`kiln::Layer2`), so that another network nests it with its second input
/// named: `dec: Decoder(memory) -> [T, D]`.
///
/// ```text
/// impl<E, D> Layer2<E, D> for Decoder<E, D> where … { type In = …; type In2 = …; … }
/// ```
fn layer2_impl(cx: &Cx) -> TokenStream {
    let ga = &cx.ga;
    let gp = &cx.gp;
    let (k, name, cache_name, bounds) = (cx.k, &cx.net.name, &cx.cache_name, &cx.bounds);
    let (it, it2, ot) = (&cx.in_ty[0], &cx.in_ty[1], &cx.out_ty[0]);
    let flops = node_flops(cx);
    quote! {
        impl<E: #k::Elem, D: #k::Backend<E> #gp> #k::Layer2<E, D> for #name<E, D #ga> #bounds {
            type In = #it;
            type In2 = #it2;
            type Out = #ot;
            type Cache = #cache_name<E, D #ga>;
            const FLOPS: usize = 0 #(+ #flops)*;
            fn cache(&self) -> #k::Result<Self::Cache> {
                self.__cache()
            }
            fn forward(&self, x: &#k::Tensor<#it, E, D>, x2: &#k::Tensor<#it2, E, D>, y: &mut #k::Tensor<#ot, E, D>, cache: &mut Self::Cache) -> #k::Result<()> {
                self.__forward_eval(x, x2, y, cache)
            }
            fn forward_train(
                &mut self,
                x: &#k::Tensor<#it, E, D>,
                x2: &#k::Tensor<#it2, E, D>,
                y: &mut #k::Tensor<#ot, E, D>,
                cache: &mut Self::Cache,
                ctx: &mut #k::TrainCtx,
            ) -> #k::Result<()> {
                self.__forward_train(x, x2, y, cache, ctx)
            }
            fn backward(
                &self,
                x: &#k::Tensor<#it, E, D>,
                x2: &#k::Tensor<#it2, E, D>,
                _y: &#k::Tensor<#ot, E, D>,
                cache: &mut Self::Cache,
                dy: &#k::Tensor<#ot, E, D>,
                dx: ::core::option::Option<(&mut #k::Tensor<#it, E, D>, #k::Acc)>,
                dx2: ::core::option::Option<(&mut #k::Tensor<#it2, E, D>, #k::Acc)>,
                grads: &mut Self::Grads,
                gacc: #k::Acc,
            ) -> #k::Result<()> {
                self.__backward(x, x2, dy, dx, dx2, cache, grads, gacc)
            }
        }
    }
}

/// Items a kind emits next to the network for each application of its
/// layer ([`crate::kinds::Rule::items`]): for a nested network, the
/// function whose body checks its wiring.
///
/// ```text
/// const _: () = { fn __kiln_shape_check<E, D>(l: &Block<E, D>, x: &Tensor<S1<32>, E, D>, …) -> Result<()> { Layer::forward(l, x, y, c) } };
/// ```
fn kind_items(cx: &Cx) -> TokenStream {
    let net = cx.net;
    net.nodes
        .iter()
        .enumerate()
        .filter_map(|(j, n)| match n.op {
            Op::Layer(li) => Some(respan(
                net.layers[li].kind.items(&cx.call(j, li, false)),
                n.span,
            )),
            _ => None,
        })
        .collect()
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
