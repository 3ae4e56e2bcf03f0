//! Executable, model-checked specification of the VMBus channel lifetime.
