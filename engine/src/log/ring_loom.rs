//! Loom models of the reservation protocol (being written).
