//! Reading a `#[derive(Record)]` struct and its attributes, with errors that point at the
//! user's tokens and say what to write instead.

use syn::{
    Data, DeriveInput, Fields, Ident, LitInt, LitStr, Path, Type, Visibility, spanned::Spanned,
};

/// A record struct, as the derive understood it.
pub(crate) struct Record {
    pub(crate) ident: Ident,
    pub(crate) vis: Visibility,
    /// The collection's name.
    pub(crate) name: String,
    pub(crate) version: u16,
    /// The type of the previous schema version.
    pub(crate) from: Option<Path>,
    pub(crate) key: Key,
    pub(crate) indexes: Vec<Index>,
}

pub(crate) struct Key {
    pub(crate) field: Ident,
    pub(crate) ty: Type,
    pub(crate) auto: bool,
}

pub(crate) struct Index {
    pub(crate) field: Ident,
    pub(crate) ty: Type,
    pub(crate) unique: bool,
}

/// `UserProfile` → `user_profile`, `HTTPLog` → `http_log`.
fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_uppercase() && i > 0 {
            let previous = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            if previous.is_lowercase()
                || previous.is_ascii_digit()
                || (previous.is_uppercase() && next_lower)
            {
                out.push('_');
            }
        }
        out.extend(c.to_lowercase());
    }
    out
}

/// The last segment of a type's path (`HashMap` for `std::collections::HashMap<K, V>`).
fn type_name(ty: &Type) -> Option<String> {
    match ty {
        Type::Path(path) => path.path.segments.last().map(|s| s.ident.to_string()),
        Type::Reference(reference) => type_name(&reference.elem),
        _ => None,
    }
}

/// Types whose order cannot be kept in bytes, so they cannot be keys.
const NOT_KEYS: [&str; 5] = ["HashMap", "BTreeMap", "IndexMap", "Value", "HashSet"];

impl Record {
    pub(crate) fn parse(input: &DeriveInput) -> syn::Result<Record> {
        if !input.generics.params.is_empty() {
            return Err(syn::Error::new_spanned(
                &input.generics,
                "a record cannot be generic: its collection stores one concrete type",
            ));
        }
        let fields = match &input.data {
            Data::Struct(data) => match &data.fields {
                Fields::Named(fields) => &fields.named,
                _ => {
                    return Err(syn::Error::new_spanned(
                        &input.ident,
                        "a record is a struct with named fields, one of them marked #[key]",
                    ));
                }
            },
            _ => {
                return Err(syn::Error::new_spanned(
                    &input.ident,
                    "#[derive(Record)] works on structs: make this a struct with named fields",
                ));
            }
        };

        let mut name = snake_case(&input.ident.to_string());
        let mut version = None;
        let mut from = None;
        for attr in input.attrs.iter().filter(|a| a.path().is_ident("record")) {
            attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("name") {
                    name = meta.value()?.parse::<LitStr>()?.value();
                } else if meta.path.is_ident("version") {
                    let literal = meta.value()?.parse::<LitInt>()?;
                    let value = literal.base10_parse::<u16>()?;
                    if value == 0 {
                        return Err(syn::Error::new_spanned(literal, "versions start at 1"));
                    }
                    version = Some((value, literal));
                } else if meta.path.is_ident("from") {
                    from = Some(meta.value()?.parse::<Path>()?);
                } else {
                    return Err(meta.error(
                        "unknown record attribute: expected `name = \"...\"`, `version = N` or \
                         `from = OlderType`",
                    ));
                }
                Ok(())
            })?;
        }
        if let Some(from) = &from
            && version.as_ref().is_none_or(|(v, _)| *v < 2)
        {
            return Err(syn::Error::new_spanned(
                from,
                "`from` names the previous version's type: give this one `version = N` with N \
                 at least 2",
            ));
        }

        let mut key: Option<Key> = None;
        let mut indexes = Vec::new();
        for field in fields {
            let Some(ident) = field.ident.clone() else { continue };
            for attr in &field.attrs {
                if attr.path().is_ident("key") {
                    let mut auto = false;
                    if !matches!(attr.meta, syn::Meta::Path(_)) {
                        attr.parse_nested_meta(|meta| {
                            if meta.path.is_ident("auto") {
                                auto = true;
                                Ok(())
                            } else {
                                Err(meta.error(
                                    "unknown key option: expected `#[key]` or `#[key(auto)]`",
                                ))
                            }
                        })?;
                    }
                    if let Some(first) = &key {
                        return Err(syn::Error::new_spanned(
                            attr,
                            format!(
                                "a record has one #[key] field, and `{}` is already it: for a \
                                 composite key, make one field a tuple",
                                first.field
                            ),
                        ));
                    }
                    key = Some(Key { field: ident.clone(), ty: field.ty.clone(), auto });
                } else if attr.path().is_ident("index") {
                    let mut unique = false;
                    if !matches!(attr.meta, syn::Meta::Path(_)) {
                        attr.parse_nested_meta(|meta| {
                            if meta.path.is_ident("unique") {
                                unique = true;
                                Ok(())
                            } else {
                                Err(meta.error(
                                    "unknown index option: expected `#[index]` or `#[index(unique)]`",
                                ))
                            }
                        })?;
                    }
                    if let Some(bad) =
                        type_name(&field.ty).filter(|n| NOT_KEYS.contains(&n.as_str()))
                    {
                        return Err(syn::Error::new(
                            field.ty.span(),
                            format!(
                                "an indexed field must be able to be a key, and a `{bad}` cannot \
                                 keep its order in bytes: index a field of another type (a \
                                 string, number, tuple, enum or Vec)"
                            ),
                        ));
                    }
                    indexes.push(Index { field: ident.clone(), ty: field.ty.clone(), unique });
                }
            }
        }
        let Some(key) = key else {
            return Err(syn::Error::new_spanned(
                &input.ident,
                "a record needs a primary key: mark one field #[key] (or #[key(auto)] to have \
                 it filled in on insert)",
            ));
        };
        if indexes.iter().any(|index| index.field == key.field) {
            return Err(syn::Error::new_spanned(
                &key.field,
                "the #[key] field is indexed already: remove its #[index]",
            ));
        }
        Ok(Record {
            ident: input.ident.clone(),
            vis: input.vis.clone(),
            name,
            version: version.map_or(1, |(v, _)| v),
            from,
            key,
            indexes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::snake_case;

    #[test]
    fn names_become_snake_case() {
        assert_eq!(snake_case("User"), "user");
        assert_eq!(snake_case("UserProfile"), "user_profile");
        assert_eq!(snake_case("HTTPLog"), "http_log");
        assert_eq!(snake_case("UserV2"), "user_v2");
    }
}
