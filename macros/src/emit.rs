//! Code generation: rendering only. Every decision was made by the earlier
//! stages; this file turns the typed graph into Rust.
//!
//! For `pub struct Mlp { input: [784], fc1: Linear(256), relu, fc2: Linear(10) }`
//! the output is, in outline:
//!
//! ```text
//! pub struct Mlp<E = f32, D = Cpu> { pub fc1: Linear<E, D, 784, 256>, pub fc2: Linear<E, D, 256, 10>, device: D }
//! pub struct MlpGrads<E, D> { pub fc1: <Linear<…> as Module>::Grads, pub fc2: … }
//! pub struct MlpCache<E, D> { v0, c0, g0, v1, c1, g1, … }   // activations, layer caches, their gradients
//! pub struct MlpTape<E, D> { pub ctx, pub in_x, pub out_y, pub grad_x, pub input_grads, cache }
//! impl Mlp { init, forward, forward_with, forward_train, backward, summary, PARAMS, FLOPS, … }
//! impl Module for Mlp; impl Layer for Mlp (one input, one output); impl Build for Mlp
//! ```
//!
//! `forward_train` calls each node's layer in order; `backward` walks the nodes
//! in reverse, and a value read by several nodes receives `Acc::Set` from the
//! first contribution the backward pass makes and `Acc::Add` from the others.

use crate::ir::{Net, Op, Val};
use crate::kinds::{shape_ty, Kind};
use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use std::collections::HashSet;

/// `quote!` whose every token carries the user's location (see [`respan`]).
macro_rules! respan_q {
    ($span:expr=> $($t:tt)*) => {
        respan(quote!($($t)*), $span)
    };
}

pub fn emit(net: &Net) -> TokenStream {
    let k = &net.krate;
    let name = &net.name;
    let vis = &net.vis;
    let attrs = &net.attrs;
    let grads_name = format_ident!("{}Grads", name);
    let cache_name = format_ident!("{}Cache", name);
    let tape_name = format_ident!("{}Tape", name);
    let n_nodes = net.nodes.len();

    // ---- which nodes' gradients arrive directly from an output argument ----
    let direct: Vec<Option<usize>> = (0..n_nodes)
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

    // ---- types ----
    let in_ty: Vec<TokenStream> = net.inputs.iter().map(|i| shape_ty(k, &i.shape)).collect();
    let out_ty: Vec<TokenStream> = net
        .outputs
        .iter()
        .map(|o| shape_ty(k, net.shape(o.val)))
        .collect();
    let node_ty: Vec<TokenStream> = net.nodes.iter().map(|n| shape_ty(k, &n.shape)).collect();
    let tensor = |s: &TokenStream| quote!(#k::Tensor<#s, E, D>);

    // ---- the parameter struct ----
    let fields: Vec<_> = net.layers.iter().filter(|l| l.kind.has_state()).collect();
    let field_defs = fields.iter().map(|l| {
        let f = &l.field;
        let ty = &l.ty;
        let doc = format!(
            "`{}`: {} → {}{}",
            l.spec.text(),
            crate::diag::dims(&l.in_shape),
            crate::diag::dims(&l.out_shape),
            if l.uses.len() > 1 {
                format!(" (applied {} times, weights shared)", l.uses.len())
            } else {
                String::new()
            }
        );
        quote_spanned!(at(l.spec.span)=> #[doc = #doc] pub #f: #ty,)
    });
    let field_names: Vec<_> = fields.iter().map(|l| &l.field).collect();
    let field_strs: Vec<String> = fields.iter().map(|l| l.field.to_string()).collect();
    let field_tys: Vec<_> = fields.iter().map(|l| &l.ty).collect();
    let field_cfgs: Vec<_> = fields.iter().map(|l| l.kind.config(k)).collect();

    // ---- the cache: activations, per-node layer caches, gradients ----
    let needs_grad = |j: usize| direct[j].is_none();
    let mut cache_defs = Vec::new();
    let mut cache_inits = Vec::new();
    for (j, n) in net.nodes.iter().enumerate() {
        let v = format_ident!("v{}", j);
        let t = tensor(&node_ty[j]);
        cache_defs.push(quote!(#v: #t,));
        cache_inits.push(quote!(#v: #k::Tensor::empty(&self.device)?,));
        if let Some(li) = match n.op {
            Op::Layer(li) if unpool_pool(net, li).is_none() => Some(li),
            _ => None,
        } {
            let c = format_ident!("c{}", j);
            let lty = &net.layers[li].ty;
            cache_defs.push(quote!(#c: <#lty as #k::Layer<E, D>>::Cache,));
            let inst = layer_ref(net, li, false);
            cache_inits.push(quote!(#c: #k::Layer::<E, D>::cache(#inst)?,));
        }
        if needs_grad(j) {
            let g = format_ident!("g{}", j);
            cache_defs.push(quote!(#g: #t,));
            cache_inits.push(quote!(#g: #k::Tensor::empty(&self.device)?,));
        }
    }

    // ---- forward (train and eval) ----
    let in_args: Vec<_> = net
        .inputs
        .iter()
        .map(|i| format_ident!("in_{}", i.name, span = proc_macro2::Span::call_site()))
        .collect();
    let out_args: Vec<_> = net
        .outputs
        .iter()
        .map(|o| format_ident!("out_{}", o.name, span = proc_macro2::Span::call_site()))
        .collect();
    let d_args: Vec<_> = net
        .outputs
        .iter()
        .map(|o| format_ident!("d_{}", o.name, span = proc_macro2::Span::call_site()))
        .collect();
    let din_args: Vec<_> = net
        .inputs
        .iter()
        .map(|i| format_ident!("din_{}", i.name, span = proc_macro2::Span::call_site()))
        .collect();
    let val_ref = |v: Val| -> TokenStream {
        match v {
            Val::In(i) => {
                let a = &in_args[i];
                quote!(#a)
            }
            Val::Node(j) => {
                let f = format_ident!("v{}", j);
                quote!(&c.#f)
            }
        }
    };
    let fwd = |train: bool| -> Vec<TokenStream> {
        let mut body = Vec::new();
        for (j, n) in net.nodes.iter().enumerate() {
            let v = format_ident!("v{}", j);
            let span = n.span;
            match n.op {
                Op::Layer(li) if unpool_pool(net, li).is_some() => {
                    let x = val_ref(n.args[0]);
                    let cp = format_ident!("c{}", unpool_pool(net, li).unwrap_or_default());
                    let f = &net.layers[li].field;
                    body.push(respan_q!(span=> self.#f.forward(#x, &c.#cp, &mut c.#v)?;));
                }
                Op::Layer(li) if matches!(net.layers[li].kind, Kind::Subnet { .. }) => {
                    let x = val_ref(n.args[0]);
                    let cj = format_ident!("c{}", j);
                    let inst = layer_ref(net, li, train);
                    let (si, so) = (shape_ty(k, net.shape(n.args[0])), &node_ty[j]);
                    let lty = &net.layers[li].ty;
                    if train {
                        body.push(respan_q!(span=> #k::ops::subnet::forward_train::<#lty, #si, #so, E, D>(#inst, #x, &mut c.#v, &mut c.#cj, ctx)?;));
                    } else {
                        body.push(respan_q!(span=> #k::ops::subnet::forward::<#lty, #si, #so, E, D>(#inst, #x, &mut c.#v, &mut c.#cj)?;));
                    }
                }
                Op::Layer(li) => {
                    let x = val_ref(n.args[0]);
                    let cj = format_ident!("c{}", j);
                    let inst = layer_ref(net, li, train);
                    if train {
                        body.push(respan_q!(span=> #k::Layer::<E, D>::forward_train(#inst, #x, &mut c.#v, &mut c.#cj, ctx)?;));
                    } else {
                        body.push(respan_q!(span=> #k::Layer::<E, D>::forward(#inst, #x, &mut c.#v, &mut c.#cj)?;));
                    }
                }
                Op::Add => {
                    let (a, b) = (val_ref(n.args[0]), val_ref(n.args[1]));
                    body.push(respan_q!(span=> #k::ops::add_fwd(#a, #b, &mut c.#v)?;));
                }
                Op::Concat => {
                    let first = val_ref(n.args[0]);
                    body.push(respan_q!(span=> #k::ops::concat_begin(&mut c.#v, #k::Tensor::batch(#first))?;));
                    let mut off = 0usize;
                    for &a in &n.args {
                        let r = val_ref(a);
                        body.push(respan_q!(span=> #k::ops::concat_fwd(#r, &mut c.#v, #off)?;));
                        off += net.shape(a).iter().product::<usize>();
                    }
                }
            }
        }
        for (o, out) in net.outputs.iter().enumerate() {
            let dst = &out_args[o];
            let src = val_ref(out.val);
            body.push(quote!(#k::Tensor::assign(#dst, #src)?;));
        }
        if train {
            // Anomaly detection after each node, in order: the first failure
            // names the layer where a non-finite value first appeared.
            let mut checked = Vec::with_capacity(body.len() + n_nodes + 1);
            checked.push(quote!(c.detect = ctx.detect_anomaly;));
            let mut it = body.into_iter();
            for (j, n) in net.nodes.iter().enumerate() {
                let stmts = if let Op::Concat = n.op {
                    1 + n.args.len()
                } else {
                    1
                };
                checked.extend(it.by_ref().take(stmts));
                let v = format_ident!("v{}", j);
                let label = &n.label;
                checked.push(quote!(if ctx.detect_anomaly { #k::ops::check_finite(&c.#v, #label, "forward output")?; }));
            }
            checked.extend(it);
            checked
        } else {
            body
        }
    };
    let fwd_train = fwd(true);
    let fwd_eval = fwd(false);

    // ---- backward ----
    let mut bwd = Vec::new();
    let mut seen: HashSet<Val> = HashSet::new();
    let mut layer_seen: HashSet<usize> = HashSet::new();
    // A gradient destination for value `v`, first contribution or not.
    let dest = |v: Val, seen: &mut HashSet<Val>| -> (TokenStream, bool) {
        let first = seen.insert(v);
        match v {
            Val::In(i) => {
                let d = &din_args[i];
                (quote!(#k::ops::reborrow(&mut #d, #first)), first)
            }
            Val::Node(j) => {
                let g = format_ident!("g{}", j);
                let acc = if first {
                    quote!(#k::Acc::Set)
                } else {
                    quote!(#k::Acc::Add)
                };
                (
                    quote!(::core::option::Option::Some((&mut c.#g, #acc))),
                    first,
                )
            }
        }
    };
    for (o, out) in net.outputs.iter().enumerate() {
        if let Val::Node(j) = out.val {
            if direct[j].is_some() {
                continue;
            }
        }
        let d = &d_args[o];
        let (dst, _) = dest(out.val, &mut seen);
        bwd.push(quote!(#k::ops::pass_grad_to(#d, #dst)?;));
    }
    for j in (0..n_nodes).rev() {
        let n = &net.nodes[j];
        let span = n.span;
        let vj = format_ident!("v{}", j);
        let dy = match direct[j] {
            Some(o) => {
                let d = &d_args[o];
                quote!(#d)
            }
            None => {
                let g = format_ident!("g{}", j);
                quote!(&c.#g)
            }
        };
        let label = &n.label;
        bwd.push(quote!(if c.detect { #k::ops::check_finite(#dy, #label, "backward: gradient arriving at the output")?; }));
        match n.op {
            Op::Layer(li) if unpool_pool(net, li).is_some() => {
                let (dx, _) = dest(n.args[0], &mut seen);
                let cp = format_ident!("c{}", unpool_pool(net, li).unwrap_or_default());
                let f = &net.layers[li].field;
                bwd.push(respan_q!(span=> if let ::core::option::Option::Some((dx, acc)) = #dx { self.#f.backward(&c.#cp, #dy, dx, acc)?; }));
            }
            Op::Layer(li) => {
                let x = val_ref(n.args[0]);
                let (dx, _) = dest(n.args[0], &mut seen);
                let cj = format_ident!("c{}", j);
                let inst = layer_ref(net, li, false);
                let l = &net.layers[li];
                let (grads, gacc) = if l.kind.has_state() {
                    let f = &l.field;
                    let first = layer_seen.insert(li);
                    let acc = if first {
                        quote!(gacc)
                    } else {
                        quote!(#k::Acc::Add)
                    };
                    (quote!(&mut g.#f), acc)
                } else {
                    (quote!(&mut ()), quote!(#k::Acc::Set))
                };
                if let Kind::Subnet { .. } = l.kind {
                    let (si, so) = (shape_ty(k, net.shape(n.args[0])), &node_ty[j]);
                    let lty = &l.ty;
                    bwd.push(respan_q!(span=> #k::ops::subnet::backward::<#lty, #si, #so, E, D>(#inst, #x, &c.#vj, &mut c.#cj, #dy, #dx, #grads, #gacc)?;));
                } else {
                    bwd.push(respan_q!(span=> #k::Layer::<E, D>::backward(#inst, #x, &c.#vj, &mut c.#cj, #dy, #dx, #grads, #gacc)?;));
                }
            }
            Op::Add => {
                for &a in &n.args {
                    let (dst, _) = dest(a, &mut seen);
                    bwd.push(respan_q!(span=> #k::ops::pass_grad_to(#dy, #dst)?;));
                }
            }
            Op::Concat => {
                let mut off = 0usize;
                for &a in &n.args {
                    let (dst, _) = dest(a, &mut seen);
                    bwd.push(respan_q!(span=> #k::ops::concat_bwd_to(#dy, #off, #dst)?;));
                    off += net.shape(a).iter().product::<usize>();
                }
            }
        }
    }

    // ---- one shape check per use of a network from another invocation ----
    // (E0308 at the layer, naming both shapes, if the wiring is wrong)
    let subnet_checks: Vec<TokenStream> = net
        .nodes
        .iter()
        .enumerate()
        .filter_map(|(j, n)| match n.op {
            Op::Layer(li) if matches!(net.layers[li].kind, Kind::Subnet { .. }) => {
                let lty = &net.layers[li].ty;
                let si = shape_ty(k, net.shape(n.args[0]));
                let so = &node_ty[j];
                Some(respan_q!(n.span=>
                    const _: () = {
                        #[allow(dead_code, clippy::all)]
                        fn __kiln_shape_check<E: #k::Elem, D: #k::Kernels<E>>(
                            l: &#lty,
                            x: &#k::Tensor<#si, E, D>,
                            y: &mut #k::Tensor<#so, E, D>,
                            c: &mut <#lty as #k::Layer<E, D>>::Cache,
                        ) -> #k::Result<()> {
                            #k::Layer::<E, D>::forward(l, x, y, c)
                        }
                    };
                ))
            }
            _ => None,
        })
        .collect();

    // ---- constants ----
    let params: Vec<TokenStream> = fields
        .iter()
        .map(|l| l.kind.params(&l.in_shape, &l.out_shape, &l.ty))
        .collect();
    let flops: Vec<TokenStream> = net
        .nodes
        .iter()
        .map(|n| match n.op {
            Op::Layer(li) if unpool_pool(net, li).is_some() => {
                let ty = &net.layers[li].ty;
                quote!(<#ty>::FLOPS)
            }
            Op::Layer(li) => {
                let ty = &net.layers[li].ty;
                quote!(<#ty as #k::Layer<E, D>>::FLOPS)
            }
            Op::Add => {
                let s: usize = n.shape.iter().product();
                quote!(#s)
            }
            Op::Concat => quote!(0usize),
        })
        .collect();
    let rows = net.nodes.iter().enumerate().map(|(j, n)| {
        let (nm, layer, params) = match n.op {
            Op::Layer(li) => {
                let l = &net.layers[li];
                let nm = if l.kind.has_state() { l.field.to_string() } else { n.binding.clone().unwrap_or_else(|| l.field.to_string()) };
                let p = if l.kind.has_state() && l.uses.first() == Some(&j) { l.kind.params(&l.in_shape, &l.out_shape, &l.ty) } else { quote!(0usize) };
                (nm, l.spec.text(), p)
            }
            _ => (n.binding.clone().unwrap_or_default(), n.label.clone(), quote!(0usize)),
        };
        let out = &n.shape;
        let fl = &flops[j];
        quote!(#k::summary::Row { name: #nm, layer: #layer, out: &[#(#out),*], params: #params, flops: #fl },)
    });
    let in_dims = net.inputs.iter().map(|i| {
        let d = &i.shape;
        quote!(&[#(#d),*])
    });
    let out_dims = net.outputs.iter().map(|o| {
        let d = net.shape(o.val);
        quote!(&[#(#d),*])
    });
    let title = name.to_string();

    // ---- the user-facing API ----
    let in_names: Vec<_> = net
        .inputs
        .iter()
        .map(|i| format_ident!("in_{}", i.name, span = proc_macro2::Span::call_site()))
        .collect();
    let out_names: Vec<_> = net
        .outputs
        .iter()
        .map(|o| format_ident!("out_{}", o.name, span = proc_macro2::Span::call_site()))
        .collect();
    let grad_names: Vec<_> = net
        .inputs
        .iter()
        .map(|i| format_ident!("grad_{}", i.name, span = proc_macro2::Span::call_site()))
        .collect();
    let in_docs: Vec<String> = net
        .inputs
        .iter()
        .map(|i| {
            format!(
                "A copy of input `{}` ({}), kept for the backward pass.",
                i.name,
                crate::diag::dims(&i.shape)
            )
        })
        .collect();
    let out_docs: Vec<String> = net
        .outputs
        .iter()
        .map(|o| {
            format!(
                "Output `{}` ({}).",
                o.name,
                crate::diag::dims(net.shape(o.val))
            )
        })
        .collect();
    let grad_docs: Vec<String> = net
        .inputs
        .iter()
        .map(|i| {
            format!(
                "∂L/∂`{}`, filled by `backward` when `input_grads` is set.",
                i.name
            )
        })
        .collect();
    let user_in: Vec<_> = net
        .inputs
        .iter()
        .map(|i| format_ident!("{}", i.name, span = proc_macro2::Span::call_site()))
        .collect();
    let user_d: Vec<_> = net
        .outputs
        .iter()
        .map(|o| format_ident!("d_{}", o.name, span = proc_macro2::Span::call_site()))
        .collect();
    let (ret_ty, ret_refs, ret_owned, ret_owned_ty) = if net.outputs.len() == 1 {
        let t = tensor(&out_ty[0]);
        let o = &out_names[0];
        (quote!(&'t #t), quote!(&tape.#o), quote!(outs.0), t)
    } else {
        let ts: Vec<_> = out_ty.iter().map(|s| tensor(s)).collect();
        let idx = (0..net.outputs.len()).map(syn::Index::from);
        (
            quote!((#(&'t #ts),*)),
            quote!((#(&tape.#out_names),*)),
            quote!((#(outs.#idx),*)),
            quote!((#(#ts),*)),
        )
    };
    let first_in = &user_in[0];
    let batch_checks = user_in.iter().skip(1).map(|u| {
        let s = u.to_string();
        let f = first_in.to_string();
        quote!(#k::error::check_batch("forward", #f, #k::Tensor::batch(#first_in), #s, #k::Tensor::batch(#u))?;)
    });
    let batch_checks: Vec<TokenStream> = batch_checks.collect();
    let batch_checks2 = &batch_checks;
    let d_checks = user_d.iter().zip(&out_names).map(|(d, o)| {
        let ds = d.to_string();
        quote!(#k::error::check_batch("backward", #ds, #k::Tensor::batch(#d), "forward_train's output", #k::Tensor::batch(&tape.#o))?;)
    });
    let empty_outs = out_ty
        .iter()
        .map(|_| quote!(#k::Tensor::empty(&self.device)?));
    let outs_tuple_idx: Vec<_> = (0..net.outputs.len()).map(syn::Index::from).collect();

    let layer_impl = if net.inputs.len() == 1 && net.outputs.len() == 1 {
        let (it, ot) = (&in_ty[0], &out_ty[0]);
        quote! {
            impl<E: #k::Elem, D: #k::Kernels<E>> #k::Layer<E, D> for #name<E, D> {
                type In = #it;
                type Out = #ot;
                type Cache = #cache_name<E, D>;
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
    } else {
        quote!()
    };

    let struct_doc = format!(
        "\n\nGenerated by `network!`: inputs {}, outputs {}. See [`{}::summary`] for the layer table.",
        net.inputs.iter().map(|i| format!("`{}` {}", i.name, crate::diag::dims(&i.shape))).collect::<Vec<_>>().join(", "),
        net.outputs.iter().map(|o| format!("`{}` {}", o.name, crate::diag::dims(net.shape(o.val)))).collect::<Vec<_>>().join(", "),
        name
    );
    let grads_doc = format!("Gradients of every parameter of [`{name}`], reused every step.");
    let tape_doc = format!("Everything a training step of [`{name}`] keeps between `forward_train` and `backward`, allocated on the first step and reused.");
    let cache_doc = format!("Activations and per-layer caches of [`{name}`].");

    quote! {
        #(#attrs)*
        #[doc = #struct_doc]
        #vis struct #name<E: #k::Elem = f32, D: #k::Kernels<E> = #k::Cpu> {
            #(#field_defs)*
            device: D,
            _elem: ::core::marker::PhantomData<E>,
        }

        #[doc = #grads_doc]
        #vis struct #grads_name<E: #k::Elem, D: #k::Kernels<E>> {
            #( #[allow(missing_docs)] pub #field_names: <#field_tys as #k::Module<E, D>>::Grads, )*
            _p: ::core::marker::PhantomData<(E, D)>,
        }

        #[doc = #cache_doc]
        #[allow(non_snake_case)]
        #vis struct #cache_name<E: #k::Elem, D: #k::Kernels<E>> {
            #(#cache_defs)*
            /// Anomaly detection was on in the forward pass; check the backward too.
            detect: bool,
            _p: ::core::marker::PhantomData<(E, D)>,
        }

        #[doc = #tape_doc]
        #vis struct #tape_name<E: #k::Elem, D: #k::Kernels<E>> {
            /// The random source of stochastic layers (dropout), seeded.
            pub ctx: #k::TrainCtx,
            #( #[doc = #in_docs] pub #in_names: #k::Tensor<#in_ty, E, D>, )*
            #( #[doc = #out_docs] pub #out_names: #k::Tensor<#out_ty, E, D>, )*
            #( #[doc = #grad_docs] pub #grad_names: #k::Tensor<#in_ty, E, D>, )*
            /// Whether `backward` computes the gradients with respect to the inputs (saliency maps, GANs).
            pub input_grads: bool,
            cache: #cache_name<E, D>,
        }

        #[allow(clippy::too_many_arguments, clippy::needless_question_mark, unused_mut, unused_variables)]
        impl<E: #k::Elem, D: #k::Kernels<E>> #name<E, D> {
            /// Trainable parameters.
            pub const PARAMS: usize = 0 #(+ #params)*;
            /// Multiply–adds per sample of the forward pass.
            pub const FLOPS: usize = 0 #(+ #flops)*;
            /// Per-sample shapes of the inputs, in declaration order.
            pub const INPUTS: &'static [&'static [usize]] = &[#(#in_dims),*];
            /// Per-sample shapes of the outputs, in declaration order.
            pub const OUTPUTS: &'static [&'static [usize]] = &[#(#out_dims),*];
            #[doc(hidden)]
            pub const __ROWS: &'static [#k::summary::Row] = &[#(#rows)*];

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
            /// A printable table of the layers, their output shapes, parameters and multiply–adds.
            pub fn summary() -> ::std::string::String {
                #k::summary::table(#title, Self::INPUTS, Self::__ROWS)
            }
            /// Zeroed gradients, to be created once and reused.
            pub fn grads(&self) -> #k::Result<#grads_name<E, D>> {
                #k::Module::<E, D>::grads(self)
            }
            /// A tape (activation buffers, reused every step) whose random source is seeded with 0.
            pub fn tape(&self) -> #k::Result<#tape_name<E, D>> {
                self.tape_seeded(0)
            }
            /// A tape whose random source is seeded with `seed`.
            pub fn tape_seeded(&self, seed: u64) -> #k::Result<#tape_name<E, D>> {
                Ok(#tape_name {
                    ctx: #k::TrainCtx::new(seed),
                    #( #in_names: #k::Tensor::empty(&self.device)?, )*
                    #( #out_names: #k::Tensor::empty(&self.device)?, )*
                    #( #grad_names: #k::Tensor::empty(&self.device)?, )*
                    input_grads: false,
                    cache: self.__cache()?,
                })
            }
            /// Inference (evaluation mode) into new tensors. Allocates; for a
            /// loop use [`Self::forward_with`].
            pub fn forward(&self, #(#user_in: &#k::Tensor<#in_ty, E, D>),*) -> #k::Result<#ret_owned_ty> {
                #(#batch_checks2)*
                let mut c = self.__cache()?;
                let mut outs = (#(#empty_outs,)*);
                self.__forward_eval(#(#user_in,)* #(&mut outs.#outs_tuple_idx,)* &mut c)?;
                Ok(#ret_owned)
            }
            /// Inference (evaluation mode) reusing `tape`'s buffers.
            pub fn forward_with<'t>(&self, #(#user_in: &#k::Tensor<#in_ty, E, D>,)* tape: &'t mut #tape_name<E, D>) -> #k::Result<#ret_ty> {
                #(#batch_checks2)*
                self.__forward_eval(#(#user_in,)* #(&mut tape.#out_names,)* &mut tape.cache)?;
                Ok(#ret_refs)
            }
            /// Training-mode forward pass: copies the inputs into `tape`, keeps
            /// every activation the backward pass needs, returns the outputs.
            pub fn forward_train<'t>(&mut self, #(#user_in: &#k::Tensor<#in_ty, E, D>,)* tape: &'t mut #tape_name<E, D>) -> #k::Result<#ret_ty> {
                #(#batch_checks2)*
                #( #k::Tensor::assign(&mut tape.#in_names, #user_in)?; )*
                self.__forward_train(#(&tape.#in_names,)* #(&mut tape.#out_names,)* &mut tape.cache, &mut tape.ctx)?;
                Ok(#ret_refs)
            }
            /// The backward pass of the last `forward_train`: from the gradients
            /// of the loss with respect to the outputs, writes every parameter
            /// gradient into `grads` (overwriting) and, when `tape.input_grads`
            /// is set, the input gradients into `tape.grad_*`.
            pub fn backward(&self, tape: &mut #tape_name<E, D>, #(#user_d: &#k::Tensor<#out_ty, E, D>,)* grads: &mut #grads_name<E, D>) -> #k::Result<()> {
                #(#d_checks)*
                let want = tape.input_grads;
                self.__backward(
                    #(&tape.#in_names,)*
                    #(#user_d,)*
                    #( if want { ::core::option::Option::Some((&mut tape.#grad_names, #k::Acc::Set)) } else { ::core::option::Option::None }, )*
                    &mut tape.cache,
                    grads,
                    #k::Acc::Set,
                )
            }

            fn __cache(&self) -> #k::Result<#cache_name<E, D>> {
                Ok(#cache_name { #(#cache_inits)* detect: false, _p: ::core::marker::PhantomData })
            }
            fn __forward_train(
                &mut self,
                #(#in_args: &#k::Tensor<#in_ty, E, D>,)*
                #(#out_args: &mut #k::Tensor<#out_ty, E, D>,)*
                c: &mut #cache_name<E, D>,
                ctx: &mut #k::TrainCtx,
            ) -> #k::Result<()> {
                #(#fwd_train)*
                Ok(())
            }
            fn __forward_eval(
                &self,
                #(#in_args: &#k::Tensor<#in_ty, E, D>,)*
                #(#out_args: &mut #k::Tensor<#out_ty, E, D>,)*
                c: &mut #cache_name<E, D>,
            ) -> #k::Result<()> {
                #(#fwd_eval)*
                Ok(())
            }
            fn __backward(
                &self,
                #(#in_args: &#k::Tensor<#in_ty, E, D>,)*
                #(#d_args: &#k::Tensor<#out_ty, E, D>,)*
                #(mut #din_args: ::core::option::Option<(&mut #k::Tensor<#in_ty, E, D>, #k::Acc)>,)*
                c: &mut #cache_name<E, D>,
                g: &mut #grads_name<E, D>,
                gacc: #k::Acc,
            ) -> #k::Result<()> {
                #(#bwd)*
                Ok(())
            }
        }

        impl<E: #k::Elem, D: #k::Kernels<E>> #k::Module<E, D> for #name<E, D> {
            type Grads = #grads_name<E, D>;
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

        impl<E: #k::Elem, D: #k::Kernels<E>> #k::Build<E, D> for #name<E, D> {
            type Config = ();
            fn build(dev: &D, rng: &mut #k::Rng, _: ()) -> #k::Result<Self> {
                Self::init(dev, rng)
            }
        }

        #layer_impl

        #(#subnet_checks)*
    }
}

/// For a `MaxUnpool2d` layer, the node of the `MaxPool2d` it is paired with.
fn unpool_pool(net: &Net, li: usize) -> Option<usize> {
    match &net.layers[li].kind {
        Kind::Image(crate::image::ImageKind::MaxUnpool2d { pool }) => net
            .layers
            .iter()
            .find(|l| l.field == *pool)
            .and_then(|l| l.uses.first().copied()),
        _ => None,
    }
}

/// `&self.field` / `&mut self.field` for layers with state, or a fresh
/// stateless layer built in place.
fn layer_ref(net: &Net, li: usize, mutable: bool) -> TokenStream {
    let l = &net.layers[li];
    if l.kind.has_state() {
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
fn at(span: proc_macro2::Span) -> proc_macro2::Span {
    proc_macro2::Span::call_site().located_at(span)
}

/// Gives every token of `ts` (arguments included) the user's location, so
/// rustc's type errors on a generated call underline the layer that is wrong.
fn respan(ts: TokenStream, span: proc_macro2::Span) -> TokenStream {
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
