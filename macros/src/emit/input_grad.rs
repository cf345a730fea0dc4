//! Gradients at any named node, without parameter gradients: the tape's
//! accessors by name ([`tape_access`]) and `backward_from`
//! ([`backward_from`]), the hooks of the visualisation tools and attacks
//! (`kiln::input_grad`).

use super::{Cx, Need};
use crate::ir::{Op, Val};
use proc_macro2::TokenStream;
use quote::quote;
use std::collections::HashSet;

/// Every node's name (its cache fields' stem: `conv1`, `relu2`) and every
/// float input's, as the tape's accessors and `backward_from` take them.
fn node_names(cx: &Cx) -> Vec<String> {
    cx.names.base.clone()
}

/// The float inputs' names and indices.
fn float_inputs(cx: &Cx) -> Vec<(usize, String)> {
    cx.float_in()
        .into_iter()
        .map(|i| (i, cx.net.inputs[i].name.to_string()))
        .collect()
}

/// The tape's accessors by name: every node's activation and gradient, and
/// every float input and its gradient, copied to the host.
///
/// ```text
/// impl<E: Elem, D: Backend<E>> LeNet5Tape<E, D> where … {
///     pub fn activation(&self, name: &str) -> Result<NodeData<E>> {
///         match name { "conv1" => NodeData::of("conv1", &self.cache.conv1_out), …, "x" => NodeData::of("x", &self.in_x), _ => Err(…) }
///     }
///     pub fn gradient(&self, name: &str) -> Result<NodeData<E>> { … conv1_grad …, "x" => … grad_x … }
/// }
/// ```
pub(super) fn tape_access(cx: &Cx) -> TokenStream {
    let (ga, gp, k) = (&cx.ga, &cx.gp, cx.k);
    let (tape_name, bounds) = (&cx.tape_name, &cx.cache_bounds);
    let net_name = cx.net.name.to_string();
    let names = node_names(cx);
    let inputs = float_inputs(cx);
    let outs = &cx.names.out;
    // Every node has a gradient buffer today; were one added without, the
    // network would get no accessors rather than a panicking macro.
    let Some(grads) = cx
        .names
        .grad
        .iter()
        .map(Option::as_ref)
        .collect::<Option<Vec<_>>>()
    else {
        return TokenStream::new();
    };
    let in_names: Vec<&String> = inputs.iter().map(|(_, n)| n).collect();
    let in_fields: Vec<_> = inputs.iter().map(|(i, _)| &cx.in_args[*i]).collect();
    let in_grads: Vec<_> = inputs
        .iter()
        .map(|(i, _)| quote::format_ident!("grad_{}", cx.net.inputs[*i].name))
        .collect();
    let known = names.iter().chain(in_names.iter().copied());
    let known2 = known.clone();
    quote! {
        impl<E: #k::Elem, D: #k::Backend<E> #gp> #tape_name<E, D #ga> #bounds {
            /// The activation of node `name` (a layer's field, `conv1`, or
            /// the generated name of an in-place layer, `relu2`) or of a
            /// float input, from the last forward pass, copied to the host.
            pub fn activation(&self, name: &str) -> #k::Result<#k::NodeData<E>> {
                match name {
                    #( #names => #k::NodeData::of(#names, &self.cache.#outs), )*
                    #( #in_names => #k::NodeData::of(#in_names, &self.#in_fields), )*
                    _ => Err(#k::input_grad::unknown_node("activation", #net_name, name, &[#(#known),*])),
                }
            }
            /// The gradient at node `name`'s output (or a float input) that
            /// the last `backward` or `backward_from` left, copied to the host.
            pub fn gradient(&self, name: &str) -> #k::Result<#k::NodeData<E>> {
                match name {
                    #( #names => #k::NodeData::of(#names, &self.cache.#grads), )*
                    #( #in_names => #k::NodeData::of(#in_names, &self.#in_grads), )*
                    _ => Err(#k::input_grad::unknown_node("gradient", #net_name, name, &[#(#known2),*])),
                }
            }
        }
    }
}

/// Whether every layer node can take part in an input-gradient pass (its
/// kind's [`crate::kinds::Rule::input_grad`], one argument), the graph is
/// not empty and no input holds token ids.
fn all_supported(cx: &Cx) -> bool {
    let net = cx.net;
    !net.nodes.is_empty()
        && net.inputs.iter().all(|i| i.vocab.is_none())
        && net.nodes.iter().all(|n| match n.op {
            Op::Layer(li) => net.layers[li].kind.input_grad() && n.args.len() == 1,
            _ => true,
        })
}

/// The `where` clause of an input-gradient impl: the passes' bounds, and
/// `InputGrad` on each layer type that [`crate::kinds::Rule::input_grad_bound`].
fn input_grad_bounds(cx: &Cx) -> (TokenStream, Vec<TokenStream>) {
    let (net, k) = (cx.net, cx.k);
    let base = super::layer_bounds(net, Need::All);
    let mut seen = HashSet::new();
    let extra = net
        .layers
        .iter()
        .filter(|l| !l.uses.is_empty() && l.kind.input_grad_bound())
        .map(|l| &l.ty)
        .filter(|ty| seen.insert(ty.to_string()))
        .map(|ty| quote!(#ty: #k::InputGrad<E, D>,))
        .collect();
    (base, extra)
}

/// `InputGrad` for a network of one float input and one output whose every
/// layer has it, so that it nests in another network that has
/// `backward_from` (a block of a ResNet, a decoder stage): the backward pass
/// of [`super::passes::backward`] with each layer called through its kind's
/// `backward_input`, no parameter gradient, in an impl whose `where` clause
/// asks `InputGrad` of every layer (as `backward_from`'s).
///
/// ```text
/// impl<E: Elem, D: Backend<E>> InputGrad<E, D> for Block<E, D> where …, Conv2d<…>: InputGrad<E, D>, … {
///     fn backward_input(&self, in_x, _y, c, d_y, mut din_x, mode) -> Result<()> {
///         InputGrad::<E, D>::backward_input(&self.c2, &c.relu1_out, &c.c2_out, &mut c.c2_cache, d_y, Some((&mut c.relu1_grad, Acc::Set)), mode)?;
///         …
///         InputGrad::<E, D>::backward_input(&self.c1, in_x, &c.c1_out, &mut c.c1_cache, &c.c1_grad, ops::reborrow(&mut din_x, true), mode)?;
///         Ok(())
///     }
/// }
/// ```
pub(super) fn input_grad_impl(cx: &Cx) -> TokenStream {
    let (ga, gp, k, net) = (&cx.ga, &cx.gp, cx.k, cx.net);
    if !all_supported(cx) || net.inputs.len() != 1 || net.outputs.len() != 1 {
        return TokenStream::new();
    }
    let (name, cache_name) = (&net.name, &cx.cache_name);
    let (base, extra) = input_grad_bounds(cx);
    let (it, ot) = (&cx.in_ty[0], &cx.out_ty[0]);
    let (in_x, d_y, din_x) = (&cx.in_args[0], &cx.d_args[0], &cx.din_args[0]);
    let body = super::passes::backward_stmts(cx, true);
    quote! {
        #[allow(clippy::too_many_arguments, unused_mut, unused_variables, clippy::needless_question_mark)]
        impl<E: #k::Elem, D: #k::Backend<E> #gp> #k::InputGrad<E, D> for #name<E, D #ga> #base #(#extra)* {
            fn backward_input(
                &self,
                #in_x: &#k::Tensor<#it, E, D>,
                _y: &#k::Tensor<#ot, E, D>,
                c: &mut #cache_name<E, D #ga>,
                #d_y: &#k::Tensor<#ot, E, D>,
                mut #din_x: ::core::option::Option<(&mut #k::Tensor<#it, E, D>, #k::Acc)>,
                mode: #k::GradMode,
            ) -> #k::Result<()> {
                #(#body)*
                Ok(())
            }
        }
    }
}

/// `backward_from`: the backward pass from a gradient placed at one node
/// down to another node or to an input, through `InputGrad::backward_input`
/// (no parameter gradient is computed or needed), in an impl of its own
/// whose `where` clause asks `InputGrad` of every layer. A node runs when
/// it lies between the two and a gradient reached it (`w[j]`); the first
/// contribution to a buffer overwrites it, later ones add, as in
/// `backward`, decided at run time because which nodes run depends on the
/// names. Not emitted for a network reading token ids or holding a kind
/// whose backward call is its own ([`crate::kinds::Rule::input_grad`]).
///
/// ```text
/// impl<E: Elem, D: Backend<E>> LeNet5<E, D> where …, Conv2d<…>: InputGrad<E, D>, … {
///     pub fn backward_from(&self, tape: &mut LeNet5Tape<E, D>, from: &str, seed: &[E], to: &str, mode: GradMode) -> Result<()> {
///         let from_j: usize = match from { "conv1" => 0, …, _ => return Err(…) };
///         let (lo, want): (usize, [bool; 1]) = match to { "conv1" => (1, [false]), …, "x" => (0, [true]), _ => return Err(…) };
///         if lo > from_j { return Err(not_before(…)) }
///         let c = &mut tape.cache;
///         let batch = match from_j { 0 => Tensor::batch(&c.conv1_out), … };
///         match from_j { 0 => seed_into(seed, &mut c.conv1_grad, "conv1", batch)?, … }
///         let (mut w, mut wi) = ([false; 12], [false; 1]);
///         w[from_j] = true;
///         if 11 >= lo && w[11] { InputGrad::<E, D>::backward_input(&self.fc3, &c.relu4_out, &c.fc3_out, &mut c.fc3_cache, &c.fc3_grad, if 11 >= lo { …Some((&mut c.relu4_grad, acc)) } else { None }, mode)?; }
///         …
///         if w[0] { InputGrad::<E, D>::backward_input(&self.conv1, in_x, …, if want[0] { …Some((&mut tape.grad_x, acc)) } else { None }, mode)?; }
///         if lo > 0 && !w[lo - 1] { match lo - 1 { 0 => zero_grad(&mut c.conv1_grad, batch)?, … } }  // not reached: zeros
///         if want[0] && !wi[0] { zero_grad(&mut tape.grad_x, batch)?; }
///         Ok(())
///     }
/// }
/// ```
pub(super) fn backward_from(cx: &Cx) -> TokenStream {
    let (ga, gp, k, net) = (&cx.ga, &cx.gp, cx.k, cx.net);
    if !all_supported(cx) || cx.names.grad.iter().any(Option::is_none) {
        return TokenStream::new();
    }
    let (name, tape_name) = (&net.name, &cx.tape_name);
    let net_name = name.to_string();
    let names = node_names(cx);
    let inputs = float_inputs(cx);
    let (nn, ni) = (net.nodes.len(), net.inputs.len());
    // Checked above: every node has a gradient buffer.
    let grad = |j: usize| cx.names.grad[j].as_ref();
    let (base, extra) = input_grad_bounds(cx);
    // `from`: a node; `to`: a node (run the nodes after it) or an input.
    let from_arms = names.iter().enumerate().map(|(j, n)| quote!(#n => #j,));
    let to_arms_nodes = names.iter().enumerate().map(|(j, n)| {
        let lo = j + 1;
        quote!(#n => (#lo, [false; #ni]),)
    });
    let to_arms_inputs = inputs.iter().map(|(i, n)| {
        let want: Vec<bool> = (0..ni).map(|x| x == *i).collect();
        quote!(#n => (0usize, [#(#want),*]),)
    });
    let known: Vec<&String> = names.iter().chain(inputs.iter().map(|(_, n)| n)).collect();
    let batch_arms = (0..nn).map(|j| {
        let o = &cx.names.out[j];
        quote!(#j => #k::Tensor::batch(&c.#o),)
    });
    let seed_arms = (0..nn).map(|j| {
        let (g, n) = (grad(j), &names[j]);
        quote!(#j => #k::input_grad::seed_into(seed, &mut c.#g, #n, batch)?,)
    });
    // A target the pass did not reach gets zeros (its gradient is zero).
    let zero_arms = (0..nn).map(|j| {
        let g = grad(j);
        quote!(#j => #k::input_grad::zero_grad(&mut c.#g, batch)?,)
    });
    let zero_inputs = inputs.iter().map(|(i, _)| {
        let g = quote::format_ident!("grad_{}", net.inputs[*i].name);
        quote!(if want[#i] && !wi[#i] { #k::input_grad::zero_grad(&mut tape.#g, batch)?; })
    });
    // Where a gradient goes: a node's buffer (when the node is not before
    // `to`) or an input's (when `to` is that input).
    let dest = |v: Val| -> TokenStream {
        match v {
            Val::In(i) => {
                let g = quote::format_ident!("grad_{}", net.inputs[i].name);
                quote!(if want[#i] {
                    let acc = if wi[#i] { #k::Acc::Add } else { #k::Acc::Set };
                    wi[#i] = true;
                    ::core::option::Option::Some((&mut tape.#g, acc))
                } else {
                    ::core::option::Option::None
                })
            }
            Val::Node(a) => {
                let (g, a1) = (grad(a), a + 1);
                quote!(if #a1 >= lo {
                    let acc = if w[#a] { #k::Acc::Add } else { #k::Acc::Set };
                    w[#a] = true;
                    ::core::option::Option::Some((&mut c.#g, acc))
                } else {
                    ::core::option::Option::None
                })
            }
        }
    };
    let mut body = Vec::new();
    for j in (0..nn).rev() {
        let n = &net.nodes[j];
        let dy = grad(j);
        let stmts: Vec<TokenStream> = match n.op {
            Op::Layer(li) => {
                let mut call = cx.call(j, li, false);
                call.dy = quote!(&c.#dy);
                call.dx = dest(n.args[0]);
                vec![net.layers[li].kind.backward_input(&call)]
            }
            Op::Add => n
                .args
                .iter()
                .map(|&a| {
                    let dst = dest(a);
                    quote!(#k::ops::pass_grad_to(&c.#dy, #dst)?;)
                })
                .collect(),
            Op::Concat(d) => super::concat_parts(net, j, d)
                .into_iter()
                .map(|(a, outer, off)| {
                    let dst = dest(a);
                    if outer == 1 {
                        quote!(#k::ops::concat_bwd_to(&c.#dy, #off, #dst)?;)
                    } else {
                        quote!(#k::ops::concat_bwd_along_to(&c.#dy, #outer, #off, #dst)?;)
                    }
                })
                .collect(),
        };
        let cond = if j == 0 {
            quote!(w[#j])
        } else {
            quote!(#j >= lo && w[#j])
        };
        body.push(super::respan(quote!(if #cond { #(#stmts)* }), n.span));
    }
    let in_binds = inputs.iter().map(|(i, _)| {
        let a = &cx.in_args[*i];
        quote!(let #a = &tape.#a;)
    });
    let doc = format!(
        "The backward pass from the gradient `seed` placed at node `from`'s output down to \
         node `to`'s output or to the input `to` (names as [`{tape_name}::activation`] takes them), \
         after a `forward_train` (or `forward_with`) on `tape`; read the result with \
         [`{tape_name}::gradient`]`(to)`. No parameter gradient is computed or touched, and \
         after the first call nothing is allocated. `mode` changes ReLU's rule \
         (`kiln::GradMode`: guided backpropagation, deconvnet). `seed` holds the tape's batch × node \
         `from`'s values per sample, row-major, on the host."
    );
    quote! {
        #[allow(clippy::too_many_arguments, unused_mut, unused_variables, clippy::needless_question_mark)]
        impl<E: #k::Elem, D: #k::Backend<E> #gp> #name<E, D #ga> #base #(#extra)* {
            #[doc = #doc]
            pub fn backward_from(
                &self,
                tape: &mut #tape_name<E, D #ga>,
                from: &str,
                seed: &[E],
                to: &str,
                mode: #k::GradMode,
            ) -> #k::Result<()> {
                let from_j: usize = match from {
                    #(#from_arms)*
                    _ => return Err(#k::input_grad::unknown_node("backward_from", #net_name, from, &[#(#known),*])),
                };
                let (lo, want): (usize, [bool; #ni]) = match to {
                    #(#to_arms_nodes)*
                    #(#to_arms_inputs)*
                    _ => return Err(#k::input_grad::unknown_node("backward_from", #net_name, to, &[#(#known),*])),
                };
                if lo > from_j {
                    return Err(#k::input_grad::not_before(#net_name, from, to));
                }
                #(#in_binds)*
                let c = &mut tape.cache;
                let batch = match from_j {
                    #(#batch_arms)*
                    _ => 0,
                };
                match from_j {
                    #(#seed_arms)*
                    _ => {}
                }
                let mut w = [false; #nn];
                let mut wi = [false; #ni];
                w[from_j] = true;
                #(#body)*
                if lo > 0 && !w[lo - 1] {
                    match lo - 1 {
                        #(#zero_arms)*
                        _ => {}
                    }
                }
                #(#zero_inputs)*
                Ok(())
            }
        }
    }
}
