//! Executable, model-checked specification of the VMBus channel lifetime (docs/lifetime.md), with a
//! conformance harness that drives an implementation with the model's traces.
//!
//! The model ([`model::LifetimeModel`]) is a `stateright` model of the host, the driver PD, the
//! clients and the kernel's capabilities and mappings; [`properties`] are its invariants,
//! [`explore`] adds the graph checks stateright cannot express (liveness under a quiescent
//! environment), and [`conformance`] compares an implementation's abstract state with the
//! model's after every step.

pub mod abstraction;
pub mod config;
pub mod conformance;
pub mod driver;
pub mod explore;
pub mod host;
pub mod model;
pub mod properties;
pub mod state;
pub mod symmetry;

pub use config::{Config, Variant};
pub use model::{Action, LifetimeModel};
pub use state::State;
