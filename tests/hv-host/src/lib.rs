//! Simulated Hyper-V host: the host side of VMBus on the real wire format, including hostile behaviour.
