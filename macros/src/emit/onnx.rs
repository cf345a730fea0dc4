//! ONNX export's generated items (see [`onnx_impl`]): kept apart from the
//! passes in `emit.rs`, whose [`Cx`] it reads.

use super::{respan, Cx};
use crate::ir::{Op, Val};
use proc_macro2::{Ident, TokenStream};
use quote::{format_ident, quote};
use std::collections::HashSet;
use syn::ext::IdentExt;

/// ONNX export (`kiln::onnx`): `Onnx` for the network, walking its nodes
/// in order (each layer through its kind's [`crate::kinds::Rule::onnx`],
/// by default its type's own `Onnx` impl; `+` and `concat` through
/// `onnx::add`/`onnx::concat`), so that it nests in another; and the
/// public `to_onnx(path)` / `to_onnx_bytes()`. Every layer type is bounded
/// by `Onnx` alone, so the export asks nothing of the device.
///
/// ```text
/// impl<E: Elem, D: Backend<E>> Onnx for Mlp<E, D> where Linear<E, D, 784, 256>: Onnx, … {
///     fn onnx(&self, g: &mut Graph, at: &str, inputs: &[&str]) -> Result<Vec<String>> {
///         onnx::expect_inputs(at, inputs, 1)?;
///         let v_in_x = inputs[0].to_string();
///         let at_l = onnx::join(at, "fc1");
///         let v_fc1_out = onnx::one(&at_l, Onnx::onnx(&self.fc1, g, &at_l, &[v_in_x.as_str()])?)?;
///         …
///         Ok(vec![v_fc2_out])
///     }
/// }
/// impl<E: Elem, D: Backend<E>> Mlp<E, D> where … {
///     pub fn to_onnx(&self, path: impl AsRef<Path>) -> Result<()>
///     pub fn to_onnx_bytes(&self) -> Result<Vec<u8>>
/// }
/// ```
pub(super) fn onnx_impl(cx: &Cx) -> TokenStream {
    let (net, k, ga, gp) = (cx.net, cx.k, &cx.ga, &cx.gp);
    let name = &net.name;
    let mut seen = HashSet::new();
    let mut preds = Vec::new();
    for l in &net.layers {
        let Some(&j) = l.uses.first() else { continue };
        let ty = &l.ty;
        let pred = quote!(#ty: #k::onnx::Onnx);
        if seen.insert(pred.to_string()) {
            preds.push(respan(pred, net.nodes[j].span));
        }
    }
    let v = |val: Val| match val {
        Val::In(i) => format_ident!("v_{}", cx.in_args[i]),
        Val::Node(j) => format_ident!("v_{}", cx.names.out[j]),
    };
    let n_in = net.inputs.len();
    let mut body = Vec::new();
    for (i, _) in net.inputs.iter().enumerate() {
        let vi = v(Val::In(i));
        body.push(quote!(let #vi: ::std::string::String = inputs[#i].to_string();));
    }
    for (j, n) in net.nodes.iter().enumerate() {
        let y = v(Val::Node(j));
        let label = cx.names.out[j].to_string();
        let label = label.trim_end_matches("_out");
        let args: Vec<TokenStream> = n
            .args
            .iter()
            .map(|a| {
                let a = v(*a);
                quote!(#a.as_str())
            })
            .collect();
        match n.op {
            Op::Layer(li) => {
                let mut call = cx.call(j, li, false);
                call.x = args[0].clone();
                call.extra = args[1..].to_vec();
                call.y = quote!(#y);
                body.push(respan(net.layers[li].kind.onnx(&call), n.span));
            }
            Op::Add => {
                let (a, b) = (&args[0], &args[1]);
                body.push(quote!(let #y = #k::onnx::add(g, &#k::onnx::join(at, #label), #a, #b)?;));
            }
            Op::Concat(d) => {
                body.push(quote!(let #y = #k::onnx::concat(g, &#k::onnx::join(at, #label), &[#(#args),*], #d)?;));
            }
        }
    }
    let outs: Vec<Ident> = net.outputs.iter().map(|o| v(o.val)).collect();
    let io = |name: String, dims: &[usize], tokens: bool| {
        let d = dims.iter().map(|d| crate::dim::tokens(*d));
        quote!(#k::onnx::Io { name: #name, dims: &[#(#d),*], tokens: #tokens })
    };
    let ins = net
        .inputs
        .iter()
        .map(|i| io(i.name.unraw().to_string(), &i.shape, i.vocab.is_some()));
    let outputs = net
        .outputs
        .iter()
        .map(|o| io(o.name.unraw().to_string(), net.shape(o.val), false));
    let name_str = name.to_string();
    quote! {
        impl<E: #k::Elem, D: #k::Backend<E> #gp> #k::onnx::Onnx for #name<E, D #ga> where #(#preds,)* {
            fn onnx(&self, g: &mut #k::onnx::Graph, at: &str, inputs: &[&str]) -> #k::Result<::std::vec::Vec<::std::string::String>> {
                #k::onnx::expect_inputs(at, inputs, #n_in)?;
                #(#body)*
                Ok(vec![#(#outs.clone()),*])
            }
        }
        impl<E: #k::Elem, D: #k::Backend<E> #gp> #name<E, D #ga> where #(#preds,)* {
            /// Writes the network as an ONNX model (opset 17) to `path`,
            /// atomically: the batch dimension symbolic (`"batch"`), every
            /// other static, the weights as initializers under their
            /// `state_dict` names, inference semantics (see `kiln::onnx`). A
            /// layer without an ONNX form is an error naming it, and nothing
            /// is written.
            pub fn to_onnx(&self, path: impl ::core::convert::AsRef<::std::path::Path>) -> #k::Result<()> {
                #k::onnx::save(&self.to_onnx_bytes()?, path.as_ref())
            }
            /// The ONNX model of [`Self::to_onnx`], encoded.
            pub fn to_onnx_bytes(&self) -> #k::Result<::std::vec::Vec<u8>> {
                #k::onnx::model_bytes::<E, Self>(self, #name_str, &[#(#ins),*], &[#(#outputs),*])
            }
        }
    }
}
