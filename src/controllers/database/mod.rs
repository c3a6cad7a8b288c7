//! The REDB controller (being written).
