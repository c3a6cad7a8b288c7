//! A local Kubernetes API server on loopback: discovery, CRUD, watch, patches, CRDs (design.md §6).
