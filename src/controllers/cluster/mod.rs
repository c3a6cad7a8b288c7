//! The REC controller (being written).
