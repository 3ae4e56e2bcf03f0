//! A deterministic model of the seL4 mechanisms the product uses.
