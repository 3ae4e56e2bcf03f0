//! A reference implementation: the model itself, possibly with another driver variant. With the
//! same variant it must conform (the harness agrees with itself only where it should); with a
//! broken variant the harness must find the divergence. Used to test the harness.

use crate::abstraction::{AbstractState, abstract_model};
use crate::config::Variant;
use crate::model::{Action, LifetimeModel};
use crate::state::State;

use super::Implementation;

/// The model run as an implementation, with its own driver variant.
#[derive(Clone, Debug)]
pub struct ModelImplementation {
    model: LifetimeModel,
    state: State,
}

impl ModelImplementation {
    /// A fresh implementation of `model`'s configuration with `variant`'s driver.
    pub fn new(model: &LifetimeModel, variant: Variant) -> Self {
        let model = LifetimeModel::new(crate::config::Config {
            variant,
            ..model.cfg
        });
        let state = model.init();
        Self { model, state }
    }
}

impl Implementation for ModelImplementation {
    fn apply(&mut self, action: Action, _before: &State, _after: &State) -> Result<(), String> {
        if let Some(n) = self.model.step(&self.state, action) {
            self.state = n;
        }
        Ok(())
    }

    fn abstract_state(&self) -> AbstractState {
        abstract_model(&self.model, &self.state)
    }
}
