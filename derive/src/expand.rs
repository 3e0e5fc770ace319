//! The code `#[derive(Record)]` generates: the `Record` impl and the typed lookups.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use crate::parse::Record;

pub(crate) fn expand(record: &Record) -> TokenStream {
    let Record { ident, vis, name, version, from, key, indexes } = record;
    let lookups = format_ident!("{}Lookups", ident);
    let key_field = &key.field;
    let key_ty = &key.ty;

    let index_defs = indexes.iter().map(|index| {
        let name = index.field.to_string();
        let unique = index.unique;
        quote! { ::grove::__private::IndexDef { name: #name, unique: #unique } }
    });
    let index_values = indexes.iter().map(|index| {
        let field = &index.field;
        quote! { ::grove::__private::to_key(&self.#field)? }
    });
    // Spanned at the field's type: an indexed type without `Debug` is reported there.
    let describe = indexes.iter().enumerate().map(|(i, index)| {
        let field = &index.field;
        let describe = quote_spanned!(index.ty.span()=> ::std::format!("{:?}", &self.#field));
        quote! { #i => #describe, }
    });
    let assign = if key.auto {
        quote! {
            fn assign_key(
                &mut self,
                next_id: &mut dyn ::core::ops::FnMut() -> ::grove::__private::Result<u64>,
            ) -> ::grove::__private::Result<()> {
                self.#key_field = <#key_ty as ::grove::__private::AutoKey>::auto_key(next_id)?;
                ::core::result::Result::Ok(())
            }
        }
    } else {
        quote! {}
    };
    let older = match from {
        Some(from) => quote! {
            <#from as ::grove::__private::Record>::decode_version(version, bytes)
                .map(::core::convert::From::from)
        },
        None => quote! {
            ::core::result::Result::Err(::std::format!(
                "stored at schema version {}, and {} reads only version {}",
                version,
                #name,
                #version,
            ))
        },
    };

    let lookup_methods = indexes.iter().enumerate().map(|(i, index)| {
        let field = &index.field;
        let ty = &index.ty;
        let field_name = field.to_string();
        if index.unique {
            let get = format_ident!("get_by_{}", field);
            let doc = format!("The record whose `{field_name}` is `value` (a unique index).");
            quote! {
                #[doc = #doc]
                ///
                /// # Errors
                /// As `Records::get`.
                #vis fn #get<Q>(&self, value: &Q) -> ::grove::__private::Result<::core::option::Option<#ident>>
                where
                    #ty: ::core::borrow::Borrow<Q>,
                    Q: ::grove::__private::Serialize + ?::core::marker::Sized,
                {
                    self.core.unique(#i, value)
                }
            }
        } else {
            let find = format_ident!("find_by_{}", field);
            let range = format_ident!("range_by_{}", field);
            let find_doc = format!("The records whose `{field_name}` is `value`, in primary key order.");
            let range_doc = format!(
                "The records whose `{field_name}` lies in `range`, in order of `{field_name}`, then of primary key."
            );
            quote! {
                #[doc = #find_doc]
                #vis fn #find<Q>(&self, value: &Q) -> ::grove::__private::RecordIter<#ident>
                where
                    #ty: ::core::borrow::Borrow<Q>,
                    Q: ::grove::__private::Serialize + ?::core::marker::Sized,
                {
                    self.core.find(#i, value)
                }

                #[doc = #range_doc]
                #vis fn #range<Q, R>(&self, range: R) -> ::grove::__private::RecordIter<#ident>
                where
                    #ty: ::core::borrow::Borrow<Q>,
                    Q: ::grove::__private::Serialize + ?::core::marker::Sized,
                    R: ::core::ops::RangeBounds<Q>,
                {
                    self.core.find_range(#i, range)
                }
            }
        }
    });
    let lookups_doc = format!(
        "The lookups by index of `{ident}` records, reached from `Records<{ident}>` by `Deref`."
    );

    quote! {
        impl ::grove::__private::Record for #ident {
            const NAME: &'static str = #name;
            const VERSION: u16 = #version;
            const INDEXES: &'static [::grove::__private::IndexDef] = &[#(#index_defs),*];
            type Key = #key_ty;
            type Lookups = #lookups;

            fn key(&self) -> Self::Key {
                ::core::clone::Clone::clone(&self.#key_field)
            }

            fn index_values(
                &self,
            ) -> ::core::result::Result<::std::vec::Vec<::std::vec::Vec<u8>>, ::grove::__private::KeyError> {
                ::core::result::Result::Ok(::std::vec![#(#index_values),*])
            }

            fn describe_index(&self, index: usize) -> ::std::string::String {
                match index {
                    #(#describe)*
                    _ => ::std::string::String::new(),
                }
            }

            #assign

            fn decode_version(
                version: u16,
                bytes: &[u8],
            ) -> ::core::result::Result<Self, ::std::string::String> {
                if version == #version {
                    return ::grove::__private::decode_body(bytes);
                }
                #older
            }
        }

        #[doc = #lookups_doc]
        #[derive(Clone)]
        #vis struct #lookups {
            core: ::std::sync::Arc<::grove::__private::Core<#ident>>,
        }

        impl ::core::convert::From<::std::sync::Arc<::grove::__private::Core<#ident>>> for #lookups {
            fn from(core: ::std::sync::Arc<::grove::__private::Core<#ident>>) -> Self {
                #lookups { core }
            }
        }

        impl #lookups {
            #(#lookup_methods)*
        }
    }
}

#[cfg(test)]
mod tests {
    use super::expand;
    use crate::parse::Record;

    fn expanded(source: &str) -> String {
        let input: syn::DeriveInput = syn::parse_str(source).expect("a struct");
        let record = Record::parse(&input).expect("a valid record");
        let file: syn::File = syn::parse2(expand(&record)).expect("valid Rust");
        prettyplease::unparse(&file)
    }

    #[test]
    fn a_user_with_an_auto_key_and_two_indexes() {
        insta::assert_snapshot!(expanded(
            r#"
            #[record(name = "users")]
            pub struct User {
                #[key(auto)] id: Uuid,
                #[index(unique)] email: String,
                #[index] country: String,
                name: String,
            }
            "#
        ));
    }

    #[test]
    fn a_third_version_with_a_composite_key() {
        insta::assert_snapshot!(expanded(
            r#"
            #[record(version = 3, from = ScoreV2)]
            struct Score {
                #[key] player_round: (String, u32),
                points: u64,
            }
            "#
        ));
    }
}
