//! `#[derive(Record)]`: a struct stored as a Grove record, with a primary key, secondary
//! indexes and schema versions. Use it through `grove::Record`; the generated code names
//! only `::grove::__private` paths.
//!
//! ```text
//! #[derive(Serialize, Deserialize, grove::Record)]
//! #[record(name = "users", version = 2, from = UserV1)]
//! struct User {
//!     #[key(auto)] id: Uuid,
//!     #[index(unique)] email: String,
//!     #[index] country: String,
//!     name: String,
//! }
//! ```

mod expand;
mod parse;

use proc_macro::TokenStream;

/// Derives `grove::Record` for a struct with named fields. See the `grove` crate's docs.
///
/// Attributes: `#[record(name = "...", version = N, from = OlderType)]` on the struct;
/// `#[key]` or `#[key(auto)]` on exactly one field; `#[index]` or `#[index(unique)]` on
/// any others.
#[proc_macro_derive(Record, attributes(record, key, index))]
pub fn derive_record(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    match parse::Record::parse(&input) {
        Ok(record) => expand::expand(&record).into(),
        Err(error) => error.to_compile_error().into(),
    }
}
