//! The simulated system: system.xml instantiated on the seL4 model, with the driver, the host and clients.
