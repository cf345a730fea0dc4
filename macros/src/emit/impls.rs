//! The trait impls of a generated network (`Module`, `Build`, `Layer`, `Layer2`) and the items kinds add.

use super::*;

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
pub(super) fn module_impl(cx: &Cx) -> TokenStream {
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
pub(super) fn build_impl(cx: &Cx) -> TokenStream {
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
pub(super) fn layer_impl(cx: &Cx) -> TokenStream {
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
pub(super) fn layer2_impl(cx: &Cx) -> TokenStream {
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
pub(super) fn kind_items(cx: &Cx) -> TokenStream {
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
