//! The forge emulator (design.md §6): the repository over smart HTTP ([`git`]) and signed push webhooks delivered
//! when a ref moves ([`hooks`]).

pub mod git;
pub mod hooks;
