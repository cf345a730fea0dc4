//! The passes: the cache of a fresh tape, the forward pass (training and evaluation) and the backward pass, node by node.

use super::*;

/// The empty cache: every buffer empty (sized on first use), every layer's
/// cache from `Layer::cache`.
///
/// ```text
/// fn __cache(&self) -> Result<LeNet5Cache<E, D>> {
///     Ok(LeNet5Cache { conv1_out: Tensor::empty(&self.device)?, conv1_cache: Layer::<E, D>::cache(&self.conv1)?, …, detect: false, _p: PhantomData })
/// }
/// ```
pub(super) fn new_cache(cx: &Cx) -> TokenStream {
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
pub(super) fn forward(cx: &Cx, train: bool) -> TokenStream {
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
            // The activation of a fused pair: done by the layer before it.
            Op::Layer(_) if j > 0 && cx.fused[j - 1] => {}
            Op::Layer(li) if cx.fused[j] => {
                let call = cx.call(j, li, train);
                let (act, act_y) = cx.fused_act(j);
                let fused = net.layers[li].kind.fused_forward(&call, &act, &act_y);
                body.push(respan(
                    fused.unwrap_or_else(|| quote!(::core::compile_error!("kiln internal error: a kind that fuses an activation gave no fused call"))),
                    span,
                ));
            }
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
pub(super) fn backward(cx: &Cx) -> TokenStream {
    let ga = &cx.ga;
    let k = cx.k;
    let (grads_name, cache_name) = (&cx.grads_name, &cx.cache_name);
    let (in_full, out_ty, in_args, d_args) = (&cx.in_full, &cx.out_ty, &cx.in_args, &cx.d_args);
    let din_args = &cx.din_args;
    // Token inputs have no gradient, hence no `din_*` parameter.
    let floats = cx.float_in();
    let din_params: Vec<_> = floats.iter().map(|&i| &din_args[i]).collect();
    let din_tys: Vec<_> = floats.iter().map(|&i| &in_full[i]).collect();
    let bwd = backward_stmts(cx, false);
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

/// The statements of the backward pass (see [`backward`]), reading `in_*`,
/// `d_*`, writing `din_*` and the cache `c`. With `input_only`, each layer
/// is called through its kind's [`crate::kinds::Rule::backward_input`]
/// (`mode` in scope, no parameter gradient: the nested network's
/// `InputGrad`, see `input_grad::input_grad_impl`); otherwise through
/// `Rule::backward` with the gradients `g` and `gacc`.
pub(super) fn backward_stmts(cx: &Cx, input_only: bool) -> Vec<TokenStream> {
    let (net, k) = (cx.net, cx.k);
    let (d_args, din_args) = (&cx.d_args, &cx.din_args);
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
            // The layer of a fused pair: its backward ran with the
            // activation's, just before (its gradient buffer, checked above,
            // was written there).
            Op::Layer(_) if cx.fused[j] && !input_only => {}
            // The activation of a fused pair: the pair's backward, from the
            // gradient at the activation's output.
            Op::Layer(_) if j > 0 && cx.fused[j - 1] && !input_only => {
                let (lj, ln) = (j - 1, &net.nodes[j - 1]);
                let Op::Layer(li) = ln.op else {
                    unreachable!("a fused pair starts with a layer")
                };
                let mut call = cx.call(lj, li, false);
                // The layer's output has one reader, this activation: its
                // gradient is set here, once.
                seen.insert(Val::Node(lj));
                call.dx = dest(ln.args[0], &mut seen);
                call.dy = dy;
                let acc = if layer_seen.insert(li) {
                    quote!(gacc)
                } else {
                    quote!(#k::Acc::Add)
                };
                let f = &net.layers[li].field;
                (call.grads, call.gacc) = (quote!(&mut g.#f), acc);
                let (act, act_y) = cx.fused_act(lj);
                let g = &cx.names.grad[lj];
                let dpre = quote!(c.#g);
                let fused = net.layers[li]
                    .kind
                    .fused_backward(&call, &act, &act_y, &dpre);
                bwd.push(respan(
                    fused.unwrap_or_else(|| quote!(::core::compile_error!("kiln internal error: a kind that fuses an activation gave no fused call"))),
                    span,
                ));
            }
            Op::Layer(li) => {
                let l = &net.layers[li];
                let mut call = cx.call(j, li, false);
                call.dx = dest(n.args[0], &mut seen);
                call.extra_dx = n.args[1..].iter().map(|a| dest(*a, &mut seen)).collect();
                call.dy = dy;
                if input_only {
                    bwd.push(respan(l.kind.backward_input(&call), span));
                    continue;
                }
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
    bwd
}
