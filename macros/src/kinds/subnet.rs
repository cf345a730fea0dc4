//! A network from another `network!` invocation, written with its output
//! shape: `block: Residual -> [64, 8, 8]`, or, for a network of two inputs
//! (a decoder block reading the encoder's memory), with its second input
//! named: `dec: Decoder(memory) -> [6, 16]` (a `kiln::Layer2`). Chosen by the
//! `-> [..]`, not by a name (it is not in the registry). Its shapes are invisible to this
//! macro, so the compiler checks the wiring: [`Rule::items`] emits one
//! small function per use whose body only type-checks if the nested
//! network's `In`/`Out` are the shapes wired around it.

use super::{Call, Rule, ShapeIn};
use crate::diag::{dims, Diag};
use crate::parse::Spec;
use proc_macro2::{Ident, TokenStream};
use quote::quote;
use std::cell::RefCell;

struct Subnet {
    path: syn::Path,
    /// The declared output shape.
    out: Vec<usize>,
    /// The second input of a two-input network, by the name of a graph
    /// input or binding, and its shape (set by the shape rule).
    second: Option<Ident>,
    second_shape: RefCell<Vec<usize>>,
}

/// Reads `Path -> [dims]` or `Path(second) -> [dims]`.
pub fn parse(spec: &Spec, diag: &mut Diag) -> Option<Box<dyn Rule>> {
    let second = match &spec.args {
        None => None,
        Some(a) => match (a.positional.as_slice(), a.named.is_empty()) {
            ([syn::Expr::Path(p)], true) if p.path.get_ident().is_some() => {
                p.path.get_ident().cloned()
            }
            _ => {
                diag.error_range(spec.range(), format!("`{}` is used as a network from another `network!`; it takes no arguments, or for a network of two inputs the name of its second input: `{}(memory) -> [..]`", spec.ident(), spec.ident()));
                return None;
            }
        },
    };
    Some(Box::new(Subnet {
        path: spec.path.clone(),
        out: spec.out.as_ref()?.values(),
        second,
        second_shape: RefCell::new(Vec::new()),
    }))
}

impl Rule for Subnet {
    fn symbolic(&self) -> bool {
        true
    }

    fn is_field(&self) -> bool {
        true
    }

    /// Rule: the declared output (checked by the compiler, see above); a
    /// second input must hold floats.
    fn out_shape(&self, s: &ShapeIn) -> Result<Vec<usize>, String> {
        if self.second.is_some() {
            let net = s.net;
            let v = net.nodes[s.node].args[1];
            if net.vocab(v).is_some() {
                return Err(format!(
                    "`{}`: its second input `{}` holds token ids; a nested network takes float tensors (embed them first)",
                    s.who,
                    net.val_label(v)
                ));
            }
            *self.second_shape.borrow_mut() = net.shape(v).to_vec();
        }
        Ok(self.out.clone())
    }

    fn flops(&self, k: &TokenStream, ty: &TokenStream) -> TokenStream {
        match self.second {
            Some(_) => quote!(<#ty as #k::Layer2<E, D>>::FLOPS),
            None => quote!(<#ty as #k::Layer<E, D>>::FLOPS),
        }
    }

    fn extra_inputs(&self) -> Vec<Ident> {
        self.second.iter().cloned().collect()
    }

    fn cache_ty(&self, k: &TokenStream, ty: &TokenStream) -> TokenStream {
        match self.second {
            Some(_) => quote!(<#ty as #k::Layer2<E, D>>::Cache),
            None => quote!(<#ty as #k::Layer<E, D>>::Cache),
        }
    }

    fn cache_init(&self, k: &TokenStream, inst: &TokenStream) -> TokenStream {
        match self.second {
            Some(_) => quote!(#k::Layer2::<E, D>::cache(#inst)?),
            None => quote!(#k::Layer::<E, D>::cache(#inst)?),
        }
    }

    fn cache_bound(&self, k: &TokenStream) -> Option<TokenStream> {
        Some(match self.second {
            Some(_) => quote!(#k::Layer2<E, D>),
            None => quote!(#k::Layer<E, D>),
        })
    }

    fn ty(&self, _k: &TokenStream, _input: &[usize], _out: &[usize]) -> TokenStream {
        let path = &self.path;
        quote!(#path<E, D>)
    }

    /// The nested network's own count, read from its non-generic instance
    /// (`<Block>::PARAMS`, i.e. `Block<f32, Cpu>`'s, the same for every
    /// element type and device): `<Block<E, D>>::PARAMS` would need the
    /// nested network's per-layer bounds, which this network's `where`
    /// clause does not state.
    fn params(&self, _input: &[usize], _out: &[usize], _ty: &TokenStream) -> TokenStream {
        let path = &self.path;
        quote!(<#path>::PARAMS)
    }

    /// The nested network's own shapes must stay unnamed here: the calls go
    /// through `ops::subnet`, which sees the tensors as its types.
    fn bounds(&self, c: &Call) -> TokenStream {
        let k = c.k;
        match self.second {
            Some(_) => quote!(#k::Layer2<E, D>),
            None => quote!(#k::Layer<E, D>),
        }
    }

    fn forward(&self, c: &Call, train: bool) -> TokenStream {
        let Call {
            k,
            ty,
            si,
            so,
            inst,
            x,
            y,
            cache,
            ..
        } = c;
        if self.second.is_some() {
            let x2 = &c.extra[0];
            let si2 = crate::kinds::shape_ty(k, &self.second_shape.borrow());
            return if train {
                quote!(#k::ops::subnet::forward_train2::<#ty, #si, #si2, #so, E, D>(#inst, #x, #x2, &mut #y, &mut #cache, ctx)?;)
            } else {
                quote!(#k::ops::subnet::forward2::<#ty, #si, #si2, #so, E, D>(#inst, #x, #x2, &mut #y, &mut #cache)?;)
            };
        }
        if train {
            quote!(#k::ops::subnet::forward_train::<#ty, #si, #so, E, D>(#inst, #x, &mut #y, &mut #cache, ctx)?;)
        } else {
            quote!(#k::ops::subnet::forward::<#ty, #si, #so, E, D>(#inst, #x, &mut #y, &mut #cache)?;)
        }
    }

    /// A nested network of one input takes part in `backward_from` through
    /// its generated `InputGrad` (which exists when all its layers have
    /// one); a two-input one (`Layer2`) does not.
    fn input_grad(&self) -> bool {
        self.second.is_none()
    }

    /// `ops::subnet::backward_input::<Block<E, D>, I, O, E, D>(inst, x, &y, &mut cache, dy, dx, mode)`.
    fn backward_input(&self, c: &Call) -> TokenStream {
        let Call {
            k,
            ty,
            si,
            so,
            inst,
            x,
            y,
            cache,
            dy,
            dx,
            ..
        } = c;
        quote!(#k::ops::subnet::backward_input::<#ty, #si, #so, E, D>(#inst, #x, &#y, &mut #cache, #dy, #dx, mode)?;)
    }

    fn backward(&self, c: &Call) -> TokenStream {
        let Call {
            k,
            ty,
            si,
            so,
            inst,
            x,
            y,
            cache,
            dy,
            dx,
            grads,
            gacc,
            ..
        } = c;
        if self.second.is_some() {
            let (x2, dx2) = (&c.extra[0], &c.extra_dx[0]);
            let si2 = crate::kinds::shape_ty(k, &self.second_shape.borrow());
            return quote!(#k::ops::subnet::backward2::<#ty, #si, #si2, #so, E, D>(#inst, #x, #x2, &#y, &mut #cache, #dy, #dx, #dx2, #grads, #gacc)?;);
        }
        quote!(#k::ops::subnet::backward::<#ty, #si, #so, E, D>(#inst, #x, &#y, &mut #cache, #dy, #dx, #grads, #gacc)?;)
    }

    /// One shape check per use, at the layer, that says which side is wrong
    /// and names both shapes: the nested network's `In` must be the shape
    /// that feeds it and its `Out` the declared `-> [..]`. Each comparison is
    /// a trait bound whose `on_unimplemented` message this macro writes, and
    /// the traits live in the generated code, so no note points into kiln's
    /// sources. No `where` clause is stated on the nested network (under one,
    /// rustc would no longer see its `In`/`Out` through its impl); its device
    /// has every kernel family (`Kernels<E>`), which proves the nested
    /// network's own per-layer bounds; the function is never called, so this
    /// asks nothing of the user's device.
    fn items(&self, c: &Call) -> TokenStream {
        let Call {
            k,
            ty,
            si,
            so,
            field,
            input,
            out,
            ..
        } = c;
        let name = self
            .path
            .segments
            .last()
            .map(|s| s.ident.to_string())
            .unwrap_or_default();
        let in_msg = format!(
            "`{field}: {name}` is fed {} (`{}`), but the network `{name}` takes `{{Self}}`",
            dims(input),
            shape_ty_text(input)
        );
        let second = self.second_shape.borrow();
        let in2_msg = format!(
            "`{field}: {name}({})` is fed {} (`{}`) as its second input, but the network `{name}` takes `{{Self}}`",
            self.second.as_ref().map(|i| i.to_string()).unwrap_or_default(),
            dims(&second),
            shape_ty_text(&second)
        );
        let out_msg = format!(
            "`{field}: {name} -> {}` declares the output `{}`, but the network `{name}` gives `{{Self}}`",
            dims(out),
            shape_ty_text(out)
        );
        let check = if self.second.is_some() {
            let si2 = crate::kinds::shape_ty(k, &second);
            quote! {
                #[diagnostic::on_unimplemented(
                    message = #in2_msg,
                    label = "the second input wired here is not what this network takes"
                )]
                trait __KilnNestedInput2<Given> {}
                impl<S> __KilnNestedInput2<S> for S {}
                fn __kiln_input2<Takes: __KilnNestedInput2<Given>, Given>() {}
                #[allow(dead_code, clippy::all)]
                fn __kiln_shape_check<E: #k::Elem, D: #k::Kernels<E>>() {
                    __kiln_input::<<#ty as #k::Layer2<E, D>>::In, #si>();
                    __kiln_input2::<<#ty as #k::Layer2<E, D>>::In2, #si2>();
                    __kiln_output::<<#ty as #k::Layer2<E, D>>::Out, #so>();
                }
            }
        } else {
            quote! {
                #[allow(dead_code, clippy::all)]
                fn __kiln_shape_check<E: #k::Elem, D: #k::Kernels<E>>() {
                    __kiln_input::<<#ty as #k::Layer<E, D>>::In, #si>();
                    __kiln_output::<<#ty as #k::Layer<E, D>>::Out, #so>();
                }
            }
        };
        quote! {
            const _: () = {
                #[diagnostic::on_unimplemented(
                    message = #in_msg,
                    label = "the input wired here is not what this network takes"
                )]
                trait __KilnNestedInput<Given> {}
                impl<S> __KilnNestedInput<S> for S {}
                #[diagnostic::on_unimplemented(
                    message = #out_msg,
                    label = "the declared output is not what this network gives"
                )]
                trait __KilnNestedOutput<Declared> {}
                impl<S> __KilnNestedOutput<S> for S {}
                fn __kiln_input<Takes: __KilnNestedInput<Given>, Given>() {}
                fn __kiln_output<Gives: __KilnNestedOutput<Declared>, Declared>() {}
                #check
            };
        }
    }
}

/// `S1<64>`, `S3<16, 8, 8>`: how rustc prints the shape type of `d`.
fn shape_ty_text(d: &[usize]) -> String {
    let list = d
        .iter()
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    format!("S{}<{list}>", d.len())
}
