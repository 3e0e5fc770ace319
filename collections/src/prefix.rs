//! [`KeyPrefix`]: which leading fields of a composite key a prefix scan may give.

use std::borrow::Borrow;

/// `Self`, a tuple key, starts with the fields `P`: a tuple of references to its leading
/// fields (each as the key field or a type it borrows as, like `&str` for a `String`). A
/// [`Map::prefix`](crate::Map::prefix) scan with `P` yields every key with those leading
/// fields, in key order.
///
/// Implemented for keys of 2 to 4 fields, and every shorter prefix:
/// `(String, u32)` takes `(&str,)`; `(String, u32, bool)` takes `(&str,)` and
/// `(&str, &u32)`.
pub trait KeyPrefix<P> {}

impl<A, B, QA> KeyPrefix<(&QA,)> for (A, B)
where
    A: Borrow<QA>,
    QA: ?Sized,
{
}

impl<A, B, C, QA> KeyPrefix<(&QA,)> for (A, B, C)
where
    A: Borrow<QA>,
    QA: ?Sized,
{
}

impl<A, B, C, QA, QB> KeyPrefix<(&QA, &QB)> for (A, B, C)
where
    A: Borrow<QA>,
    B: Borrow<QB>,
    QA: ?Sized,
    QB: ?Sized,
{
}

impl<A, B, C, D, QA> KeyPrefix<(&QA,)> for (A, B, C, D)
where
    A: Borrow<QA>,
    QA: ?Sized,
{
}

impl<A, B, C, D, QA, QB> KeyPrefix<(&QA, &QB)> for (A, B, C, D)
where
    A: Borrow<QA>,
    B: Borrow<QB>,
    QA: ?Sized,
    QB: ?Sized,
{
}

impl<A, B, C, D, QA, QB, QC> KeyPrefix<(&QA, &QB, &QC)> for (A, B, C, D)
where
    A: Borrow<QA>,
    B: Borrow<QB>,
    C: Borrow<QC>,
    QA: ?Sized,
    QB: ?Sized,
    QC: ?Sized,
{
}
