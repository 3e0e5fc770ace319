//! Grove's typed layer: `Map<K, V>`, `Set<T>`, `Queue<T>` and derived records over serde types.
//!
//! **Status:** not built yet. The typed collections arrive with their own issue; until then
//! this crate only re-exports the engine so the workspace has its final shape. It never sees
//! pages or log segments: it is written against `grove-engine`'s public API alone.

pub use grove_engine as engine;

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use grove_engine::{Log, LogConfig, MemStorage, RecordKind};

    #[test]
    fn the_engine_is_reachable_through_this_crate() {
        let log = super::engine::Log::open(Arc::new(MemStorage::new()), LogConfig::tiny()).unwrap();
        let lsn = log.append(RecordKind::new(16).unwrap(), b"typed layer to come").unwrap();
        assert!(Log::flush(&log).unwrap() > lsn);
    }
}
