//! Pure builders: validated RECs and REDBs become every Kubernetes object and REST request body the agent would
//! apply. No I/O and no clients here; everything is a function of its inputs, which is where most unit tests live.

pub mod cluster;
pub mod database;
pub mod labels;
pub mod render;
