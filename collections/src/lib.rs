//! Grove's typed layer: `Map<K, V>`, `Set<T>`, `Queue<T>` and derived records over serde types.
//!
//! **Status:** not built yet. The typed collections arrive with their own issue; until then
//! this crate only re-exports the engine so the workspace has its final shape. It never sees
//! pages or log segments: it is written against `grove-engine`'s public API alone.

pub use grove_engine as engine;
