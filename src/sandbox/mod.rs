//! The sandbox: a local control plane (Kubernetes API server + Redis Enterprise emulator) that the real
//! agent and the real `kubectl` talk to, for tests and for `redis-gitops sandbox` (design.md §6).

pub mod apiserver;
pub mod enterprise;
