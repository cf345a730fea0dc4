//! The inherent API of a generated network: constants, `init`, `tape`, `forward`, `forward_with`, `forward_train`, `backward`, and the facts (`PARAMS`, `FLOPS`, `summary`) of its concrete type.

use super::*;

/// The tape's public fields: `in_x`, `out_y`, `grad_x`.
pub(super) fn api_names(cx: &Cx) -> (Vec<Ident>, Vec<Ident>, Vec<Ident>) {
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
pub(super) fn inherent_impl(cx: &Cx) -> TokenStream {
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
pub(super) fn node_flops(cx: &Cx) -> Vec<TokenStream> {
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
pub(super) fn consts(cx: &Cx) -> TokenStream {
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
pub(super) fn facts_impl(cx: &Cx) -> TokenStream {
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
pub(super) fn concrete(tokens: TokenStream, k: &TokenStream) -> TokenStream {
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
pub(super) fn api(cx: &Cx) -> TokenStream {
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
        /// Inference (evaluation mode) reusing `tape`'s buffers. The inputs
        /// are copied into `tape` as by `forward_train`, so `backward_from`
        /// can follow (Grad-CAM, saliency on a trained network: batch norm
        /// with its running statistics).
        pub fn forward_with<'t>(&self, #(#user_in: &#in_full,)* tape: &'t mut #tape_name<E, D #ga>) -> #k::Result<#ret_ty> {
            #(#batch_checks2)*
            #( #in_paths::assign(&mut tape.#in_names, #user_in)?; )*
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
